"""The TLS context every client of the process shares.

httpx builds its default context (certifi's CA bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``)
for each client it makes, and loading the bundle costs about 50 ms of CPU: a bot paid it for each
``XTracker``, a process that makes clients as it goes (a worker per job, a test suite) for every
one. The same context, made once by httpx's own function, serves them all: an ``SSLContext`` is
safe to share between clients and threads, and nothing of a connection is kept in it."""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["shared_context"]


@functools.cache
def shared_context() -> ssl.SSLContext:
    """httpx's default TLS context, made on first use (two threads at once may both make one:
    either serves)."""
    return httpx.create_ssl_context()
