"""A CLI command imports what it uses, not the server: neither the web stack (uvicorn,
Starlette), nor the delivery client (aiohttp), nor the bots' SDK (xtracker_client with httpx)
that cost every command half a second. Each case runs in a fresh interpreter: only a new
process shows what one command imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import run_cli

#: What none of these commands may import: the web stack, the SDK, nor the wire models
#: (pydantic classes the server validates requests with; a command needs only the event names
#: and limits, xtracker_wire/_events.py and _fields.py).
HEAVY = ("aiohttp", "uvicorn", "starlette", "xtracker_client", "httpx", "prometheus_client",
         "schemathesis", "jinja2", "xtracker_wire._models",
         "xtracker_server.store.sqlite.outbox", "xtracker_server.store.sqlite.cube")  # fmt: skip
#: What a command that validates no link spec does not import either: pydantic, and with it
#: typer's pydantic adapters (typer 0.29 and later: pyproject.toml bounds it).
NOT_PYDANTIC = (*HEAVY, "pydantic")

#: Runs ``xtracker ARGS`` (argv[1], JSON) and prints which of HEAVY (argv[2]) it imported.
PROGRAM = """
import json, sys
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["xtracker", *args]
from xtracker_server.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "imported": [m for m in heavy if m in sys.modules]}))
"""


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "xtracker.db"
    run_cli(path, "space", "create", "imports")
    return path


@pytest.mark.parametrize(
    ("args", "heavy"),
    [
        (["--help"], NOT_PYDANTIC),
        (["serve", "--help"], NOT_PYDANTIC),
        (["worker", "--help"], NOT_PYDANTIC),
        (["space", "list"], NOT_PYDANTIC),
        (["space", "create", "second", "--json"], NOT_PYDANTIC),
        (["link", "list", "--space", "1"], HEAVY),  # a link's spec is a pydantic model
        (["key", "rotate", "--space", "1", "--json"], NOT_PYDANTIC),
        (["admin", "reset-token", "--json"], NOT_PYDANTIC),
    ],
    ids=lambda v: (
        " ".join(v)
        if isinstance(v, list)
        else ("no-pydantic" if "pydantic" in v else "pydantic-allowed")
    ),
)
def test_a_plain_command_imports_neither_the_server_nor_the_sdk(
    db: Path, args: list[str], heavy: tuple[str, ...]
) -> None:
    given = [*args] if "--help" in args else [*args, "--db", str(db)]
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(given), json.dumps(heavy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result == {"code": 0, "imported": []}, proc.stderr


#: What a command should take to start, run and end (issue 15 §5: 0.25 s on two cores).
TARGET_S = 0.25


@pytest.mark.parametrize(
    "args", [["--help"], ["space", "list"], ["link", "list", "--space", "1"]], ids=" ".join
)
def test_a_command_costs_a_bounded_cpu_time(db: Path, args: list[str]) -> None:
    """A guard against a hang or a start-up that regressed several-fold, not a benchmark: the
    bound is ten times the target, in the CPU time of the command's process (what a machine
    loaded by other work does not stretch, as it stretches the wall time); a hang is killed
    at 60 s."""
    given = [*args] if "--help" in args else [*args, "--db", str(db)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "xtracker_server", *given],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "XTRACKER_DB": ""},
    )
    killer = threading.Timer(60, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # the command's own resource usage
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    cpu_s = usage.ru_utime + usage.ru_stime
    assert cpu_s < 10 * TARGET_S, f"xtracker {' '.join(args)} took {cpu_s:.2f} s of CPU"
