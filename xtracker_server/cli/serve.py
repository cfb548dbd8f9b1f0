"""``xtracker serve`` and ``xtracker worker``: their flags are the settings (config.py,
cli/_settings.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from xtracker_server.cli._common import err, fail, out, runs_on
from xtracker_server.cli._settings import settings_command
from xtracker_server.clock import now_ms
from xtracker_server.config import Settings


def check_database(db: str, sync: str) -> None:
    """Refuse to start on a database that cannot be written or is damaged
    (store/sqlite/startup.py)."""
    import typer

    from xtracker_server.store.api import DatabaseRefused, check_database

    try:
        checked = check_database(db, sync=sync)
    except DatabaseRefused as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if checked.quick_check == "skipped":
        err.print(
            f"PRAGMA quick_check of {db} stopped after {checked.seconds:.1f} s: the file is"
            " started on unchecked (check it with `sqlite3 FILE 'PRAGMA quick_check'` while"
            " xtracker is stopped).",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _serve(settings: Settings) -> None:
    """Run the server (ingress API and admin API) on an embedded SQLite file."""
    from xtracker_server.store.api import (
        DatabaseRefused,
        RestoreInProgress,
        first_admin_token,
        refuse_if_restoring,
    )

    db = settings.db
    check_database(db, settings.sync)
    if settings.admin_token is None:
        try:
            generated = first_admin_token(db, now_ms())
        except DatabaseRefused as exc:
            fail(str(exc), 1)
        if generated is not None:
            out.print("Admin token (shown once; keep it, it guards the admin API):")
            out.print(generated, markup=False, highlight=False, soft_wrap=True)
    try:  # the store takes the lock for good when the app starts; say it plainly before
        refuse_if_restoring(db)
    except RestoreInProgress as exc:
        fail(str(exc), 1)
    out.print(f"xtracker listening on http://{settings.host}:{settings.port} (db: {db})")
    sys.stdout.flush()
    run_server(settings)


def run_server(settings: Settings) -> None:
    """The web server, until it is stopped."""
    import uvicorn

    runs_on()
    from xtracker_server.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Access logs would write ?token= secrets of postback URLs to disk; they stay off.
        access_log=False,
        server_header=False,
        # Client addresses are resolved by us, against XTRACKER_TRUSTED_PROXIES only; uvicorn's
        # own handling would believe X-Forwarded-For from any loopback peer.
        proxy_headers=False,
    )


def _worker(settings: Settings) -> None:
    """Run the delivery worker alone (settings from the XTRACKER_* environment, or these flags).
    Several workers, and servers started with --no-worker, can share one database."""
    db = settings.db
    if not Path(db).expanduser().exists():
        fail(f"no database at {db}: pass --db (or XTRACKER_DB)", 1)
    check_database(db, settings.sync)
    run_worker(settings)


def run_worker(settings: Settings) -> None:
    """The delivery worker, until SIGINT or SIGTERM."""
    import asyncio
    import signal

    runs_on()
    from xtracker_server.delivery.worker import Worker
    from xtracker_server.store.api import RestoreInProgress, open_store

    async def run() -> None:
        store = open_store(settings.db, sync=settings.sync, timeout_s=settings.write_timeout_s)
        await store.open()
        worker = Worker(store, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await worker.start()
        out.print(f"xtracker worker {worker.owner} running (db: {settings.db})")
        sys.stdout.flush()
        await stop.wait()
        await worker.stop()
        await store.close()

    try:
        asyncio.run(run())
    except RestoreInProgress as exc:
        fail(str(exc), 1)


serve = settings_command(_serve)
#: ``--poll-s``: the worker's name of --worker-poll-s before its flags came from Settings.
worker = settings_command(_worker, worker_only=True, more_flags={"worker_poll_s": ("--poll-s",)})
