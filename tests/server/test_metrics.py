"""The metrics (xtracker_server/metrics.py) without a server: requests counted by the ASGI front
for its own paths and the router's, write batches told by either writer, the database's figures
under a time bound, and registries that keep apart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.server import writer_ops as ops
from xtracker_server import metrics as metrics_module
from xtracker_server.auth import Authenticator
from xtracker_server.config import Settings
from xtracker_server.domain.unrecorded import Reason, Tally
from xtracker_server.errors import EXCEPTION_HANDLERS, ApiError
from xtracker_server.hot import HotPaths, route_templates
from xtracker_server.metrics import Metrics, Readings
from xtracker_server.store.sqlite.runtime import Store
from xtracker_server.store.sqlite.writer import StoreUnavailable


def samples(metrics: Metrics, readings: Readings | None = None) -> dict[tuple[str, str], float]:
    """Every sample of the exposition, by name and its labels written ``k=v,k=v``."""
    out = {}
    text = metrics.exposition(readings)[0].decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))] = s.value
    return out


async def page(request: Request) -> Response:
    if request.query_params.get("fail"):
        raise RuntimeError("boom")
    return PlainTextResponse("ok")


async def hot(request: Request) -> Response:
    return PlainTextResponse("hot", status_code=302 if request.method == "GET" else 200)


def front(metrics: Metrics) -> HotPaths:
    app = Starlette(
        routes=[
            Route("/pages/{name}", page, methods=["GET"]),
            Route("/r/{slug}", hot, methods=["GET", "HEAD"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    return HotPaths(app, exact={}, prefixed={("GET", "/r/"): ("slug", hot)}, metrics=metrics)


def call(app: HotPaths, *requests: tuple[str, str]) -> list[int]:
    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.request(m, p)).status_code for m, p in requests]

    return asyncio.run(go())


def requests_counted(metrics: Metrics) -> dict[str, float]:
    return {
        labels: value
        for (name, labels), value in samples(metrics).items()
        if name == "xtracker_http_requests_total"
    }


def test_requests_are_counted_by_route_template_on_hot_paths_and_the_router() -> None:
    metrics = Metrics()
    statuses = call(
        front(metrics),
        ("GET", "/r/abc"),  # served by the front itself
        ("GET", "/r/xyz"),
        ("HEAD", "/r/abc"),  # not a hot path: the router's
        ("GET", "/pages/one"),
        ("GET", "/pages/two?fail=1"),  # an unhandled error: 500
        ("POST", "/pages/one"),  # 405
        ("GET", "/nowhere/at/all"),  # 404
        ("BREW", "/pages/one"),  # a method of the client's invention
    )
    assert statuses == [302, 302, 200, 200, 500, 405, 404, 405]
    assert requests_counted(metrics) == {
        "method=GET,route=/r/{slug},status=302": 2,
        "method=HEAD,route=/r/{slug},status=200": 1,
        "method=GET,route=/pages/{name},status=200": 1,
        "method=GET,route=/pages/{name},status=500": 1,
        "method=POST,route=/pages/{name},status=405": 1,
        "method=GET,route=unmatched,status=404": 1,
        "method=OTHER,route=/pages/{name},status=405": 1,
    }


def test_an_endpoint_serving_two_templates_is_refused() -> None:
    with pytest.raises(ValueError, match="serves both /a and /b"):
        route_templates([Route("/a", page), Route("/b", page)])
    assert route_templates([Route("/a", page, methods=["GET"]), Route("/a", page)]) == {page: "/a"}


def test_two_apps_in_one_process_keep_their_own_counts() -> None:
    one, two = Metrics(), Metrics()
    call(front(one), ("GET", "/r/a"))
    assert requests_counted(one) == {"method=GET,route=/r/{slug},status=302": 1}
    assert requests_counted(two) == {}


class Recorder:
    """A BatchObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.committed_batches: list[tuple[int, float]] = []
        self.failed_batches: list[int] = []

    def committed(self, operations: int, seconds: float) -> None:
        self.committed_batches.append((operations, seconds))

    def failed(self, operations: int) -> None:
        self.failed_batches.append(operations)


