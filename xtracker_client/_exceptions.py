"""The errors a caller can see.

    XTrackerError
     ├── ConfigurationError   no server URL or bearer (argument or XTRACKER_URL / XTRACKER_BEARER)
     ├── InvalidEventError    also a ValueError: the event is wrong at the call site
     ├── SpoolFullError       the buffer is full and its policy is drop_newest
     └── APIError             the server answered with an error (only from calls that wait
          │                   for an answer, such as new_click(); buffered calls never raise it)
          └── TransportError  no answer at all after the retries (network, timeout)

Buffered calls (``contact``, ``deposit``, ``bind`` …) raise only ``InvalidEventError`` and
``SpoolFullError``: transport trouble never reaches the bot's handler.
"""

from __future__ import annotations


class XTrackerError(Exception):
    pass


class ConfigurationError(XTrackerError):
    pass


class InvalidEventError(XTrackerError, ValueError):
    pass


class SpoolFullError(XTrackerError):
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
