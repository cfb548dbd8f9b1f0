"""One exit deadline for every client of the process.

A bot that stops (SIGTERM from Docker, which kills it 10 s later; the end of a script) closes
its clients. Each close flushes what it can until the deadline and leaves the rest: in the spool
file (sent by the next start), or, for a memory spool, counted as lost. Whatever the number of
clients, they all share one deadline, ``exit_timeout()`` seconds after the first of them began
to close: ``close()`` without a timeout, the end of a ``with`` / ``async with`` block, and the
exit hook of ``XTracker`` all use it. A ``close()`` that begins after the shared deadline plus
as long again, or after a new client was created, starts a new one (a long-running program
that closes a client now and then is not shutting down).

``XTRACKER_EXIT_TIMEOUT`` (seconds) or ``set_exit_timeout()`` configures it; the default, 3 s,
leaves a bot most of Docker's 10 s for its own shutdown.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time

from xtracker_client._exceptions import ConfigurationError

__all__ = ["DEFAULT_EXIT_TIMEOUT_S", "deadline", "exit_timeout", "new_client", "set_exit_timeout"]

DEFAULT_EXIT_TIMEOUT_S = 3.0
ENV = "XTRACKER_EXIT_TIMEOUT"

log = logging.getLogger("xtracker_client")

_lock = threading.Lock()
_configured: float | None = None
_began: float | None = None  # when the current shutdown began (time.monotonic())


def set_exit_timeout(seconds: float) -> None:
    """How long closing every client of this process may take, together (default 3 s, or
    ``XTRACKER_EXIT_TIMEOUT``). Events not sent by then stay in the spool file, or, in a
    memory spool, are counted as lost (``stats().dropped["lost_at_close"]``)."""
    global _configured
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"the exit timeout must be seconds >= 0, not {seconds!r}")
    _configured = float(seconds)


def exit_timeout() -> float:
    """The configured exit timeout, in seconds."""
    if _configured is not None:
        return _configured
    raw = os.environ.get(ENV, "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if math.isfinite(value) and value >= 0:
            return value
        log.warning("%s=%r is not seconds >= 0: using %.0f s", ENV, raw, DEFAULT_EXIT_TIMEOUT_S)
    return DEFAULT_EXIT_TIMEOUT_S


def deadline(timeout: float | None) -> float:
    """When a close must be done (``time.monotonic()``): ``timeout`` from now when given,
    else the deadline shared by every client closing in this shutdown."""
    global _began
    now = time.monotonic()
    if timeout is not None:
        return now + max(0.0, timeout)
    with _lock:
        length = exit_timeout()
        if _began is None or now > _began + 2 * length:
            _began = now
        return _began + length


def new_client() -> None:
    """A client was created: the program is not shutting down (a close from now on starts a
    deadline of its own)."""
    global _began
    with _lock:
        _began = None


def _new_lock() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock)
