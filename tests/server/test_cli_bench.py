"""bench/cli.py runs: every command it times succeeds and each gets its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_benchmark_times_every_command_against_its_baseline() -> None:
    # One timed round and no warm-up round: what is checked here is that it runs and reports
    # every figure, not the figures (a warm-up would start each program once more).
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cli.py"), "--runs", "1", "--no-warm-up"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.split("json:", 1)[1])
    baseline = next(iter(figures))
    assert baseline.startswith("baseline")
    assert {"--help", "space list", "link list", "report funnel", "outbox list"} <= set(figures)
    for name, f in figures.items():
        assert f["wall_s"] > 0 and f["cpu_s"] > 0, name
    assert figures[baseline]["ratio"] == 1.0
