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
from xtracker_server.domain.visitors import parse_networks
from xtracker_server.errors import EXCEPTION_HANDLERS
from xtracker_server.hot import HotPaths
from xtracker_server.housekeeping import Housekeeper
from xtracker_server.ingress.events import post_events
from xtracker_server.landing.cache import LinkCache
from xtracker_server.landing.routes import landing, redirect
from xtracker_server.landing.routes import routes as landing_routes
from xtracker_server.state import AppState
from xtracker_server.store.alias_cache import AliasCache
from xtracker_server.store.runtime import Store


def create_app(settings: Settings) -> HotPaths:
    store = Store(settings.db, sync=settings.sync, timeout_s=settings.write_timeout_s)
    state = AppState(
        settings=settings,
        store=store,
        auth=Authenticator(store, settings),
        links=LinkCache(store, ttl_s=settings.credential_cache_s),
        trusted_proxies=parse_networks(settings.trusted_proxies),
        postback_aliases=AliasCache(store, ttl_s=settings.credential_cache_s),
    )

    streams = LiveStreams(poll_s=settings.stream_poll_s)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        housekeeper = Housekeeper(store, settings)
        await housekeeper.start()
        streams.start()
        if settings.worker:
            state.worker = Worker(store, settings)
            await state.worker.start()
        try:
            yield
        finally:
            await housekeeper.stop()
            streams.stop()
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
