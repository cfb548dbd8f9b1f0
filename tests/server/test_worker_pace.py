"""The delivery worker in process, on a real SQLite file, delivering to a real local HTTP sink:
the drain order after an outage (domain/drain.py) and the batched settle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.databases import migrated
from tests.sink import Reply, Sink
from xtracker_server.config import Settings
from xtracker_server.delivery import worker as worker_module
from xtracker_server.delivery.adapters import hold_limit, min_claim
from xtracker_server.delivery.worker import Worker
from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.destinations import (
    DestinationInput,
    DestinationKind,
    prepare_destination,
)
from xtracker_server.store.sqlite import destinations as dest_store
from xtracker_server.store.sqlite import spaces
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_events
from xtracker_server.store.sqlite.runtime import Store

T = TypeVar("T")
#: Several holds (hold_limit, 256): new events can be seen overtaking it; over the 40 + 3 holds
#: by which the new ones must have gone (1200 proved no more).
BACKLOG = 900
NEW = 10


class CountingStore(Store):
    """The real store, counting the writes of each operation and how many run at once."""

    def __init__(self, path: str) -> None:
        super().__init__(path, writer_process=False)
        self.calls: dict[str, int] = {}
        self.running: dict[str, int] = {}
        self.most_at_once: dict[str, int] = {}

    async def write(self, op: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        name = op.__name__
        self.calls[name] = self.calls.get(name, 0) + 1
        self.running[name] = self.running.get(name, 0) + 1
        self.most_at_once[name] = max(self.most_at_once.get(name, 0), self.running[name])
        try:
            return await super().write(op, *args, **kwargs)
        finally:
            self.running[name] -= 1


def _drafts(space: int, prefix: str, count: int, first_ms: int) -> list[InboxDraft]:
    return [
        InboxDraft(space, dedup_key(space, "u1", None, "deposit", f"{prefix}{i}", first_ms + i),
                   "deposit", "u1", None, f"{prefix}{i}", "25.00", "USD", first_ms + i,
                   first_ms + i, "api")
        for i in range(count)
    ]  # fmt: skip


def _seed_backlog(path: Path, url: str, backlog: int = BACKLOG) -> int:
    """A space with one webhook destination and ``backlog`` deliveries left over from an
    outage an hour ago, in a new database at ``path``; returns the space's id."""
    conn = open_db(str(migrated(path)))
    try:
        now = int(time.time() * 1000)
        with transaction(conn):
            space = spaces.create_space(conn, "s", now).space.id
            hook = prepare_destination(DestinationInput(kind=DestinationKind.WEBHOOK, url=url))
            dest_store.create_destination(conn, space, hook, now)
            insert_events(conn, _drafts(space, "old", backlog, now - 3_600_000))
    finally:
        conn.close()
    return space


