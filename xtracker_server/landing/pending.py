"""The landing's side buffer: clicks whose visitors were sent on while storage could not take
them, kept until it can (docs/links.md#when-storage-fails).

An ad visitor never gets an error page because storage fails: a browser does not retry, so the
visitor, and the money paid for the ad, would be lost. When committing a click fails for a
storage reason (``is_storage_fault``: the writer process died or restarts, a commit failed, the
disk is full or read-only, a lock timed out), the landing hands the click here and sends the
visitor on with its uid as usual. ``PendingClicks``:

- keeps the click in memory, at most ``max_clicks`` of them (``XTRACKER_CLICK_BUFFER_MAX``);
  one more is lost and counted as ``dropped`` per link and hour (domain/unrecorded.py);
- appends it to the journal (landing/journal.py) and holds the visitor until the line is
  fsynced, for at most ``JOURNAL_WAIT_S``: a click whose redirect was sent after that is on
  disk and survives a crash of the server, or even of the machine;
- stores the kept clicks in the background as soon as writes succeed again, oldest first, under
  their uids, a stored uid skipped (so a click is never stored twice), and empties the journal
  once all of them are stored;
- logs each change of state once: buffering, recovered, full, the journal failing or back.

A journal left by a server that died is read at the next start and its clicks are stored.

The promise, exactly: a click whose visitor was sent on is in the database, or in the journal
(stored at the latest by the next start), or counted as dropped. One exception: when the journal
cannot be written either (the disk is full or gone) or takes longer than ``JOURNAL_WAIT_S``, the
click is in memory only, and it is lost, uncounted, if the server dies before storage recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass

from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.unrecorded import Reason, Tally
from xtracker_server.landing.journal import ClickJournal
from xtracker_server.store.api import Store, is_storage_fault

log = logging.getLogger("xtracker.landing")

#: The longest a visitor waits for its click's line in the journal before being sent on anyway.
JOURNAL_WAIT_S = 0.5
#: Kept clicks stored per write.
REPLAY_BATCH = 500
#: The first pause before storing kept clicks, doubling while storage still fails, up to the max.
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 2.0
#: At shutdown, how long the last attempt to store kept clicks may take.
STOP_WAIT_S = 5.0


@dataclass(slots=True)
class _Kept:
    draft: ClickDraft
    journaled: bool = False  # its line is on disk
    writing: bool = False  # its line is being appended


class PendingClicks:
    def __init__(
        self,
        store: Store,
        tally: Tally,
        journal: ClickJournal | None,
        *,
        max_clicks: int,
        journal_wait_s: float = JOURNAL_WAIT_S,
    ) -> None:
        self.store = store
        self.tally = tally
        self.journal = journal
        self.max_clicks = max_clicks
        self.journal_wait_s = journal_wait_s
        self._clicks: dict[str, _Kept] = {}  # uid -> click, oldest first
        self._wake = asyncio.Event()
        self._replayer: asyncio.Task[None] | None = None
        # Counters since start (tests, logs, metrics).
        self.kept = 0
        self.stored = 0
        self.dropped = 0
        # What was last logged, so that each change of state is logged once.
        self._full = False
        self._journal_ok = True
        self._dropped_while_full = 0

    def __len__(self) -> int:
        return len(self._clicks)

    async def start(self) -> None:
        """Read the journal (clicks a server that died left in it) and start storing."""
        if self.journal is not None:
            try:
                found = await self.journal.open()
            except OSError as exc:
                self._journal_failing(exc)
            else:
                for draft in found.clicks:
                    self._clicks[draft.uid] = _Kept(draft, journaled=True)
                if found.unreadable:
                    log.warning(
                        "the click journal %s held %d lines without a click (cut off by a crash)",
                        self.journal.path,
                        found.unreadable,
                    )
                if self._clicks:
                    log.warning(
                        "%d clicks left in the click journal %s by a server that stopped are"
                        " being stored",
                        len(self._clicks),
                        self.journal.path,
                    )
        self._replayer = asyncio.create_task(self._replay_forever(), name="xtracker-pending")
        if self._clicks:
            self._wake.set()

    async def stop(self) -> None:
        """Store what is kept if storage allows it (for at most ``STOP_WAIT_S``); what is in
        the journal waits there for the next start; what is in memory only is lost: counted
        as dropped, and logged."""
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
            self._replayer = None
        if self._clicks:
            try:
                await asyncio.wait_for(self.replay(), STOP_WAIT_S)
            except Exception as exc:  # storage still fails (or too slowly): kept for next time
                log.warning("the kept clicks could not be stored before stopping: %s", exc)
            else:
                await self._recovered()
        if self._clicks:
            await self._journal_the_rest(wait_s=0)
        if self.journal is not None:
            await self.journal.close()  # every append made is on disk, or failed
        if self._clicks:
            lost = [kept.draft for kept in self._clicks.values() if not kept.journaled]
            if lost:
                self._drop(lost)
                log.error(
                    "%d kept clicks could be neither stored nor written to the click journal:"
                    " they are lost (counted as dropped)",
                    len(lost),
                )
            if len(lost) < len(self._clicks):
                log.warning(
                    "%d kept clicks wait in the click journal %s: they are stored at the next"
                    " start",
                    len(self._clicks) - len(lost),
                    self.journal.path if self.journal else "",
                )

    # ---------------------------------------------------------------- what the landing calls

    def holds(self, space_id: int, link_id: int, uid: str, since_ms: int) -> bool:
        """Whether ``uid`` is a kept click of this link made since ``since_ms`` (a repeat visit
        of a browser whose click is not stored yet)."""
        kept = self._clicks.get(uid)
        if kept is None:
            return False
        draft = kept.draft
        return (
            draft.space_id == space_id
            and draft.link_id == link_id
            and (draft.created_ms >= since_ms)
        )

    async def keep(self, draft: ClickDraft, cause: BaseException) -> None:
        """Keep a click that storage refused (``cause``); returns once its line is in the
        journal, or after ``journal_wait_s``, or at once if it cannot be kept (dropped)."""
        if len(self._clicks) >= self.max_clicks:
            self._drop([draft])
            if not self._full:
                self._full = True
                log.error(
                    "the click buffer is full (XTRACKER_CLICK_BUFFER_MAX=%d clicks) while"
                    " storage fails: visitors are still sent on, but their clicks are lost and"
                    " counted as dropped",
                    self.max_clicks,
                )
            self._dropped_while_full += 1
            return
        if not self._clicks:
            log.warning(
                "recording a click failed (%s): visitors are sent on and their clicks kept%s"
                " until storage takes them",
                cause,
                f" in {self.journal.path}" if self.journal is not None else " in memory",
            )
        if self._full:
            self._room_again()
        kept = _Kept(draft)
        self._clicks[draft.uid] = kept
        self.kept += 1
        self._wake.set()
        written = self._append([kept])
        if written is not None:
            await asyncio.wait((written,), timeout=self.journal_wait_s)

    # ---------------------------------------------------------------- storing what is kept

    async def replay(self) -> int:
        """Store every kept click, a batch per write; returns how many were new. Raises the
        storage fault that stops it (what is left stays kept)."""
        new = 0
        while self._clicks:
            batch = list(itertools.islice(self._clicks.values(), REPLAY_BATCH))
            try:
                new += await self.store.record_kept_clicks([kept.draft for kept in batch])
            except Exception as exc:
                if is_storage_fault(exc):
                    raise
                new += await self._replay_one_by_one(batch)
            for kept in batch:
                self._clicks.pop(kept.draft.uid, None)
            self.stored += len(batch)
        return new

    async def _replay_one_by_one(self, batch: list[_Kept]) -> int:
        """A batch the store refused for another reason than storage: each click alone; the
        one it still refuses (its link deleted meanwhile, say) is dropped."""
        new, refused = 0, []
        for kept in batch:
            try:
                new += await self.store.record_kept_clicks([kept.draft])
            except Exception as exc:
                if is_storage_fault(exc):
                    raise
                refused.append((kept.draft, exc))
        if refused:
            self._drop([draft for draft, _ in refused])
            log.error(
                "%d kept clicks were refused by the store and are dropped, the first with: %s",
                len(refused),
                refused[0][1],
            )
        return new

    async def _replay_forever(self) -> None:
        pause = RETRY_FIRST_S
        while True:
            if not self._clicks:
                self._wake.clear()
                await self._wake.wait()
                pause = RETRY_FIRST_S
            await asyncio.sleep(pause)  # a writer that died is replaced after half a second
            try:
                await self.replay()
            except Exception as exc:
                if not is_storage_fault(exc):
                    log.exception("storing the kept clicks failed")
                await self._journal_the_rest(wait_s=0)
                pause = min(pause * 2, RETRY_MAX_S)
                continue
            await self._recovered()

    async def _recovered(self) -> None:
        """Every kept click is stored: empty the journal, and say so."""
        if self._full:
            self._room_again()
        if self.journal is not None:
            try:
                await self.journal.clear()
            except OSError as exc:  # its lines are stored: replayed again, they are skipped
                self._journal_failing(exc)
        log.warning(
            "storage recovered: every kept click is stored (since start: %d stored, %d dropped)",
            self.stored,
            self.dropped,
        )

    async def _journal_the_rest(self, *, wait_s: float) -> None:
        """Append the kept clicks that are in memory only (the journal failed or was slow) once
        more; wait for it at most ``wait_s``."""
        missing = [k for k in self._clicks.values() if not (k.journaled or k.writing)]
        written = self._append(missing) if missing else None
        if written is not None and wait_s:
            await asyncio.wait((written,), timeout=wait_s)

    def _append(self, kept: list[_Kept]) -> asyncio.Future[None] | None:
        """Append ``kept`` to the journal; the future resolves once they are on disk."""
        if self.journal is None:
            return None
        for k in kept:
            k.writing = True
        written = self.journal.append([k.draft for k in kept])
        written.add_done_callback(lambda done: self._journaled(kept, done))
        return written

    # ---------------------------------------------------------------- state and counts

    def _journaled(self, kept: list[_Kept], written: asyncio.Future[None]) -> None:
        error = written.exception()
        for k in kept:
            k.writing = False
            k.journaled = error is None
        if error is not None:
            self._journal_failing(error)
            return
        if not self._journal_ok:
            self._journal_ok = True
            log.warning("the click journal is written again")

    def _journal_failing(self, error: BaseException) -> None:
        if self._journal_ok:
            self._journal_ok = False
            log.error(
                "the click journal %s cannot be written (%s): kept clicks are in memory only,"
                " and lost if the server stops before storage recovers",
                self.journal.path if self.journal else "",
                error,
            )

    def _drop(self, drafts: list[ClickDraft]) -> None:
        for draft in drafts:  # counted in the hour of the click
            if draft.link_id is not None:
                self.tally.add(draft.space_id, draft.link_id, Reason.DROPPED, draft.created_ms)
        self.dropped += len(drafts)

    def _room_again(self) -> None:
        self._full = False
        log.warning(
            "the click buffer has room again: %d clicks were dropped while it was full",
            self._dropped_while_full,
        )
        self._dropped_while_full = 0
