"""``GET /healthz``: whether the storage takes writes (what a monitor watches).
``GET /livez``: whether this server answers at all (what a load balancer watches).

``/healthz`` answers from what the last commits and reads showed (store/health.py), plus the
probe an idle server writes every few seconds (housekeeping.py): it touches no storage itself,
so it answers at once even on a frozen disk. ``/livez`` never looks at the storage: one storage
fault shared by every server must not take them all out of a load balancer's rotation, while
the landing keeps sending visitors on.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from xtracker_server.state import app_state
from xtracker_server.store.api import FaultReason, retry_after_s
from xtracker_server.version import VERSION


async def healthz(request: Request) -> JSONResponse:
    store = app_state(request).store
    running = store.writer_running()
    writer = "running" if running else "stopped"
    body: dict[str, Any] = {"version": VERSION, "schema": store.schema, "writer": writer}
    fault = store.health.fault
    if fault is not None:
        reason, detail, since_ms = fault.reason, fault.detail, fault.since_ms
    elif not running:  # between a writer's death and its first failed write
        reason, detail, since_ms = FaultReason.WRITER_DOWN, "the writer is not running", None
    else:
        return JSONResponse({"ok": True, **body, "storage": "ok"})
    return JSONResponse(
        {
            "ok": False,
            "error": "unavailable",
            "reason": reason.value,
            "detail": detail,
            "since_ms": since_ms,
            **body,
            "storage": "failing",
        },
        status_code=503,
        headers={"Retry-After": str(retry_after_s(reason))},
    )


async def livez(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})
