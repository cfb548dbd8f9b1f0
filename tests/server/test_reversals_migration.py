"""The migration that gives the event maps stored before reversals existed their
``deposit.reversed`` row, as a new destination of the same kind would get it (issue 17 §4)."""

from __future__ import annotations

import json
from pathlib import Path

from xtracker_server.domain.destinations import DestinationKind, default_event_map
from xtracker_server.store.sqlite import spaces
from xtracker_server.store.sqlite.db import connect
from xtracker_server.store.sqlite.migrations import MIGRATIONS, _statements, migrate

OLD_MAP = {"contact": "contact", "subscribed": "", "registration": "reg", "deposit": "ftd"}
CAPI_MAP = {"contact": "Contact", "subscribed": "Lead", "registration": "CompleteRegistration",
            "deposit": "Purchase"}  # fmt: skip


def test_stored_event_maps_get_the_reversal_row_their_kind_would(tmp_path: Path) -> None:
    adds_row = next(i for i, m in enumerate(MIGRATIONS) if '"deposit.reversed"' in m)
    conn = connect(str(tmp_path / "old.db"))
    for number, script in enumerate(MIGRATIONS[:adds_row], start=1):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={number}")
    space = spaces.create_space(conn, "s", 0).space.id
    templates = {
        "status": "https://t.example/pb?cid={uid}&status={status}",
        "event": "https://t.example/pb?cid={uid}&goal={event}",
        "canonical": "https://t.example/pb?cid={uid}&goal={canonical}",
        "blind": "https://t.example/pb?cid={uid}&sum={value}",
    }
    rows = [
        ("hook", "webhook", {"url": "https://h.example/x"}, OLD_MAP),
        ("capi", "fb_capi", {"pixel_id": "12345"}, CAPI_MAP),
        *((name, "s2s_postback", {"url_template": t}, OLD_MAP) for name, t in templates.items()),
        # an operator's own choice is kept
        ("chosen", "webhook", {"url": "https://h.example/y"},
         {**OLD_MAP, "deposit.reversed": "refund"}),
    ]  # fmt: skip
    for name, kind, config, event_map in rows:
        conn.execute(
            "INSERT INTO destinations (space_id, kind, name, config, event_map, created_ms,"
            " updated_ms) VALUES (?, ?, ?, ?, ?, 0, 0)",
            (space, kind, name, json.dumps(config), json.dumps(event_map)),
        )

    migrate(conn)

    got = {r[0]: json.loads(r[1]) for r in conn.execute("SELECT name, event_map FROM destinations")}
    assert got["hook"] == {**OLD_MAP, "deposit.reversed": "deposit.reversed"}
    assert got["capi"] == {**CAPI_MAP, "deposit.reversed": ""}
    for name in ("status", "event", "canonical"):
        assert got[name]["deposit.reversed"] == "deposit.reversed", name
    assert got["blind"] == {**OLD_MAP, "deposit.reversed": ""}
    assert got["chosen"]["deposit.reversed"] == "refund"
    # the same as a destination created now
    for name, kind, config, _ in rows[:-1]:
        want = default_event_map(DestinationKind(kind), config)["deposit.reversed"]
        assert got[name]["deposit.reversed"] == want, name