async def _until(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s  # a hang guard only: this takes about a second
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def sink() -> Any:
    s = Sink()
    yield s
    s.close()


def test_after_an_outage_the_backlog_goes_oldest_first_and_new_events_are_not_starved(
    tmp_path: Path, sink: Sink
) -> None:
    path = tmp_path / "w.db"
    space = _seed_backlog(path, f"{sink.url}/hook")
    settings = Settings().with_(db=str(path), allow_private_destinations=True)

    async def run() -> CountingStore:
        store = CountingStore(str(path))
        await store.open()
        worker = Worker(store, settings, poll_s=0.05)
        await worker.start()
        try:
            await _until(lambda: len(sink.received) >= 40)
            now = int(time.time() * 1000)
            await store.write(insert_events, _drafts(space, "new", NEW, now))
            worker.wake()
            await _until(lambda: len(sink.received) >= BACKLOG + NEW)
        finally:
            await worker.stop()
            await store.close()
        return store

    store = asyncio.run(run())
    eids = [r.json()["eid"] for r in sink.received]
    assert sorted(eids) == sorted(
        [f"old{i}" for i in range(BACKLOG)] + [f"new{i}" for i in range(NEW)]
    )
    backlog = [int(e[3:]) for e in eids if e.startswith("old")]
    # oldest first: each backlog event arrives within what the worker holds of its place
    # (it sends several at once, and a claim's rows in any order)
    window = hold_limit(DestinationKind.WEBHOOK)
    # A request that stalls on a loaded machine lands late while the others go on: a few
    # (2 %) may arrive out of the window; strictly newest first would put every one out of it.
    late = [index for place, index in enumerate(backlog) if abs(place - index) > window]
    assert len(late) <= BACKLOG // 50, str(backlog)
    # not starved: the new events are sent within a few claims of their arrival, long before
    # the backlog is through (strictly oldest first, they would come after all of it)
    last_new = max(place for place, e in enumerate(eids) if e.startswith("new"))
    first_new_could_go = 40
    assert last_new < first_new_could_go + 3 * window < BACKLOG, eids
    # the outcomes went in batches (fewer writes than deliveries), one write at a time
    assert store.most_at_once["settle"] == 1
    assert store.calls["settle"] < BACKLOG + NEW, store.calls


def test_when_a_destination_answers_again_the_outage_s_retries_go_at_once_oldest_first(
    tmp_path: Path, sink: Sink
) -> None:
    """An outage leaves its deliveries waiting out a backoff (here ten minutes); the first one
    sent after it ends makes them all due, and they go oldest first at the worker's pace."""
    path = tmp_path / "w.db"
    space = _seed_backlog(path, f"{sink.url}/hook", backlog=0)
    settings = Settings().with_(db=str(path), allow_private_destinations=True, retry_base_s=600.0)
    outage = 150
    assert outage < worker_module.HASTEN_BATCH  # made due at once: strictly oldest first
    sink.default = Reply(503)

    async def run() -> dict[str, int]:
        store = Store(str(path), writer_process=False)
        await store.open()
        worker = Worker(store, settings, poll_s=0.05)
        await worker.start()
        try:
            start = int(time.time() * 1000) - 600_000
            await store.write(insert_events, _drafts(space, "down", outage, start))
            worker.wake()

            async def retrying() -> int:
                return (await store.delivery_counts(space)).get("retrying", 0)

            deadline = time.monotonic() + 60  # a hang guard: this takes a few seconds
            while await retrying() < outage:  # every one tried once, and waiting 10 minutes
                assert time.monotonic() < deadline, "timed out"
                await asyncio.sleep(0.05)
            assert len(sink.received) == outage  # none tried twice: they wait
            sink.default = Reply(200)
            await store.write(insert_events, _drafts(space, "up", 1, int(time.time() * 1000)))
            worker.wake()
            await _until(lambda: len(_delivered(sink)) >= outage + 1)
            deadline = time.monotonic() + 60  # the last outcomes are being written
            while (counts := await store.delivery_counts(space)).get("sent", 0) < outage + 1:
                assert time.monotonic() < deadline, counts
                await asyncio.sleep(0.05)
            return counts
        finally:
            await worker.stop()
            await store.close()

    counts = asyncio.run(run())
    assert counts == {"sent": outage + 1}
    delivered = _delivered(sink)
    assert delivered[0] == "up0"  # the new event came first and showed the destination was back
    order = [int(e[4:]) for e in delivered[1:]]
    assert sorted(order) == list(range(outage))
    window = hold_limit(DestinationKind.WEBHOOK)
    late = [index for place, index in enumerate(order) if abs(place - index) > window]
    assert len(late) <= outage // 50, order


def _delivered(sink: Sink) -> list[str]:
    """The eids the sink accepted, in the order they arrived."""
    return [r.json()["eid"] for r in sink.received if r.responder_status == 200]


def test_a_backlog_is_claimed_in_chunks_a_quarter_of_the_hold(tmp_path: Path, sink: Sink) -> None:
    """Each claim waits for the writer: the worker holds enough (``hold_limit``) to claim in
    large chunks (``min_claim``), a few round trips for a backlog rather than one per dozen."""
    path = tmp_path / "w.db"
    # Half the other tests' backlog: a claim per dozen would be 50 claims, against the 12 at
    # most allowed here (a chunk of 64 is a quarter of the hold either way).
    backlog = BACKLOG // 2
    _seed_backlog(path, f"{sink.url}/hook", backlog=backlog)
    settings = Settings().with_(db=str(path), allow_private_destinations=True)

    async def run() -> CountingStore:
        store = CountingStore(str(path))
        await store.open()
        worker = Worker(store, settings, poll_s=0.05)
        await worker.start()
        try:
            await _until(lambda: len(sink.received) >= backlog)
        finally:
            await worker.stop()
            await store.close()
        return store

    store = asyncio.run(run())
    assert min_claim(DestinationKind.WEBHOOK) >= 64
    assert store.calls["claim"] <= backlog // min_claim(DestinationKind.WEBHOOK) + 3, store.calls


def test_a_held_delivery_whose_lease_would_run_out_is_let_go_not_sent(
    tmp_path: Path, sink: Sink
) -> None:
    """A delivery whose turn comes after its lease could have run out may be another worker's
    by then: the worker that held it lets it go, and gives it back: due again at once, its
    claim not counted as an attempt (its backoff after a failure does not grow with the lets
    go). Here every claim is let go: nothing is sent, and no attempt is counted."""
    path = tmp_path / "w.db"
    space = _seed_backlog(path, f"{sink.url}/hook", backlog=5)
    settings = Settings().with_(
        db=str(path), allow_private_destinations=True, delivery_timeout_s=2.0
    )

    async def run() -> tuple[dict[str, int], list[int]]:
        store = Store(str(path), writer_process=False)
        await store.open()
        worker = Worker(store, settings, poll_s=0.05)
        worker.lease_ms = 2500  # shorter than a request could take (2 s) and a margin
        await worker.start()
        try:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await worker.stop()
        try:
            rows = await store.list_deliveries(space)
            return await store.delivery_counts(space), [r.attempts for r in rows]
        finally:
            await store.close()

    counts, attempts = asyncio.run(run())
    assert sink.received == []
    assert counts == {"pending": 5}
    assert attempts == [0] * 5


def test_a_stopped_worker_gives_back_what_it_held_unsent(tmp_path: Path, sink: Sink) -> None:
    """On stop, what the worker claimed and had not begun to send is due again at once (another
    worker takes it now, not after the lease), its claim not counted; only the requests cut
    off in flight keep their lease."""
    path = tmp_path / "w.db"
    space = _seed_backlog(path, f"{sink.url}/hook", backlog=60)
    sink.default = Reply(delay_s=0.3)
    settings = Settings().with_(db=str(path), allow_private_destinations=True)

    async def run() -> tuple[int, list[int]]:
        store = Store(str(path), writer_process=False)
        await store.open()
        try:
            worker = Worker(store, settings, poll_s=0.05)
            await worker.start()
            deadline = time.monotonic() + 30  # only a hang's bound: 8 requests take 0.3 s
            while len(sink.received) < 8 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await worker.stop(timeout_s=0.1)
            now = int(time.time() * 1000)
            ((destination_id, _),) = await store.due_destinations(now)
            again = await store.claim(destination_id, "another", now, 60_000, 100)
            sent = (await store.delivery_counts(space)).get("sent", 0)
            return sent, [c.attempts for c in again]
        finally:
            await store.close()

    sent, attempts = asyncio.run(run())
    in_flight = 8  # requests_in_flight of a webhook: cut off, they keep their lease
    assert len(attempts) >= 60 - sent - in_flight > 0
    assert attempts == [1] * len(attempts)  # this claim's; the stopped worker's was given back


@pytest.mark.parametrize("concurrency", [8, 16])
def test_the_requests_in_flight_to_a_destination_are_the_setting_s(
    tmp_path: Path, sink: Sink, concurrency: int
) -> None:
    """XTRACKER_DELIVERY_CONCURRENCY: a slow receiver (1 s an answer) gets that many requests
    at once, no more (a distant one takes about that many divided by its answer time)."""
    path = tmp_path / "w.db"
    _seed_backlog(path, f"{sink.url}/hook", backlog=40)
    sink.default = Reply(delay_s=1.0)
    settings = Settings().with_(
        db=str(path), allow_private_destinations=True, delivery_concurrency=concurrency
    )

    async def run() -> None:
        store = Store(str(path), writer_process=False)
        await store.open()
        try:
            worker = Worker(store, settings, poll_s=0.05)
            await worker.start()
            deadline = time.monotonic() + 60  # only a hang's bound: 3 to 5 rounds of 1 s
            while len(sink.received) < 40 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await worker.stop()
        finally:
            await store.close()

    asyncio.run(run())
    first = min(r.at for r in sink.received)
    # a request is recorded when its answer is written, 1 s after it came: the first round
    # came together, the next one a second later
    first_round = [r for r in sink.received if r.at - first < 0.5]
    assert len(first_round) == concurrency
    assert len(sink.received) == 40
