"""No number can freeze the server: the worst numbers a small request can carry, in every numeric
field of every endpoint (JSON bodies, query strings, paths), are refused with 4xx at once, and
the server keeps answering ``/healthz`` meanwhile.

``1e1000000`` is 10 bytes on the wire and a million-digit integer once int() has run on it (about
two minutes of one core, with the event loop blocked): the size must be judged from the exponent
and the digit count before anything converts it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, TLS_VERIFY, AppServer, Server, SpaceKeys
from tests.databases import migrated

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

#: A request here is answered in a few milliseconds; a frozen event loop takes seconds to
#: minutes. The bound is far above the first (loaded CI machines) and far below the second.
BOUND_S = 3.0

#: JSON number literals no field can hold, all well under the 64 KiB body limit.
JSON_NUMBERS = [
    "1e1000000",
    "-1e1000000",
    "1e-1000000",
    "1E999999999999999999",
    "1e9999999999999999999999",
    "9" * 60_000,
    "0." + "0" * 59_990 + "1",
]
#: The same in a query string or a path (text: the parsers see digits, not a JSON number).
TEXT_NUMBERS = ["1e1000000", "9" * 8000, "-" + "9" * 8000, "²", "1_000"]


@dataclass
class HealthWatch:
    """Polls ``/healthz`` on a thread and keeps the slowest answer (or the failure)."""

    url: str
    slowest_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(verify=TLS_VERIFY, timeout=BOUND_S) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(f"{self.url}/healthz").status_code
                    if status != 200:
                        self.failures.append(f"/healthz answered {status}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"/healthz: {exc!r}")
                self.slowest_s = max(self.slowest_s, time.monotonic() - started)
                self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Setup:
    server: Server
    space: SpaceKeys
    slug: str
    destination_id: int


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    db: Path = migrated(tmp_path_factory.mktemp("numbers") / "xtracker.db")
    server = AppServer(db=db, extra_args=("--allow-private-destinations",))
    server.start()
    try:
        space = server.new_space("numbers")
        with server.client() as http:
            link = {"slug": "num-link", "kind": "bot", "target": "number_bot"}
            assert http.post(f"/admin/spaces/{space.id}/links", json=link, headers=ADMIN).is_success
            dest = {"kind": "webhook", "url": "http://127.0.0.1:9/never-called"}
            r = http.post(f"/admin/spaces/{space.id}/destinations", json=dest, headers=ADMIN)
            assert r.status_code == 201, r.text
        yield Setup(server, space, "num-link", int(r.json()["id"]))
    finally:
        server.stop()


def json_with(base: dict[str, Any], name: str, literal: str) -> bytes:
    """``base`` plus ``"name": <literal>``, the literal written as is (json.dumps cannot)."""
    head = json.dumps(base)[:-1]
    return f'{head}{", " if base else ""}"{name}": {literal}}}'.encode()


@dataclass(frozen=True)
class Case:
    label: str
    method: str
    url: str
    status: int
    field: str | None  # the field the 422 names
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def cases(s: Setup) -> Iterator[Case]:
    sp, bearer, token = s.space.id, s.space.auth, {"token": s.space.ingest_token}
    json_endpoints: list[tuple[str, str, dict[str, str], dict[str, Any], list[str]]] = [
        ("POST", "/events", bearer, {"event": "deposit", "uid": "u1"},
         ["occurred_at_ms", "tg_id", "value"]),
        ("POST", f"/e?token={s.space.ingest_token}", {}, {"event": "deposit", "uid": "u1"},
         ["t", "tg_id", "value"]),
        ("POST", "/bind", bearer, {"uid": "u1"}, ["tg_id"]),
        ("POST", "/clicks", bearer, {}, ["fbclid", "link_slug"]),
        ("POST", f"/admin/spaces/{sp}/links", ADMIN,
         {"slug": "new-link", "kind": "bot", "target": "number_bot"}, ["redirect_delay_ms"]),
        ("PATCH", f"/admin/spaces/{sp}/links/{s.slug}", ADMIN, {}, ["redirect_delay_ms"]),
        ("POST", f"/admin/spaces/{sp}/destinations", ADMIN,
         {"kind": "s2s_postback", "url_template": "http://127.0.0.1:9/p?u={uid}"},
         ["expected_status"]),
        ("POST", f"/admin/spaces/{sp}/outbox/replay", ADMIN, {}, ["destination_id"]),
    ]  # fmt: skip
    for method, url, headers, base, names in json_endpoints:
        for name in names:
            for literal in JSON_NUMBERS:
                yield Case(
                    f"{method} {url.split('?')[0]} {name}={literal[:12]}",
                    method,
                    url,
                    422,
                    name,
                    headers={**headers, "Content-Type": "application/json"},
                    body=json_with(base, name, literal),
                )
    query_endpoints: list[tuple[str, dict[str, str], dict[str, str], list[str]]] = [
        ("/e", {}, {**token, "event": "deposit", "uid": "u1"}, ["t", "tg_id", "value"]),
        ("/bind", {}, {**token, "uid": "u1"}, ["tg_id"]),
        (f"/admin/spaces/{sp}/postbacks", ADMIN, {}, ["limit"]),
        (f"/admin/spaces/{sp}/outbox", ADMIN, {}, ["limit", "destination"]),
        (f"/admin/spaces/{sp}/reports/funnel", ADMIN, {}, ["days", "from"]),
        (f"/admin/spaces/{sp}/reports/links", ADMIN, {}, ["days"]),
        (f"/admin/spaces/{sp}/reports/series", ADMIN, {"metric": "click"}, ["days", "from"]),
        (f"/admin/spaces/{sp}/stream", ADMIN, {}, ["since"]),
    ]
    for path, headers, base_params, names in query_endpoints:
        for name in names:
            for text in TEXT_NUMBERS:
                value = f"{text}-0-0" if name == "since" else text
                yield Case(
                    f"GET {path} {name}={text[:12]}",
                    "GET",
                    path,
                    422,
                    name,
                    headers=headers,
                    params={**base_params, name: value},
                )
    for text in TEXT_NUMBERS:
        for path in (f"/admin/spaces/{text}/links", f"/admin/spaces/{sp}/destinations/{text}"):
            method = "PATCH" if "destinations" in path else "GET"
            body = b"{}" if method == "PATCH" else None
            yield Case(f"{method} {path[:40]}", method, path, 404, None, ADMIN, body=body)


def test_huge_numbers_are_refused_at_once_and_the_server_keeps_answering(setup: Setup) -> None:
    watch = HealthWatch(setup.server.url)
    poller = threading.Thread(target=watch.run, daemon=True)
    poller.start()
    checked = 0
    try:
        with httpx.Client(verify=TLS_VERIFY, base_url=setup.server.url, timeout=BOUND_S) as http:
            for case in cases(setup):
                started = time.monotonic()
                try:
                    r = http.request(
                        case.method, case.url, headers=case.headers, params=case.params,
                        content=case.body,
                    )  # fmt: skip
                except httpx.TimeoutException:
                    pytest.fail(f"{case.label}: no answer within {BOUND_S} s (a frozen loop)")
                took = time.monotonic() - started
                assert r.status_code == case.status, (case.label, r.text[:300])
                body = r.json()
                assert body["ok"] is False, case.label
                if case.field is not None:
                    assert body["field"] == case.field, (case.label, body)
                assert took < BOUND_S, (case.label, took)
                checked += 1
    finally:
        watch.stop()
        poller.join(timeout=2 * BOUND_S)
    assert checked > 150
    assert watch.failures == []
    assert watch.slowest_s < BOUND_S, watch.slowest_s
