"""Every error the client raises: one tree, rooted at ``XTrackerError``.

    XTrackerError
     ├── ConfigurationError   also a ValueError: no server URL or bearer (argument or
     │                        XTRACKER_URL / XTRACKER_BEARER), a URL that cannot work (no
     │                        scheme, ends in /events …), or a bad bound or drop policy
     ├── InvalidEventError    also a ValueError: the event is wrong at the call site
     ├── SpoolFullError       the buffer is full and its policy is drop_newest
     ├── ClientClosedError    also a RuntimeError: a call on a client that was closed
     ├── DeeplinkError        also a ValueError: deeplink() was given what Telegram refuses
     └── APIError             the server answered with an error (only from calls that wait
          │                   for an answer, new_click() and ping(); buffered calls never do)
          └── TransportError  no answer at all after the retries (network, timeout)

Buffered calls (``contact``, ``deposit``, ``bind`` …) raise only ``InvalidEventError`` and
``SpoolFullError`` (and Python's own ``TypeError`` for a uid that is not a ``str``, such as a
Telegram id passed by position): transport trouble never reaches the bot's handler, and neither
does a failing disk (the spool holds the events in memory); ``close()`` and ``stats()`` raise
nothing. The classes that are also a built-in error were that error before they joined the tree, so
``except ValueError`` and ``except RuntimeError`` around the client keep catching them.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "ClientClosedError",
    "ConfigurationError",
    "DeeplinkError",
    "InvalidEventError",
    "SpoolFullError",
    "TransportError",
    "XTrackerError",
]


class XTrackerError(Exception):
    """The root of every error the client raises."""


class ConfigurationError(XTrackerError, ValueError):
    pass


class InvalidEventError(XTrackerError, ValueError):
    pass


class SpoolFullError(XTrackerError):
    pass


class ClientClosedError(XTrackerError, RuntimeError):
    pass


class DeeplinkError(XTrackerError, ValueError):
    pass


class APIError(XTrackerError):
    def __init__(self, status: int | None, code: str, detail: str) -> None:
        super().__init__(f"{status or 'no answer'} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class TransportError(APIError):
    def __init__(self, detail: str) -> None:
        super().__init__(None, "transport", detail)
