"""The server's base URL, checked once at construction: a wrong one would otherwise retry
forever (no scheme) or dead-letter every event as 404 (a base that already ends in an
endpoint, such as ``…/events``)."""

from __future__ import annotations

import httpx

from xtracker_client._exceptions import ConfigurationError

__all__ = ["base_url"]

#: The endpoint paths the client appends to the base: a base ending in one was copied from
#: an endpoint's URL. Refused rather than corrected, so the configuration says what it means.
_ENDPOINTS = ("/events", "/events/batch", "/bind", "/clicks")


def base_url(raw: str) -> str:
    """``raw`` without a trailing ``/``, or ``ConfigurationError`` saying what to write.

    The scheme must be ``http`` or ``https`` and there must be a host; a path prefix is kept
    (a server behind a reverse proxy at ``https://example.com/tracker``). A query, a fragment,
    credentials in the URL and a path ending in an endpoint are refused.

        >>> base_url("https://track.example.com/")
        'https://track.example.com'
    """
    text = raw.strip()
    if "://" not in text:
        raise ConfigurationError(
            f"the server URL {raw!r} has no scheme: write it as https://{_without_endpoint(text)}"
            " (or http:// for a server without TLS)"
        )
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ConfigurationError(f"the server URL {raw!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"the server URL {raw!r} must start with https:// or http://, not {url.scheme}://"
        )
    if not url.host:
        raise ConfigurationError(f"the server URL {raw!r} has no host")
    if url.query or url.fragment or "?" in text or "#" in text:
        raise ConfigurationError(
            f"the server URL {raw!r} must have no query or fragment: give the server's base URL"
            " only, such as https://track.example.com"
        )
    if url.userinfo:
        raise ConfigurationError(
            f"the server URL {raw!r} carries credentials: give the bearer secret as bearer="
            " (or XTRACKER_BEARER), and the URL without them"
        )
    base = text.rstrip("/")
    for endpoint in _ENDPOINTS:
        if base.endswith(endpoint):
            raise ConfigurationError(
                f"the server URL {raw!r} ends in the endpoint {endpoint}: give the base URL"
                f" ({_without_endpoint(base)}); the client adds /events, /bind and /clicks"
                " itself"
            )
    return base


def _without_endpoint(text: str) -> str:
    base = text.strip("/")
    for endpoint in _ENDPOINTS:
        if base.endswith(endpoint):
            return base.removesuffix(endpoint)
    return base
