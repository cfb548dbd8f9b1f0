"""``create_app(settings)``: the ASGI application. Its lifespan opens the store (migrating the
file) and starts the group-commit writer; on shutdown it drains and closes them. The hottest
endpoints are answered by a thin front (``hot.HotPaths``) before Starlette's router."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from xtracker_server import admin, ingress, openapi
from xtracker_server.admin.stream import LiveStreams
from xtracker_server.auth import Authenticator
from xtracker_server.caches import AliasCache, SubIdCache
from xtracker_server.config import Settings
from xtracker_server.delivery.process import WorkerProcess
from xtracker_server.domain.devices import load_parser
from xtracker_server.domain.unrecorded import ClickLimiter, Tally
from xtracker_server.domain.visitors import parse_networks
from xtracker_server.errors import EXCEPTION_HANDLERS
from xtracker_server.hot import HotPaths, check_layers
from xtracker_server.housekeeping import Housekeeper
from xtracker_server.ingress.batch import post_events_batch
from xtracker_server.ingress.events import post_events
from xtracker_server.landing.cache import LinkCache
from xtracker_server.landing.journal import ClickJournal, journal_path
from xtracker_server.landing.pending import PendingClicks
from xtracker_server.landing.routes import landing, redirect
from xtracker_server.landing.routes import routes as landing_routes
from xtracker_server.metrics import Metrics, Sources
from xtracker_server.state import AppState
from xtracker_server.store.api import open_store


def create_app(settings: Settings) -> HotPaths:
    metrics = Metrics()
    store = open_store(
        settings.db,
        sync=settings.sync,
        observer=metrics,
        timeout_s=settings.write_timeout_s,
        writer_process=settings.writer_process,
        report_cube=settings.report_cube,
        rollup_process=settings.rollup_process,
    )
    unrecorded = Tally()
    journal = journal_path(settings.db)
    state = AppState(
        settings=settings,
        store=store,
        auth=Authenticator(store, settings),
        links=LinkCache(store, ttl_s=settings.credential_cache_s),
        trusted_proxies=parse_networks(settings.trusted_proxies),
        postback_aliases=AliasCache(store, ttl_s=settings.credential_cache_s),
        sub_ids=SubIdCache(store, ttl_s=settings.credential_cache_s),
        pending=PendingClicks(
            store,
            unrecorded,
            ClickJournal(journal) if journal else None,
            max_clicks=settings.click_buffer_max,
        ),
        click_limiter=ClickLimiter(settings.click_limit_per_ip)
        if settings.click_limit_per_ip
        else None,
        metrics=metrics,
        unrecorded=unrecorded,
    )

    streams = LiveStreams(
        store,
        state.auth,
        poll_s=settings.stream_poll_s,
        max_per_credential=settings.stream_max_per_credential,
        max_per_space=settings.stream_max_per_space,
    )
    metrics.sampled.sources = Sources(
        writer_running=store.writer_running,
        writer_restarts=store.writer_restarts,
        open_streams=streams.open_count,
        unrecorded=state.unrecorded.totals,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Middleware can still be added after create_app() returns, until the app starts: what
        # the hot paths would skip fails the start here (hot.py).
        check_layers(app)
        # The user-agent parser takes about a second to build: before the first click, not in it.
        await asyncio.to_thread(load_parser)
        await store.open()
        await state.pending.start()  # stores what a server that died left in the journal
        housekeeper = Housekeeper(store, settings, state.unrecorded)
        await housekeeper.start()
        streams.start()
        if settings.worker:
            # A process of its own (delivery/process.py) where it can be handed its pipes.
            if settings.worker_process and os.name == "posix":
                state.worker = WorkerProcess(settings, metrics)
            else:  # here: the delivery client (aiohttp) only for a worker in this process
                from xtracker_server.delivery.worker import Worker

                state.worker = Worker(store, settings, metrics=metrics)
            await state.worker.start()
        try:
            yield
        finally:
            await state.pending.stop()  # before the housekeeper stores what it counted dropped
            await housekeeper.stop()
            await streams.stop()
            if state.worker is not None:
                await state.worker.stop()
            await store.close()

    app = Starlette(
        routes=[*ingress.routes, *landing_routes, *admin.all_routes, *openapi.routes],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # ours below does not trust the Host header
    app.router.default = _slash_redirect(app.router, settings.base_url)
    app.state.xt = state
    hot_landing = {(m, p): ("slug", h) for m in ("GET", "HEAD")
                   for p, h in (("/l/", landing), ("/r/", redirect))}  # fmt: skip
    app.state.streams = streams
    hot_events = {("POST", "/events"): post_events, ("POST", "/events/batch"): post_events_batch}
    return HotPaths(app, exact=hot_events, prefixed=hot_landing, metrics=metrics)


def _slash_redirect(router: Router, base_url: str) -> ASGIApp:
    """What answers a path no route has: a redirect to the route with (or without) the trailing
    slash, as Starlette does, but built on the configured public URL. Starlette builds it from
    the request's ``Host`` header, which the client chooses: a redirect to any host."""

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] == "http" and path != "/":
            other = {**scope, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
            if any(route.matches(other)[0] is not Match.NONE for route in router.routes):
                query = scope["query_string"].decode("latin-1")
                location = base_url + other["path"] + (f"?{query}" if query else "")
                await RedirectResponse(location)(scope, receive, send)
                return
        await router.not_found(scope, receive, send)

    return default
