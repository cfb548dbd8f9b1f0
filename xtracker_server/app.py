"""``create_app(settings)``: the Starlette application. Its lifespan opens the store (migrating
the file) and starts the group-commit writer; on shutdown it drains and closes them."""

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
from xtracker_server.landing.cache import LinkCache
from xtracker_server.landing.routes import routes as landing_routes
from xtracker_server.state import AppState
from xtracker_server.store.runtime import Store


def create_app(settings: Settings) -> Starlette:
    store = Store(settings.db, sync=settings.sync)
    state = AppState(
        settings=settings,
        store=store,
        auth=Authenticator(store, settings),
        links=LinkCache(store, ttl_s=settings.credential_cache_s),
        trusted_proxies=parse_networks(settings.trusted_proxies),
    )

    streams = LiveStreams(poll_s=settings.stream_poll_s)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        streams.start()
        if settings.worker:
            state.worker = Worker(store, settings)
            await state.worker.start()
        try:
            yield
        finally:
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
    app.state.streams = streams
    return app
