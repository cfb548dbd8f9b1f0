"""``GET /healthz``: the database answers and the writer runs."""

from __future__ import annotations

import sqlite3

from starlette.requests import Request
from starlette.responses import JSONResponse

from xtracker_client import __version__
from xtracker_server.state import app_state


def _schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


async def healthz(request: Request) -> JSONResponse:
    store = app_state(request).store
    schema = await store.read(_schema_version)
    ok = store.writer.running
    return JSONResponse(
        {
            "ok": ok,
            "version": __version__,
            "schema": schema,
            "writer": "running" if ok else "stopped",
        },
        status_code=200 if ok else 503,
    )
