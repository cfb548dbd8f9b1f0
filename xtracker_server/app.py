"""``create_app(settings)``: the ASGI application. Its lifespan opens the store (migrating the
file) and starts the group-commit writer; on shutdown it drains and closes them. The hottest
endpoints are answered by a thin front (``hot.HotPaths``) before Starlette's router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from xtracker_server import admin, ingress
from xtracker_server.admin.stream import LiveStreams
from xtracker_server.auth import Authenticator
from xtracker_server.config import Settings
from xtracker_server.delivery.worker import Worker
from xtracker_server.domain.unrecorded import ClickLimiter, Tally
from xtracker_server.domain.visitors import parse_networks
from xtracker_server.errors import EXCEPTION_HANDLERS
from xtracker_server.hot import HotPaths
from xtracker_server.housekeeping import Housekeeper
from xtracker_server.ingress.events import post_events
from xtracker_server.landing.cache import LinkCache
from xtracker_server.landing.journal import ClickJournal, journal_path
from xtracker_server.landing.pending import PendingClicks
from xtracker_server.landing.routes import landing, redirect
from xtracker_server.landing.routes import routes as landing_routes
from xtracker_server.state import AppState
from xtracker_server.store.alias_cache import AliasCache
from xtracker_server.store.runtime import Store


def create_app(settings: Settings) -> HotPaths:
    store = Store(settings.db, sync=settings.sync)
    unrecorded = Tally()
    journal = journal_path(settings.db)
    state = AppState(
        settings=settings,
        store=store,
        auth=Authenticator(store, settings),
        links=LinkCache(store, ttl_s=settings.credential_cache_s),
        trusted_proxies=parse_networks(settings.trusted_proxies),
        postback_aliases=AliasCache(store, ttl_s=settings.credential_cache_s),
        pending=PendingClicks(
            store,
            unrecorded,
            ClickJournal(journal) if journal else None,
            max_clicks=settings.click_buffer_max,
        ),
        click_limiter=ClickLimiter(settings.click_limit_per_ip)
        if settings.click_limit_per_ip
        else None,
        unrecorded=unrecorded,
    )

    streams = LiveStreams(
        store,
        state.auth,
        poll_s=settings.stream_poll_s,
        max_per_credential=settings.stream_max_per_credential,
        max_per_space=settings.stream_max_per_space,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        await state.pending.start()  # stores what a server that died left in the journal
        housekeeper = Housekeeper(store, settings, state.unrecorded)
        await housekeeper.start()
        streams.start()
        if settings.worker:
            state.worker = Worker(store, settings)
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
        routes=[*ingress.routes, *landing_routes, *admin.all_routes],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.xt = state
    hot_landing = {(m, p): ("slug", h) for m in ("GET", "HEAD")
                   for p, h in (("/l/", landing), ("/r/", redirect))}  # fmt: skip
    app.state.streams = streams
    return HotPaths(app, exact={("POST", "/events"): post_events}, prefixed=hot_landing)
