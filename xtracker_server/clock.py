"""The server's one wall clock: every timestamp it stores or compares (``*_ms`` columns, credential
expiries, retry times) is Unix time in milliseconds from :func:`now_ms`.

Pure code (``domain/``) never reads the clock: it is given ``now_ms`` by its caller.
"""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Milliseconds since the Unix epoch (UTC), as stored in every ``*_ms`` column."""
    return int(time.time() * 1000)
