"""What the request handlers share: settings, the store and the authenticator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from xtracker_server.auth import Authenticator
from xtracker_server.caches import AliasCache, SubIdCache
from xtracker_server.config import Settings
from xtracker_server.domain.unrecorded import ClickLimiter, Tally
from xtracker_server.domain.visitors import Network
from xtracker_server.landing.cache import LinkCache
from xtracker_server.landing.pending import PendingClicks
from xtracker_server.metrics import Metrics
from xtracker_server.store.api import Store

if TYPE_CHECKING:  # the worker's modules import aiohttp: only a process that runs it needs it
    from xtracker_server.delivery.process import WorkerProcess
    from xtracker_server.delivery.worker import Worker


@dataclass
class AppState:
    settings: Settings
    store: Store
    auth: Authenticator
    links: LinkCache
    trusted_proxies: tuple[Network, ...]
    postback_aliases: AliasCache
    pending: PendingClicks  # clicks kept while storage fails (landing/pending.py)
    sub_ids: SubIdCache  # the query parameters each space records as sub-ids
    # The delivery worker, in this process or in a child (XTRACKER_WORKER_PROCESS); None: off.
    worker: Worker | WorkerProcess | None = None
    click_limiter: ClickLimiter | None = None  # None: XTRACKER_CLICK_LIMIT_PER_IP is 0 (off)
    unrecorded: Tally = field(default_factory=Tally)  # landing visits not recorded, to store
    metrics: Metrics = field(default_factory=Metrics)  # what GET /metrics shows

    def wake_worker(self) -> None:
        if self.worker is not None:
            self.worker.wake()


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.xt
    return state