@pytest.mark.parametrize("in_process", [True, False], ids=["writer-process", "writer-thread"])
def test_every_batch_is_told_to_the_observer(tmp_path: Path, in_process: bool) -> None:
    recorder = Recorder()

    async def run() -> list[object]:
        store = Store(
            str(tmp_path / "o.db"),
            writer_process=in_process,
            observer=recorder,
            operations=ops.WRITER_OPS,
        )
        await store.open()
        try:
            await store.write(ops.make_table)
            await asyncio.gather(*(store.write(ops.insert, n) for n in range(1, 41)))
            return await asyncio.gather(
                store.write(ops.insert, 100),
                store.write(ops.break_the_commit),
                return_exceptions=True,
            )
        finally:
            await store.close()

    insert_100, broken = asyncio.run(run())
    assert isinstance(broken, StoreUnavailable)
    # The two last writes share a batch (then both fail) unless a slow machine let the writer
    # take the insert alone first (then it commits): either way every operation is told once.
    shared = isinstance(insert_100, StoreUnavailable)
    assert sum(n for n, _ in recorder.committed_batches) == 41 + (0 if shared else 1)
    assert all(0 < seconds < 10 for _, seconds in recorder.committed_batches)
    assert recorder.failed_batches == ([2] if shared else [1])


def test_batches_and_failures_show_in_the_exposition() -> None:
    metrics = Metrics()
    metrics.committed(3, 0.002)
    metrics.committed(40, 0.02)
    metrics.failed(5)
    got = samples(metrics)
    assert got["xtracker_write_batch_operations_count", ""] == 2
    assert got["xtracker_write_batch_operations_sum", ""] == 43
    assert got["xtracker_write_batch_operations_bucket", "le=5.0"] == 1
    assert got["xtracker_write_commit_seconds_bucket", "le=0.0025"] == 1
    assert got["xtracker_write_failed_batches_total", ""] == 1
    assert got["xtracker_write_failed_operations_total", ""] == 5


