"""Settings: every ``XTRACKER_*`` variable, each also a flag of ``xtracker serve``. The CLI
resolves flags and environment; the app only sees ``Settings``.

Each setting is defined once, as a field below: its name, type, default and help
(``setting(default, help)``). Everything else is derived from the field, so that nothing can
drift: the variable ``XTRACKER_<NAME>`` (:func:`env_var`), the flag ``--<name>`` of ``xtracker
serve`` (``--<name>/--no-<name>`` for an on/off one; :func:`flag`), its help and default shown by
``--help`` (xtracker_server/cli/_settings.py) and :meth:`Settings.from_env`.

To add a setting, add a field with ``setting(...)`` (and a check in ``__post_init__`` if some
values are wrong): that is all the code takes, nothing else names a setting. Then give it its
row in the table of docs/operations.md. ``worker=True`` gives ``xtracker worker`` the flag too
(for what the delivery worker reads); ``parse=`` turns the variable's text into the value when
the type alone can't (a list, a case-insensitive word). tests/server/test_config.py checks that
every field has its help, flag and variable, that flag, variable and default agree, and that
docs/operations.md lists it with that flag and default.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any, Literal, TypeVar

T = TypeVar("T")

SyncMode = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
SYNC_MODES: tuple[str, ...] = ("OFF", "NORMAL", "FULL", "EXTRA")
#: The log levels of uvicorn, which writes the server's log.
LOG_LEVELS: tuple[str, ...] = ("critical", "error", "warning", "info", "debug", "trace")

#: Bodies above this are refused with 413 before they are parsed.
MAX_BODY_BYTES = 64 * 1024
#: The shortest XTRACKER_METRICS_TOKEN taken.
METRICS_TOKEN_MIN = 24


@dataclass(frozen=True)
class SettingInfo:
    """What a field of ``Settings`` says besides its name, type and default."""

    #: One or two sentences for ``xtracker serve --help`` (docs/operations.md says more).
    help: str
    #: The variable's (or flag's) text to the value, when the field's type alone can't.
    parse: Callable[[str], Any] | None = None
    #: ``xtracker worker`` takes the flag too: the delivery worker reads this setting.
    worker: bool = False


def setting(
    default: T, help: str, *, parse: Callable[[str], Any] | None = None, worker: bool = False
) -> T:
    """A field of ``Settings``: its default and help, from which its variable and flag are
    derived (see the module's docstring)."""
    return field(default=default, metadata={"setting": SettingInfo(help, parse, worker)})


def setting_info(f: Field[Any]) -> SettingInfo:
    """The field's ``setting(...)`` metadata (an empty help if it was declared without)."""
    info = f.metadata.get("setting")
    return info if isinstance(info, SettingInfo) else SettingInfo(help="")


def env_var(name: str) -> str:
    """The environment variable of the setting ``name``: ``XTRACKER_<NAME>``."""
    return f"XTRACKER_{name.upper()}"


def flag(name: str) -> str:
    """The flag of the setting ``name``: ``--name-with-dashes``."""
    return "--" + name.replace("_", "-")


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no", ""):
        return False
    raise ValueError(f"expected on/off, got {raw!r}")


def parse_proxies(raw: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (raw or "").split(",") if p.strip())


@dataclass(frozen=True)
class Settings:
    """Every setting of the server, the worker and the commands: one field each, its variable
    ``XTRACKER_<NAME>`` and its flag derived from it (the module's docstring)."""

    # (A docstring of its own also spares ``dataclass`` from making one out of the signature of
    # all these fields, which every command would pay at start-up.)
    db: str = setting("./xtracker.db", "The SQLite file.", worker=True)
    host: str = setting("127.0.0.1", "The address serve listens on.")
    port: int = setting(8000, "The port serve listens on.")
    public_url: str | None = setting(
        None, "Base of URLs shown to users (default http://HOST:PORT).", worker=True
    )
    admin_token: str | None = setting(
        None, "Operator token; if unset, one is generated on first start and printed once."
    )
    sync: SyncMode = setting(
        "FULL", f"SQLite synchronous: {', '.join(SYNC_MODES)}.", parse=str.upper, worker=True
    )
    worker: bool = setting(True, "Run the delivery worker inside serve.")
    retry_base_s: float = setting(
        30.0, "Delivery backoff: seconds before the first retry (doubling).", worker=True
    )
    retry_cap_s: float = setting(
        3600.0, "Delivery backoff: the longest wait between two attempts.", worker=True
    )
    retry_max_age_s: float = setting(
        86400.0, "Give a delivery up when its next attempt would be this late.", worker=True
    )
    allow_private_destinations: bool = setting(
        False, "Allow destinations and proxies on non-public addresses.", worker=True
    )
    fb_graph_url: str = setting(
        "https://graph.facebook.com", "Where CAPI requests go.", worker=True
    )
    fb_api_version: str = setting("v21.0", "The Graph API version of CAPI URLs.", worker=True)
    trusted_proxies: tuple[str, ...] = setting(
        (), "Comma-separated addresses/CIDRs whose X-Forwarded-For is believed.",
        parse=parse_proxies,
    )  # fmt: skip
    #: Requests per second allowed per credential (burst: twice that); 0 turns the limit off.
    rate_limit: float = setting(1000.0, "Requests/s per credential (burst 2x); 0 = off.")
    #: How long a looked-up credential is trusted before the database is asked again: a key
    #: created or rotated by the CLI in another process is seen within this many seconds.
    credential_cache_s: float = setting(
        2.0, "Seconds a looked-up credential is trusted before the database is asked again."
    )
    #: How long one delivery request may take before it counts as a timeout (retried).
    delivery_timeout_s: float = setting(10.0, "Per delivery request.", worker=True)
    #: Requests in flight to one webhook or S2S destination: its rate is about this many
    #: divided by its answer time (8 at 50 ms: 160/s). CAPI sends 2 batches of 1,000 at once.
    delivery_concurrency: int = setting(
        8, "Requests in flight to one webhook or S2S destination (1-256).", worker=True
    )
    #: How often a worker looks for due deliveries when nothing woke it.
    worker_poll_s: float = setting(1.0, "Seconds between looks for due work.", worker=True)
    #: The request header a CDN puts the visitor's country in (e.g. CF-IPCountry); none if unset.
    country_header: str | None = setting(None, "Header with the visitor's country (CF-IPCountry).")
    #: A repeat visit by the same browser within this window keeps its uid (not a new click).
    click_window_s: float = setting(86400.0, "A repeat visit within this keeps its uid.")
    #: How long the postback log keeps a row (days); older rows are pruned in batches.
    postback_log_days: float = setting(30.0, "Days the postback log keeps.")
    #: How often a live stream (GET /admin/spaces/{id}/stream) looks for new rows.
    stream_poll_s: float = setting(0.2, "Live stream poll interval.")
    #: Live streams open at once with one credential, and on one space (429 past either).
    stream_max_per_credential: int = setting(4, "Live streams per credential.")
    stream_max_per_space: int = setting(16, "Live streams per space.")
    #: Clicks recorded per visitor address per minute (all at once, then refilled over the
    #: minute); past it a visitor is still sent on, unrecorded. 0 turns the limit off.
    click_limit_per_ip: int = setting(
        300, "Clicks recorded per visitor address per minute; 0 = off."
    )
    #: Failed authentications allowed per client address a minute (bursts of as many), on
    #: every credential kind; past it a failure answers 429. Valid credentials always pass.
    auth_failures_per_minute: float = setting(
        20.0, "Failed authentications per client address a minute before 429; 0 = off."
    )
    #: A token that may read GET /metrics (besides the admin token), so a Prometheus scraper
    #: needs no admin token. Compared with what is sent; never stored.
    metrics_token: str | None = setting(
        None, "A token for GET /metrics besides the admin token (for a Prometheus scraper)."
    )
    #: GET /metrics with no credential at all (only behind a network that keeps others out).
    metrics_public: bool = setting(False, "Serve GET /metrics with no credential.")
    #: The deadline of a request's storage access (a write's commit, a read): past it the
    #: request answers 503 (reason timeout) instead of waiting for a frozen disk or a held lock.
    write_timeout_s: float = setting(
        5.0, "Deadline of a request's storage access; past it: 503 (reason timeout).", worker=True
    )
    #: Clicks the landing keeps (memory and journal) while storage fails, to store them once
    #: it works again; past it a visitor is still sent on and the click counted as dropped.
    click_buffer_max: int = setting(
        50_000, "Clicks kept while storage fails, stored when it recovers; 0 = none."
    )
    log_level: str = setting(
        "info", f"The server's log level: {', '.join(LOG_LEVELS)}.", parse=str.lower
    )
    delivery_sent_days: float = setting(
        30.0,
        "How long a sent delivery and its attempts are kept (days from the send); older ones"
        " are pruned in batches. Their destination's delivery health still counts them.",
    )
    delivery_dead_days: float = setting(
        90.0, "The same for a delivery given up (failed_permanently): replayable until then."
    )
    writer_process: bool = setting(
        True,
        "Commit writes in a process of their own (off: a thread of the server). The process"
        " never waits for the server's GIL; only POSIX hands it its pipes (elsewhere: a thread).",
        worker=True,
    )
    rollup_process: bool = setting(
        True,
        "Catch the report rollup up in a process of its own, at a lower priority (off: a"
        " thread of the server). Its Python then never holds the server's GIL, and a burst of"
        " requests comes before it. Only POSIX hands it its pipes (elsewhere: a thread).",
    )
    worker_process: bool = setting(
        True,
        "Run serve's delivery worker in a process of its own, woken by the server (off: in the"
        " server's process). Only POSIX hands it its pipes (elsewhere: in the server's process).",
    )
    report_cube: bool = setting(
        True,
        "Keep the report cube beside the report rollup: cohort grouped reports read bounded"
        " pre-aggregated rows instead of scanning the events, for more catch-up CPU and disk."
        " Turned on, it is built from the clicks (reports read without it until it is ready);"
        " turned off, dropped (the steps are kept).",
    )
    #: A report first brings the rollup up to date; while it is being built (hours for a big
    #: inbox) a request gives up after this long and answers 503 ``rebuilding``.
    report_wait_s: float = setting(
        10.0,
        "Seconds a report waits for the report rollup to catch up; past it: 503 (reason"
        " rebuilding).",
    )

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
        if not 1 <= self.delivery_concurrency <= 256:
            raise ValueError("XTRACKER_DELIVERY_CONCURRENCY must be between 1 and 256")
        if self.rate_limit < 0:
            raise ValueError("XTRACKER_RATE_LIMIT must be zero (off) or positive")
        if self.click_limit_per_ip < 0:
            raise ValueError("XTRACKER_CLICK_LIMIT_PER_IP must be zero (off) or positive")
        if self.auth_failures_per_minute < 0:
            raise ValueError("XTRACKER_AUTH_FAILURES_PER_MINUTE must be zero (off) or positive")
        if self.admin_token:
            # Here: the credential rules import hashlib and secrets, which a command that takes
            # no admin token does not need.
            from xtracker_server.domain.credentials import admin_token_problem

            weak = admin_token_problem(self.admin_token)
            if weak:
                raise ValueError(weak)
        if self.metrics_token is not None and len(self.metrics_token) < METRICS_TOKEN_MIN:
            raise ValueError(
                f"XTRACKER_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN} characters"
                " (for example: python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
            )
        if not 0 <= self.report_wait_s <= 3600:
            raise ValueError("XTRACKER_REPORT_WAIT_S must be between 0 and 3600 (seconds)")
        if not 0.1 <= self.write_timeout_s <= 600:
            raise ValueError("XTRACKER_WRITE_TIMEOUT_S must be between 0.1 and 600 (seconds)")
        if self.click_buffer_max < 0:
            raise ValueError("XTRACKER_CLICK_BUFFER_MAX must be zero (no buffer) or positive")
        # At least a day: delivery health looks at the attempts of the last 24 hours.
        if self.delivery_sent_days < 1 or self.delivery_dead_days < 1:
            raise ValueError(
                "XTRACKER_DELIVERY_SENT_DAYS and XTRACKER_DELIVERY_DEAD_DAYS must be at least 1"
                " (day)"
            )
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"XTRACKER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``XTRACKER_<FIELD>`` variables (what ``xtracker worker`` uses)."""
        return cls(**env_values(os.environ if environ is None else environ))

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def parse_setting(f: Field[Any], raw: str) -> Any:
    """The value of the setting ``f`` written as text (a variable, or a flag's argument)."""
    info = setting_info(f)
    if info.parse is not None:
        return info.parse(raw)
    if isinstance(f.default, bool):
        return parse_bool(raw)
    if isinstance(f.default, float):
        return float(raw)
    if isinstance(f.default, int):
        return int(raw)
    return raw


def env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings that ``environ`` sets (an empty variable sets nothing)."""
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = environ.get(env_var(f.name))
        if raw:
            values[f.name] = parse_setting(f, raw)
    return values
