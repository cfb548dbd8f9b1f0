"""Settings: every ``XTRACKER_*`` variable of ARCHITECTURE.md §5, each also a flag of
``xtracker serve``. The CLI resolves flags and environment; the app only sees ``Settings``."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Literal

from xtracker_server.domain.credentials import admin_token_problem

SyncMode = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
SYNC_MODES: tuple[str, ...] = ("OFF", "NORMAL", "FULL", "EXTRA")

#: Bodies above this are refused with 413 before they are parsed.
MAX_BODY_BYTES = 64 * 1024
#: The shortest XTRACKER_METRICS_TOKEN taken.
METRICS_TOKEN_MIN = 24


@dataclass(frozen=True)
class Settings:
    db: str = "./xtracker.db"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    admin_token: str | None = None
    sync: SyncMode = "FULL"
    worker: bool = True
    retry_base_s: float = 30.0
    retry_cap_s: float = 3600.0
    retry_max_age_s: float = 86400.0
    allow_private_destinations: bool = False
    fb_graph_url: str = "https://graph.facebook.com"
    fb_api_version: str = "v21.0"
    trusted_proxies: tuple[str, ...] = ()
    #: Requests per second allowed per credential (burst: twice that); 0 turns the limit off.
    rate_limit: float = 1000.0
    #: How long a looked-up credential is trusted before the database is asked again: a key
    #: created or rotated by the CLI in another process is seen within this many seconds.
    credential_cache_s: float = 2.0
    #: How long one delivery request may take before it counts as a timeout (retried).
    delivery_timeout_s: float = 10.0
    #: How often a worker looks for due deliveries when nothing woke it.
    worker_poll_s: float = 1.0
    #: The request header a CDN puts the visitor's country in (e.g. CF-IPCountry); none if unset.
    country_header: str | None = None
    #: A repeat visit by the same browser within this window keeps its uid (not a new click).
    click_window_s: float = 86400.0
    #: How long the postback log keeps a row (days); older rows are pruned in batches.
    postback_log_days: float = 30.0
    #: How often a live stream (GET /admin/spaces/{id}/stream) looks for new rows.
    stream_poll_s: float = 0.2
    #: Live streams open at once with one credential, and on one space (429 past either).
    stream_max_per_credential: int = 4
    stream_max_per_space: int = 16
    #: Clicks recorded per visitor address per minute (all at once, then refilled over the
    #: minute); past it a visitor is still sent on, unrecorded. 0 turns the limit off.
    click_limit_per_ip: int = 300
    #: Failed authentications allowed per client address a minute (bursts of as many), on
    #: every credential kind; past it a failure answers 429. Valid credentials always pass.
    auth_failures_per_minute: float = 20.0
    #: A token that may read GET /metrics (besides the admin token), so a Prometheus scraper
    #: needs no admin token. Compared with what is sent; never stored.
    metrics_token: str | None = None
    #: GET /metrics with no credential at all (only behind a network that keeps others out).
    metrics_public: bool = False
    #: The deadline of a request's storage access (a write's commit, a read): past it the
    #: request answers 503 (reason timeout) instead of waiting for a frozen disk or a held lock.
    write_timeout_s: float = 5.0
    #: Clicks the landing keeps (memory and journal) while storage fails, to store them once
    #: it works again; past it a visitor is still sent on and the click counted as dropped.
    click_buffer_max: int = 50_000
    #: Commit writes in a process of their own (off: in a thread of the server's). The process
    #: never waits for the server's GIL (bench/clicks.py); a thread needs no process. Only POSIX
    #: hands the process its pipes: elsewhere writes go to the thread whatever this says.
    writer_process: bool = True

    def __post_init__(self) -> None:
        if self.sync not in SYNC_MODES:
            raise ValueError(f"XTRACKER_SYNC must be one of {', '.join(SYNC_MODES)}")
        for proxy in self.trusted_proxies:
            ipaddress.ip_network(proxy, strict=False)  # raises a clear ValueError if bad
        if self.click_window_s < 1:
            raise ValueError("XTRACKER_CLICK_WINDOW_S must be at least 1 (second)")
        if self.postback_log_days <= 0:
            raise ValueError("XTRACKER_POSTBACK_LOG_DAYS must be positive (days)")
        if not 0.01 <= self.stream_poll_s <= 60:
            raise ValueError("XTRACKER_STREAM_POLL_S must be between 0.01 and 60 (seconds)")
        if self.stream_max_per_credential < 1 or self.stream_max_per_space < 1:
            raise ValueError(
                "XTRACKER_STREAM_MAX_PER_CREDENTIAL and XTRACKER_STREAM_MAX_PER_SPACE must be at"
                " least 1"
            )
        if self.rate_limit < 0:
            raise ValueError("XTRACKER_RATE_LIMIT must be zero (off) or positive")
        if self.click_limit_per_ip < 0:
            raise ValueError("XTRACKER_CLICK_LIMIT_PER_IP must be zero (off) or positive")
        if self.auth_failures_per_minute < 0:
            raise ValueError("XTRACKER_AUTH_FAILURES_PER_MINUTE must be zero (off) or positive")
        weak = admin_token_problem(self.admin_token) if self.admin_token else None
        if weak:
            raise ValueError(weak)
        if self.metrics_token is not None and len(self.metrics_token) < METRICS_TOKEN_MIN:
            raise ValueError(
                f"XTRACKER_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN} characters"
                " (for example: python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
            )
        if not 0.1 <= self.write_timeout_s <= 600:
            raise ValueError("XTRACKER_WRITE_TIMEOUT_S must be between 0.1 and 600 (seconds)")
        if self.click_buffer_max < 0:
            raise ValueError("XTRACKER_CLICK_BUFFER_MAX must be zero (no buffer) or positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``XTRACKER_<FIELD>`` variables (what ``xtracker worker`` uses)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"XTRACKER_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            default = f.default
            if isinstance(default, bool):
                values[f.name] = parse_bool(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif f.name == "trusted_proxies":
                values[f.name] = parse_proxies(raw)
            elif f.name == "sync":
                values[f.name] = raw.upper()
            else:
                values[f.name] = raw
        return cls(**values)  # type: ignore[arg-type]

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no", ""):
        return False
    raise ValueError(f"expected on/off, got {raw!r}")


def parse_proxies(raw: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (raw or "").split(",") if p.strip())


def default_db() -> str:
    return os.environ.get("XTRACKER_DB", "./xtracker.db")
