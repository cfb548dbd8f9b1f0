"""The live stream's reader (admin/stream.py ``LiveStreams``) with a store whose poll is held:
what a stream that joins while the reader is reading the database gets."""

from __future__ import annotations

import asyncio
from typing import Any

from xtracker_server.admin.stream import SPACE_DELETED, LiveStreams
from xtracker_server.domain.tail import Marks, Poll
from xtracker_server.domain.watermark import Watermark

MARKS: Marks = (Watermark(5), Watermark(7), Watermark(0))


class HeldPoll:
    """A store whose ``tail_poll`` answers for the spaces it was asked about (all exist), the
    first poll only once ``release`` is set."""

    def __init__(self) -> None:
        self.asked: list[set[int]] = []
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def tail_poll(self, marks: Marks | None, spaces: set[int], now: float) -> Poll:
        self.asked.append(set(spaces))
        if len(self.asked) == 1:
            self.entered.set()
            await self.release.wait()
        return Poll(MARKS, spaces=frozenset(spaces))


class Valid:
    async def still_valid(self, credential: bytes) -> bool:
        return True


def test_a_stream_that_joins_during_a_poll_is_not_ended_as_deleted() -> None:
    """The poll was asked about space 1 only; space 2's stream joined while it read. Space 2
    is not in the poll's answer because nobody asked, not because it was deleted: its stream
    stays open and starts at the poll's watermarks; the next poll asks about both."""

    async def run() -> tuple[Any, ...]:
        store = HeldPoll()
        streams = LiveStreams(store, Valid(), poll_s=0.01)  # type: ignore[arg-type]
        first = streams.open(1, b"key-a")
        await asyncio.wait_for(store.entered.wait(), 10)
        joined = streams.open(2, b"key-b")  # while the reader reads
        store.release.set()
        for _ in range(1000):  # bounded: the reader polls every 10 ms
            if len(store.asked) >= 2:
                break
            await asyncio.sleep(0.01)
        await streams.stop()
        return first, joined, store.asked

    first, joined, asked = asyncio.run(run())
    assert asked[0] == {1} and asked[1] == {1, 2}
    assert joined.ended != SPACE_DELETED and joined.start == MARKS
    assert first.ended != SPACE_DELETED
