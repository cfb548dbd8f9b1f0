"""The click journal (landing/journal.py) on real files: what is appended is read back at the
next open, a torn last line is cut off, a journal whose server is gone is taken over, and one
whose server runs is left alone."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.landing.journal import ClickJournal, Recovered, decode, encode, journal_path


def draft(uid: str) -> ClickDraft:
    return ClickDraft(
        space_id=1, uid=uid, created_ms=1_700_000_000_000, source="redirect", link_id=2,
        ip="203.0.113.9", user_agent="phone", fields={"campaign_name": "Spring sale"},
    )  # fmt: skip


def run_journal(path: str, *drafts: ClickDraft, clear: bool = False) -> Recovered:
    """Open the journal at ``path``, append ``drafts`` (one append each), maybe clear, close."""

    async def go() -> Recovered:
        journal = ClickJournal(path)
        found = await journal.open()
        for d in drafts:
            await journal.append([d])
        if clear:
            await journal.clear()
        await journal.close()
        return found

    return asyncio.run(go())


def test_a_line_holds_the_whole_click() -> None:
    d = draft("uidAAAAAAAAAAAAA")
    assert decode(encode(d)) == d
    assert encode(d).endswith(b"\n") and encode(d).count(b"\n") == 1


def test_lines_that_hold_no_click_are_none() -> None:
    assert decode(b'{"uid": "x"') is None  # torn
    assert decode(b'{"uid": "x"}') is None  # no space, no time
    assert decode(b'["not", "an", "object"]') is None
    assert decode(b'{"space_id": "1", "uid": "x", "created_ms": 1, "source": "r"}') is None


def test_the_journal_is_beside_the_database(tmp_path: Path) -> None:
    assert journal_path(str(tmp_path / "x.db")) == str(tmp_path / "x.db.clicks-pending")
    assert journal_path(":memory:") is None


def test_appended_clicks_are_read_back_at_the_next_open(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db.clicks-pending")
    kept = [draft("uidAAAAAAAAAAAAA"), draft("uidBBBBBBBBBBBBB")]
    assert run_journal(path, *kept).clicks == []
    assert Path(path).stat().st_mode & 0o777 == 0o600  # it holds visitors' addresses
    assert run_journal(path).clicks == kept


def test_a_cleared_journal_is_deleted_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "x.db.clicks-pending"
    run_journal(str(path), draft("uidAAAAAAAAAAAAA"), clear=True)
    assert not path.exists()
    assert run_journal(str(path)).clicks == []


def test_a_clear_cuts_the_lines_appended_before_it_and_keeps_those_after(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db.clicks-pending")
    before, after = draft("uidAAAAAAAAAAAAA"), draft("uidBBBBBBBBBBBBB")

    async def go() -> None:
        journal = ClickJournal(path)
        await journal.open()
        await journal.append([before])  # on disk
        queued = [journal.append([before]), journal.clear(), journal.append([after])]
        await asyncio.gather(*queued)
        await journal.close()

    asyncio.run(go())
    assert run_journal(path).clicks == [after]


def test_a_torn_last_line_is_cut_off_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "x.db.clicks-pending"
    whole = encode(draft("uidAAAAAAAAAAAAA"))
    path.write_bytes(whole + encode(draft("uidBBBBBBBBBBBBB"))[:30])
    found = run_journal(str(path), draft("uidCCCCCCCCCCCCC"))
    assert ([d.uid for d in found.clicks], found.unreadable) == (["uidAAAAAAAAAAAAA"], 1)
    # The next line starts where the torn one did.
    assert path.read_bytes() == whole + encode(draft("uidCCCCCCCCCCCCC"))


def test_the_journal_of_a_server_that_is_gone_is_taken_over(tmp_path: Path) -> None:
    base = tmp_path / "x.db.clicks-pending"
    orphan = tmp_path / "x.db.clicks-pending.4242"  # a second server's, killed
    orphan.write_bytes(encode(draft("uidOOOOOOOOOOOOO")))
    found = run_journal(str(base))
    assert [d.uid for d in found.clicks] == ["uidOOOOOOOOOOOOO"] and found.files == 1
    assert not orphan.exists()
    assert [d.uid for d in run_journal(str(base)).clicks] == ["uidOOOOOOOOOOOOO"]  # now ours


def test_a_journal_whose_server_runs_is_left_alone(tmp_path: Path) -> None:
    base = tmp_path / "x.db.clicks-pending"
    base.write_bytes(encode(draft("uidRRRRRRRRRRRRR")))
    fd = os.open(base, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another server's: it owns the database's journal
    try:

        async def go() -> tuple[Recovered, str]:
            journal = ClickJournal(str(base))
            found = await journal.open()
            await journal.append([draft("uidMMMMMMMMMMMMM")])
            path = journal.path
            await journal.close()
            return found, path

        found, path = asyncio.run(go())
    finally:
        os.close(fd)
    assert found.clicks == []
    assert path == f"{base}.{os.getpid()}"
    assert [d.uid for d in decode_all(Path(path))] == ["uidMMMMMMMMMMMMM"]
    assert [d.uid for d in decode_all(base)] == ["uidRRRRRRRRRRRRR"]


def decode_all(path: Path) -> list[ClickDraft]:
    return [d for line in path.read_bytes().splitlines() if (d := decode(line)) is not None]
