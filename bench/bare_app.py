"""The baseline for ``bench/ingest.py``: the least a Python server can do for ``POST /events``.

One Starlette route that reads the body, parses the JSON and answers what XTRACKER answers,
storing nothing. It is served by uvicorn with the same options as ``xtracker serve``
(one process, ``access_log=False``, ``server_header=False``, loop/http "auto" so uvloop and
httptools when installed), so the difference between the two is our own work: authentication,
validation, deduplication and the group-committed SQLite insert.

Run: ``python bench/bare_app.py --port 8001`` (listens on 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def post_events(request: Request) -> JSONResponse:
    json.loads(await request.body())
    return JSONResponse({"ok": True, "status": "queued", "inbox_id": "1"})


app = Starlette(routes=[Route("/events", post_events, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    # The same uvicorn.run() options as xtracker_server/cli.py `serve`.
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
