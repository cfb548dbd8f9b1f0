"""``examples/test_mode.py`` is a pytest file (the documented way to test a bot's reporting):
it is run here as a user runs it, ``python -m pytest examples/test_mode.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_test_mode_example_passes_under_pytest(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTRACKER_")}
    env["PYTHONPATH"] = str(ROOT)
    env["XDG_CACHE_HOME"] = str(tmp_path)  # where a default spool would go
    # Without the plugins of the dev install (schemathesis, hypothesis …): loading them takes
    # longer than the example; pytest-timeout stays, pyproject.toml sets its option.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    # (and without the suite's "-n auto" of pyproject's addopts: xdist is one of those plugins)
    command = ["examples/test_mode.py", "-q", "-p", "no:cacheprovider", "-p", "pytest_timeout",
               "-o", "addopts=--strict-markers"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *command],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout, proc.stdout
    assert not any(tmp_path.iterdir())  # no spool file, no server: nothing but memory
