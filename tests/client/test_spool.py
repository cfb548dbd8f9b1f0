"""The spool on real SQLite files: leases between processes, orphaned leases, dead letters, a
file that cannot be written."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from xtracker_client import _spool_memory as spool_memory
from xtracker_client._spool import Spool, SpoolFull


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


# --- a spool file that cannot be written (the disk side is tested for real, with a file size
# limit, in tests/e2e/test_client_faults.py) ------------------------------------------------


def blocked_path(tmp_path: Path) -> Path:
    """A spool path that cannot be created, even by root: its directory is a regular file."""
    (tmp_path / "not-a-dir").write_text("")
    return tmp_path / "not-a-dir" / "s.db"


def test_a_file_that_cannot_be_written_holds_items_in_memory_and_sends_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="xtracker_client"):
        s = Spool(blocked_path(tmp_path))  # no exception: the bot starts all the same
        ids = [s.put("event", {"n": n})[0] for n in range(3)]
    assert all(i < 0 for i in ids) and s.held_in_memory == 3 and s.fault is not None
    assert s.write_errors >= 1
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "cannot be written" in caplog.records[0].message  # once, not once per item
    items = s.claim("me", limit=10, lease_ms=60_000)
    assert [i.body["n"] for i in items] == [0, 1, 2]
    s.ack(items[0].id, "me")
    s.kill(items[1].id, "me", "refused", 422)
    s.retry_later(items[2].id, "me", 0, "down")
    assert s.size()[0] == 1 and s.held_in_memory == 1
    assert [d.body for d in s.dead_letters()] == [{"n": 1}]


def test_the_memory_buffer_keeps_the_bounds_and_the_policy(tmp_path: Path) -> None:
    s = Spool(blocked_path(tmp_path), max_rows=2)
    dropped = [s.put("event", {"n": n})[1] for n in range(4)]
    assert dropped == [[], [], [{"n": 0}], [{"n": 1}]] and s.held_in_memory == 2
    newest = Spool(blocked_path(tmp_path), max_rows=1, drop_policy="drop_newest")
    newest.put("event", {"n": 0})
    with pytest.raises(SpoolFull) as refused:
        newest.put("event", {"n": 1})
    assert refused.value.reason == "memory_full"


def test_new_items_go_to_the_file_again_once_it_works_and_close_moves_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(spool_memory, "PROBE_INTERVAL_S", 0.0)  # try the file on every call
    path = blocked_path(tmp_path)
    s = Spool(path)
    held, _ = s.put("event", {"n": 0})
    (tmp_path / "not-a-dir").unlink()  # the disk works again
    with caplog.at_level(logging.INFO, logger="xtracker_client"):
        stored, _ = s.put("event", {"n": 1})
    assert held < 0 < stored and s.fault is None
    assert any("can be written again" in r.message for r in caplog.records)
    assert s.evacuate() == [] and s.held_in_memory == 0  # nothing lost: it is in the file now
    s.close()
    again = Spool(path)
    assert sorted(i.body["n"] for i in again.claim("me", limit=10, lease_ms=60_000)) == [0, 1]


def test_evacuate_reports_what_only_memory_holds(tmp_path: Path) -> None:
    memory = Spool(":memory:")
    memory.put("event", {"n": 0})
    assert memory.evacuate() == [{"n": 0}]  # a memory spool: lost with the process
    failing = Spool(blocked_path(tmp_path))
    failing.put("event", {"n": 1})
    assert failing.evacuate() == [{"n": 1}]  # the file still cannot be written


def test_size_after_close_is_what_it_was_and_close_twice_is_harmless(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    s.put("event", {"n": 0})
    s.close()
    s.close()
    assert s.size()[:2] == (1, len('{"n":0}'))
