"""``GET /l/<slug>`` renders the landing and records a click; ``GET /r/<slug>`` records the
same click and redirects at once. Bots, HEAD requests, repeat visits and visits past the
per-address limit mint nothing (domain/unrecorded.py); every visitor is answered all the same.
When storage fails, a visitor is still sent on with a new uid, and the click is kept in the
side buffer until it can be stored (landing/pending.py). Only a link that cannot be looked up
at all (the database unreadable, and the link not in memory) gets a 503 page."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request, cookie_parser
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from xtracker_server.clock import now_ms
from xtracker_server.domain.bots import is_bot
from xtracker_server.domain.clicks import click_draft
from xtracker_server.domain.entities import Link
from xtracker_server.domain.unrecorded import NO_UID, Reason
from xtracker_server.domain.visitors import client_ip, country_code, new_fbp, valid_fbp
from xtracker_server.state import AppState, app_state
from xtracker_server.store.api import is_storage_fault

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
)
_LANDING = _templates.get_template("landing.html")
_NOT_FOUND = _templates.get_template("not_found.html").render()
_UNAVAILABLE = _templates.get_template("unavailable.html").render()
#: How long a visitor is asked to wait when its link cannot be looked up.
RETRY_AFTER_S = 5

FBP_COOKIE = "_fbp"
FBP_MAX_AGE_S = 90 * 86400
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_NO_STORE_RAW = [(k.lower().encode(), v.encode()) for k, v in _NO_STORE.items()]
_HTML = (b"content-type", b"text/html; charset=utf-8")
RawHeaders = list[tuple[bytes, bytes]]


class _Answer(Response):
    """A response with its headers given ready-made: Starlette's building of them (a mapping
    encoded on every response, then a cookie appended at a time) cost a click about a third of
    what the rest of its handler does."""

    def __init__(self, status: int, body: bytes, headers: RawHeaders) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = [*headers, (b"content-length", str(len(body)).encode())]


def _see(url: str, extra: RawHeaders) -> Response:
    """302 to ``url`` (quoted as Starlette's RedirectResponse does), not to be cached."""
    location = quote(url, safe=":/%#?=@[]!$&'()*+,;").encode("latin-1")
    return _Answer(302, b"", [(b"location", location), *_NO_STORE_RAW, *extra])


def _visitor_headers(request: Request) -> dict[bytes, bytes]:
    """The request's headers by (lower-case) name, looked up once: a click reads five."""
    return dict(request.scope["headers"])


def _text(headers: dict[bytes, bytes], name: bytes) -> str | None:
    raw = headers.get(name)
    return None if raw is None else raw.decode("latin-1")


def visit_cookie(link: Link) -> str:
    """The per-link cookie that remembers this browser's uid for the repeat window."""
    return f"xt_v{link.id}"


async def landing(request: Request) -> Response:
    state = app_state(request)
    link = await _enabled_link(request)
    if not isinstance(link, Link):
        return link
    headers = _visitor_headers(request)
    if request.method == "HEAD" or _a_bot(state, link, headers):
        # Previews and ad review see the page, with no uid minted and no click counted.
        return _page(link, f"{state.settings.base_url}/r/{link.slug}", refresh=False, extra=[])
    uid, cookies = await _click(request, headers, state, link, source="landing")
    return _page(link, link.spec.destination(uid), refresh=link.spec.auto_redirect, extra=cookies)


async def redirect(request: Request) -> Response:
    state = app_state(request)
    link = await _enabled_link(request)
    if not isinstance(link, Link):
        return link
    headers = _visitor_headers(request)
    if request.method == "HEAD" or _a_bot(state, link, headers):
        return _see(link.spec.destination(NO_UID), [])
    uid, cookies = await _click(request, headers, state, link, source="redirect")
    return _see(link.spec.destination(uid), cookies)


async def _enabled_link(request: Request) -> Link | Response:
    """The link, or the page that says it is not there (404) or cannot be looked up (503)."""
    slug = request.path_params["slug"]
    try:
        link = await app_state(request).links.get(slug)
    except Exception as exc:
        if not is_storage_fault(exc):
            raise
        return _unavailable()
    return link if link is not None and link.enabled else _not_found()


def _a_bot(state: AppState, link: Link, headers: dict[bytes, bytes]) -> bool:
    """Whether a bot asks (domain/bots.py); its visit is counted as not recorded."""
    if not is_bot(_text(headers, b"user-agent")):
        return False
    state.unrecorded.add(link.space_id, link.id, Reason.BOT, now_ms())
    return True


async def _click(
    request: Request, headers: dict[bytes, bytes], state: AppState, link: Link, *, source: str
) -> tuple[str, RawHeaders]:
    """This browser's uid for the link and the cookies that remember it: the uid it got within
    the repeat window, or a new click (committed before we answer, or kept in the side buffer
    if storage fails); ``NO_UID`` and no cookies when its address is past the click limit."""
    now = now_ms()
    window_ms = int(state.settings.click_window_s * 1000)
    raw_cookies = _text(headers, b"cookie")
    cookies = cookie_parser(raw_cookies) if raw_cookies else {}
    prior = cookies.get(visit_cookie(link))
    if prior and len(prior) <= 64 and await _repeat(state, link, prior, now - window_ms):
        return prior, _remember(state, link, prior, None)
    ip = client_ip(
        request.client.host if request.client else None,
        _text(headers, b"x-forwarded-for"),
        state.trusted_proxies,
    )
    limiter = state.click_limiter
    if limiter is not None and not limiter.allow(ip, now / 1000):
        state.unrecorded.add(link.space_id, link.id, Reason.LIMITED, now)
        return NO_UID, []
    fbp = valid_fbp(cookies.get(FBP_COOKIE))
    fresh_fbp = None if fbp else new_fbp(now)
    settings = state.settings
    draft = click_draft(
        space_id=link.space_id,
        source=source,
        now_ms=now,
        raw_query=request.scope["query_string"].decode("utf-8", "replace") or None,
        link_id=link.id,
        ip=ip,
        user_agent=_text(headers, b"user-agent"),
        referrer=_text(headers, b"referer"),
        fbp=fbp or fresh_fbp,
        country=country_code(_text(headers, settings.country_header.lower().encode("latin-1")))
        if settings.country_header
        else None,
        sub_id_params=await _sub_id_params(state, link),
    )
    try:
        uid = await state.store.record_click(draft)
    except Exception as exc:
        if not is_storage_fault(exc):
            raise
        await state.pending.keep(draft, exc)
        uid = draft.uid
    return uid, _remember(state, link, uid, fresh_fbp)


async def _sub_id_params(state: AppState, link: Link) -> tuple[str, ...]:
    """The query parameters the link's space records as sub-ids (cached); none if they cannot
    be read (the click is made all the same, without them)."""
    try:
        return await state.sub_ids.get(link.space_id) or ()
    except Exception as exc:
        if not is_storage_fault(exc):
            raise
        return ()


async def _repeat(state: AppState, link: Link, uid: str, since_ms: int) -> bool:
    """Whether ``uid`` is a click on this link made since ``since_ms``. If the database cannot
    be read, the visit counts as new (at worst a repeat is counted twice)."""
    if state.pending.holds(link.space_id, link.id, uid, since_ms):
        return True
    try:
        return await state.store.click_seen(link.space_id, link.id, uid, since_ms)
    except Exception as exc:
        if not is_storage_fault(exc):
            raise
        return False


def _remember(state: AppState, link: Link, uid: str, fresh_fbp: str | None) -> RawHeaders:
    """The cookies that remember this visit: the link's uid, and a new ``_fbp`` if any."""
    secure = state.settings.base_url.startswith("https://")
    window = int(state.settings.click_window_s)
    # Both values are URL-safe tokens: the header is written directly (http.cookies is slow).
    cookies = [_cookie(visit_cookie(link), uid, window, secure=secure, httponly=True)]
    if fresh_fbp:
        cookies.append(_cookie(FBP_COOKIE, fresh_fbp, FBP_MAX_AGE_S, secure=secure))
    return [(b"set-cookie", c.encode("latin-1")) for c in cookies]


def _cookie(name: str, value: str, max_age: int, *, secure: bool, httponly: bool = False) -> str:
    flags = ("; Secure" if secure else "") + ("; HttpOnly" if httponly else "")
    return f"{name}={value}; Max-Age={max_age}; Path=/; SameSite=Lax{flags}"


# Stand-ins for the per-visit parts of a page. Autoescaping turns every "<" of a link's own texts
# into "&lt;", so these (inserted as Markup) cannot be confused with anything a user wrote.
_URL_SLOT = Markup("<xt-url/>")
_NONCE_SLOT = Markup("<xt-nonce/>")


@functools.lru_cache(maxsize=1024)
def _design(
    title: str, text: str, button: str, image_url: str | None, refresh: bool, delay_ms: int
) -> str:
    """A link's page with slots for the URL and the nonce: rendered once per design, filled per
    visit with two replaces (rendering the template on every visit halved /l's throughput)."""
    return _LANDING.render(
        lang="en",
        title=title,
        text=text,
        button=button,
        image_url=image_url,
        url=_URL_SLOT,
        refresh=refresh,
        delay_ms=delay_ms,
        # The meta refresh is the no-JavaScript fallback; it counts whole seconds, so it is
        # rounded up to never fire before the script does.
        delay_s=-(-delay_ms // 1000),
        nonce=_NONCE_SLOT,
    )


def _page(link: Link, url: str, *, refresh: bool, extra: RawHeaders) -> Response:
    spec = link.spec
    design = _design(
        spec.title, spec.text, spec.button or "Open", spec.image_url, refresh,
        spec.redirect_delay_ms,
    )  # fmt: skip
    nonce = secrets.token_urlsafe(12)
    html = design.replace(_URL_SLOT, escape(url)).replace(_NONCE_SLOT, nonce)
    csp = (
        "default-src 'none'; img-src https: data:; style-src 'unsafe-inline';"
        f" script-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return _Answer(
        200,
        html.encode(),
        [_HTML, *_NO_STORE_RAW, (b"content-security-policy", csp.encode()), *extra],
    )


def _not_found() -> HTMLResponse:
    return HTMLResponse(_NOT_FOUND, status_code=404, headers=_NO_STORE)


def _unavailable() -> HTMLResponse:
    return HTMLResponse(
        _UNAVAILABLE, status_code=503, headers={**_NO_STORE, "Retry-After": str(RETRY_AFTER_S)}
    )


routes = [
    Route("/l/{slug}", landing, methods=["GET", "HEAD"]),
    Route("/r/{slug}", redirect, methods=["GET", "HEAD"]),
]
