"""What an in-process server (``AppServer`` in tests/conftest.py) is built from: the settings
``xtracker serve`` would build from its flags, uvicorn's options as ``serve`` sets them, and
the real ``xtracker`` command run by Typer's runner in this process."""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import fields
from pathlib import Path

from xtracker_server.config import Settings

#: What an in-process server's log file gets: the app's records of WARNING and up (what
#: ``xtracker serve`` prints: nothing configures them, Python's last resort handler does) and
#: uvicorn's of INFO and up (``serve`` runs it with --log-level info).
LOG_LEVELS = {"xtracker": logging.WARNING, "uvicorn": logging.INFO}

#: The uvicorn options of ``xtracker serve`` (xtracker_server/cli.py); ``log_config=None``
#: leaves the test process's logging as it is.
UVICORN_OPTIONS = {
    "log_config": None,
    "log_level": "info",
    "access_log": False,
    "server_header": False,
    "proxy_headers": False,
}


def settings_of(db: Path, port: int, args: tuple[str, ...], env: dict[str, str]) -> Settings:
    """The ``Settings`` that ``xtracker serve --db DB --port PORT *args`` builds in an
    environment with ``env``: each ``--flag value`` (``--flag`` / ``--no-flag`` for a switch)
    is read as its variable ``XTRACKER_FLAG``, which every flag of ``serve`` has. An argument
    that is no setting's flag fails rather than being ignored."""
    switches = {f.name for f in fields(Settings) if isinstance(f.default, bool)}
    names = {f.name for f in fields(Settings)}
    variables = {k: v for k, v in os.environ.items() if k.startswith("XTRACKER_")}
    variables.update(env)
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        name = flag.removeprefix("--").replace("-", "_")
        if not flag.startswith("--"):
            raise ValueError(f"{flag!r} is not a flag of xtracker serve")
        if name.startswith("no_") and name[3:] in switches:
            variables[f"XTRACKER_{name[3:].upper()}"] = "off"
        elif name in switches:
            variables[f"XTRACKER_{name.upper()}"] = "on"
        elif name in names and rest:
            variables[f"XTRACKER_{name.upper()}"] = rest.pop(0)
        else:
            raise ValueError(f"{flag!r} is not a flag the in-process server knows")
    return Settings.from_env(variables).with_(db=str(db), host="127.0.0.1", port=port)


def log_handler(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(lambda r: r.levelno >= LOG_LEVELS[r.name.partition(".")[0]])
    return handler


def cli_in_process(
    db: Path, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``xtracker ARGS --db DB`` run by Typer's runner in this process: the real command, with
    its exit code, stdout and stderr. An exception that escapes the command is raised here (a
    process would print it as a traceback and exit 1)."""
    from typer.testing import CliRunner

    from xtracker_server.cli import app

    argv = [*args, "--db", str(db)]
    result = CliRunner().invoke(
        app, argv, input=input, env={"XTRACKER_DB": ""}, prog_name="xtracker",
        catch_exceptions=False,
    )  # fmt: skip
    proc = subprocess.CompletedProcess(
        ["xtracker", *argv], result.exit_code, result.stdout, result.stderr
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"xtracker {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
    return proc