class SlowStore:
    """A store whose reads take ``delay_s`` (and are counted)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.reads = 0

    async def storage_figures(self) -> Readings:
        self.reads += 1
        await asyncio.sleep(self.delay_s)
        return Readings({"pending": 1, "retrying": 0}, {"webhook": 0})


def test_a_slow_database_is_read_once_at_a_time_and_its_last_figures_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_module, "READ_TIMEOUT_S", 0.05)
    metrics, store = Metrics(), SlowStore(delay_s=0.5)

    async def run() -> list[Readings | None]:
        first = await metrics.read_database(store)  # type: ignore[arg-type]
        second = await metrics.read_database(store)  # type: ignore[arg-type]
        await asyncio.sleep(0.6)  # the read ends
        third = await metrics.read_database(store)  # type: ignore[arg-type]
        monkeypatch.setattr(metrics_module, "READ_KEEP_S", 0.0)
        fourth = await metrics.read_database(store)  # type: ignore[arg-type]
        await asyncio.sleep(0.6)
        return [first, second, third, fourth]

    first, second, third, fourth = asyncio.run(run())
    assert first is None and second is None  # too slow, and nothing read before: left out
    assert store.reads == 2  # each second scrape waited for the read the one before started
    assert third is not None and third.outbox["pending"] == 1  # slow again: the last figures
    assert fourth is None  # ... unless they are too old
    names = {name for name, _ in samples(metrics, None)}
    assert "xtracker_outbox_deliveries" not in names
    assert ("xtracker_outbox_deliveries", "state=pending") in samples(metrics, third)


def test_the_database_figures_come_from_one_read_of_the_store(tmp_path: Path) -> None:
    async def run() -> tuple[Readings, int]:
        store = CountingReads(str(tmp_path / "d.db"))
        await store.open()
        try:
            await store.create_space("s", 1)
            before = store.reads
            readings = await Metrics().read_database(store)
            assert readings is not None
            return readings, store.reads - before
        finally:
            await store.close()

    readings, reads = asyncio.run(run())
    assert reads == 1
    assert dict(readings.outbox) == {"pending": 0, "retrying": 0}
    assert dict(readings.unhealthy) == {"fb_capi": 0, "webhook": 0, "s2s_postback": 0}
    # the write above is in the WAL (a passive checkpoint leaves the file as it is)
    assert readings.wal_bytes is not None and readings.wal_bytes > 0
    assert samples(Metrics(), readings)[("xtracker_wal_bytes", "")] == readings.wal_bytes


class CountingReads(Store):
    """The real store (its writer on a thread), counting its reads."""

    def __init__(self, path: str) -> None:
        super().__init__(path, writer_process=False)
        self.reads = 0

    async def read(self, op: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await super().read(op, *args, **kwargs)


def test_the_tally_keeps_totals_by_reason_across_takes() -> None:
    tally = Tally()
    tally.add(1, 2, Reason.BOT, 0)
    tally.add(1, 2, Reason.LIMITED, 0)
    tally.take()
    tally.add(1, 3, Reason.BOT, 0)
    assert tally.totals() == {"bot": 2, "limited": 1, "dropped": 0}


def test_a_labelled_child_is_looked_up_once() -> None:
    # A request costs a dict lookup and an increment, not a labels() call.
    metrics = Metrics()
    for _ in range(3):
        metrics.request("GET", "/r/{slug}", 302)
    metrics.request("GET", "/r/{slug}", 404)
    assert len(metrics._children) == 2
    assert requests_counted(metrics)["method=GET,route=/r/{slug},status=302"] == 3


class NoCredentials:
    """A store that knows no credential (what the admin check asks when the token is not the
    environment's)."""

    async def find_credential(self, secret_hash: bytes, now_ms: int) -> None:
        return None


def metrics_check(settings: Settings, authorization: str | None) -> int:
    """The status GET /metrics gets from the Authenticator: 200, or the ApiError's."""
    headers = [(b"authorization", authorization.encode())] if authorization else []
    request = Request({"type": "http", "method": "GET", "path": "/metrics", "headers": headers})
    auth = Authenticator(NoCredentials(), settings)  # type: ignore[arg-type]
    try:
        asyncio.run(auth.metrics_reader(request))
    except ApiError as exc:
        return exc.status
    return 200


ADMIN = "xt_admin_unit-0123456789abcdef-k3Vq9ZpL"  # long and random enough (config.py)
TOKEN = "scraper-0123456789abcdefghij"


def test_metrics_are_read_with_the_admin_token_or_the_metrics_token() -> None:
    settings = Settings(admin_token=ADMIN, metrics_token=TOKEN)
    assert metrics_check(settings, f"Bearer {ADMIN}") == 200
    assert metrics_check(settings, f"Bearer {TOKEN}") == 200
    assert metrics_check(settings, f"Bearer {TOKEN}x") == 401
    assert metrics_check(settings, None) == 401
    assert metrics_check(Settings(admin_token=ADMIN), f"Bearer {TOKEN}") == 401  # none set


def test_public_metrics_need_no_credential() -> None:
    assert metrics_check(Settings(admin_token=ADMIN, metrics_public=True), None) == 200
    assert metrics_check(Settings(admin_token=ADMIN), None) == 401  # off by default


def test_a_short_metrics_token_is_refused() -> None:
    with pytest.raises(ValueError, match="XTRACKER_METRICS_TOKEN must be at least 24"):
        Settings(metrics_token="short")
    assert Settings.from_env({"XTRACKER_METRICS_PUBLIC": "on"}).metrics_public
