"""The boundaries between the three packages of the distribution: the server and the client
share the wire models of ``xtracker_wire``, and the server never imports the client (its atexit
and fork hooks, httpx and its sender threads have no business in a web or writer process)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from xtracker_server.store.sqlite.inbox import InboxDraft, insert_events
from xtracker_server.store.sqlite.operations import name_of
from xtracker_server.store.sqlite.writer import Job


def _imported(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which of the packages it imported."""
    (found,) = _imported_after(code)
    return found


def _imported_after(*steps: str) -> list[dict[str, bool]]:
    """Run each of ``steps`` in turn in one fresh interpreter; which of the packages were
    imported after each."""
    probe = "import json, sys\n" + "".join(
        f"{step}\nprint(json.dumps({{p: p in sys.modules for p in"
        " ('xtracker_client', 'xtracker_server', 'httpx', 'aiohttp')}))\n"
        for step in steps
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    found: list[dict[str, bool]] = [
        json.loads(line) for line in proc.stdout.strip().splitlines()[-len(steps) :]
    ]
    return found


@pytest.fixture(scope="module")
def app_then_cli() -> list[dict[str, bool]]:
    """What ``import xtracker_server.app`` imports, then what ``import xtracker_server.cli``
    adds: one interpreter for both (each costs about a second of CPU to start)."""
    return _imported_after("import xtracker_server.app", "import xtracker_server.cli")


def test_the_server_app_and_the_cli_never_import_the_client(
    app_then_cli: list[dict[str, bool]],
) -> None:
    imported = app_then_cli[1]  # the app's module and the CLI's
    assert imported["xtracker_server"] is True
    assert imported["xtracker_client"] is False


def test_the_web_app_leaves_the_delivery_client_to_the_worker_process(
    app_then_cli: list[dict[str, bool]],
) -> None:
    """aiohttp (the delivery client, ~0.3 s to import: it builds a TLS context) is imported by
    the process that delivers: the worker's, or the app's own only when the worker runs in it
    (XTRACKER_WORKER_PROCESS=off). The app's module imports none of it."""
    imported = app_then_cli[0]  # the app's module alone
    assert imported["xtracker_server"] is True
    assert imported["aiohttp"] is False


def test_the_writer_process_never_imports_the_client_not_even_for_an_operation() -> None:
    # What the writer child runs (python -m xtracker_server.store.sqlite.writer_child), then one
    # batch of the hottest operation, unpickled as the child unpickles it.
    job = Job(
        name_of(insert_events),  # a job travels as its operation's name
        (InboxDraft(1, b"k", "contact", "u1", None, None, None, None, 1, 1, "api"),),
        grouped=True,
    )
    batch = pickle.dumps([job], pickle.HIGHEST_PROTOCOL)
    imported = _imported(
        "import pickle\n"
        "import xtracker_server.store.sqlite.writer_child as w\n"
        "from xtracker_server.store.sqlite.db import open_db\n"
        f"(job,) = pickle.loads({batch!r})\n"
        "w._Registry({job.op: ('xtracker_server.store.sqlite.inbox', 'insert_events')})"
        ".get(job.op)"
    )
    assert imported["xtracker_server"] is True
    assert imported["xtracker_client"] is False
    assert imported["httpx"] is False


def test_the_wire_package_imports_neither_package() -> None:
    imported = _imported("import xtracker_wire")
    assert imported == {"xtracker_client": False, "xtracker_server": False, "httpx": False,
                        "aiohttp": False}  # fmt: skip
