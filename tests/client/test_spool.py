"""The spool on real SQLite files: leases between processes, orphaned leases, dead letters."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from xtracker_client._spool import Spool


def test_a_leased_item_is_not_claimed_twice(tmp_path: Path) -> None:
    a, b = Spool(tmp_path / "s.db"), Spool(tmp_path / "s.db")  # two processes, one file
    a.put("event", {"n": 1})
    assert [i.body for i in a.claim("host:1:a", limit=10, lease_ms=60_000)] == [{"n": 1}]
    assert b.claim("host:2:b", limit=10, lease_ms=60_000) == []
    a.ack(1, "host:1:a")
    assert b.size()[0] == 0


def test_only_the_lease_holder_settles_an_item(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    item_id, _ = s.put("event", {"n": 1})
    s.claim("me", limit=1, lease_ms=60_000)
    s.ack(item_id, "someone-else")
    assert s.size()[0] == 1


def test_leases_of_a_dead_local_process_are_freed(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    s.put("event", {"n": 1})
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_owner = f"{socket.gethostname()}:{int(gone.stdout)}:nonce"
    assert s.claim(dead_owner, limit=1, lease_ms=3_600_000)
    alive_owner = f"{socket.gethostname()}:1:nonce"  # pid 1 is alive
    assert s.claim("other", limit=1, lease_ms=60_000) == []
    assert s.reclaim_orphans() == 1
    (item,) = s.claim("other", limit=1, lease_ms=60_000)
    assert item.body == {"n": 1}
    assert not s.reclaim_orphans()
    assert alive_owner  # documented: a live owner's lease is left alone


def test_dead_letters_keep_every_refused_item(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    for n in range(3):  # ids are reused once the outbox empties: dead letters must not clash
        item_id, _ = s.put("event", {"n": n})
        s.claim("me", limit=1, lease_ms=60_000)
        s.kill(item_id, "me", f"refused {n}", 422)
    assert [d.reason for d in s.dead_letters()] == ["refused 2", "refused 1", "refused 0"]
    assert s.size()[0] == 0


def test_release_gives_back_untried_items_in_order(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    for n in range(3):
        s.put("event", {"n": n})
    items = s.claim("me", limit=3, lease_ms=60_000)
    s.release([i.id for i in items], "me", 0)
    again = s.claim("me", limit=3, lease_ms=60_000)
    assert [i.body["n"] for i in again] == [0, 1, 2]
    assert all(i.attempts == 1 for i in again)  # the released attempt was not counted
