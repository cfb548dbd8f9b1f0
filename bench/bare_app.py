"""The baselines for ``bench/ingest.py`` and ``bench/clicks.py``: the least a Python server can do.

``POST /events`` reads the body, parses the JSON and answers what XTRACKER answers, storing
nothing. ``GET /r/<slug>`` answers the same 302 as XTRACKER's redirect (``Location:
https://t.me/offer_bot?start=fb_<16 random url-safe chars>``, ``Cache-Control: no-store``) and
``GET /l/<slug>`` a landing page of about the same size (~1 KB of HTML with a fresh random uid in
its t.me link), recording nothing and looking nothing up.

They are served by uvicorn with the same options as ``xtracker serve`` (one process,
``access_log=False``, ``server_header=False``, loop/http "auto" so uvloop and httptools when
installed), so the difference between the two is our own work: for events authentication,
validation, deduplication and the group-committed SQLite insert; for clicks the link lookup, the
visitor capture, the committed click row and the cookies.

Run: ``python bench/bare_app.py --port 8001`` (listens on 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import html
import json
import secrets

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route


async def post_events(request: Request) -> JSONResponse:
    json.loads(await request.body())
    return JSONResponse({"ok": True, "status": "queued", "inbox_id": "1"})


_NO_STORE = {"Cache-Control": "no-store"}
_DEEPLINK = "https://t.me/offer_bot?start=fb_"

# The same page as XTRACKER's landing of a bot link with default texts (templates/landing.html).
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex,nofollow">
<title>Open</title>
<meta property="og:title" content="Open">
<style>
*{box-sizing:border-box}body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",\
Roboto,sans-serif;background:#f4f5f7;color:#17191c}
main{max-width:28rem;margin:0 auto;padding:2rem 1.25rem;text-align:center}
img{max-width:100%;height:auto;border-radius:12px;margin-bottom:1rem}
h1{font-size:1.45rem;margin:.25rem 0 .75rem}p{white-space:pre-line;margin:0 0 1.5rem;\
color:#3b4048}
a.go{display:block;padding:1rem;border-radius:12px;background:#2481cc;color:#fff;\
font-weight:600;text-decoration:none;font-size:1.1rem}
</style>
</head>
<body>
<main>
<a class="go" id="go" href="{url}" rel="noopener">Open</a>
</main>
</body>
</html>
"""


def _uid() -> str:
    return secrets.token_urlsafe(12)  # 16 url-safe characters, like XTRACKER's uids


async def redirect(request: Request) -> Response:
    return RedirectResponse(_DEEPLINK + _uid(), 302, headers=_NO_STORE)


async def landing(request: Request) -> Response:
    url = html.escape(_DEEPLINK + _uid())
    return HTMLResponse(_PAGE.replace("{url}", url), headers=_NO_STORE)


app = Starlette(
    routes=[
        Route("/events", post_events, methods=["POST"]),
        Route("/r/{slug}", redirect, methods=["GET", "HEAD"]),
        Route("/l/{slug}", landing, methods=["GET", "HEAD"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    # The same uvicorn.run() options as `serve` (xtracker_server/cli/serve.py).
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
