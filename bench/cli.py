"""How long an ``xtracker`` command takes, start to end, against the floor of any Typer CLI.

Each command runs as a user runs it (``python -m xtracker_server ARGS``, a new process) on a
database made for the run (one space, a few links). The baseline, in the
same run and the same way: a Typer program of one command that opens the same SQLite file,
reads the spaces and prints them as JSON, the least a command can cost with the same
interpreter, Typer and sqlite3. Commands and the baseline run in turn, ``--runs`` rounds (the
order rotates every round, so drift of the machine hits all of them); for each, the median
wall time and the median CPU time of its process (user + system, from ``wait4``). Issue 15's
target: a command under 0.25 s. Run it on a quiet machine; the ratio to the baseline is the
figure that carries across machines.

    python bench/cli.py --runs 21
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.25

BASELINE = """
import json, sqlite3, typer
app = typer.Typer(add_completion=False)
@app.command()
def spaces(db: str, as_json: bool = typer.Option(False, "--json")) -> None:
    conn = sqlite3.connect(db)
    print(json.dumps([list(r) for r in conn.execute("SELECT id, name FROM spaces")]))
app()
"""

COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "space list": ["space", "list", "--json", "--db", "{db}"],
    "link list": ["link", "list", "--space", "1", "--json", "--db", "{db}"],
    "report funnel": ["report", "funnel", "--space", "1", "--days", "7", "--json", "--db", "{db}"],
    "outbox list": ["outbox", "list", "--space", "1", "--json", "--db", "{db}"],
    "report links": ["report", "links", "--space", "1", "--days", "7", "--json", "--db", "{db}"],
    "destination list": ["destination", "list", "--space", "1", "--json", "--db", "{db}"],
}


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one process running ``argv``; it must succeed."""
    env = {**os.environ, "XTRACKER_DB": ""}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime


#: The database of the run: a space with a few links, made by the real commands, one after
#: another in one process (a process each would cost more than a round of the timed runs).
MAKE_DATABASE = """
import sys
from xtracker_server.cli import app
commands = [["space", "create", "bench"]] + [
    ["link", "create", "--space", "1", "--slug", f"bench-{i}", "--kind", "bot",
     "--target", "xtracker_bench_bot"] for i in range(5)
]
for argv in commands:
    code = app([*argv, "--db", sys.argv[1]], prog_name="xtracker", standalone_mode=False)
    if code:
        sys.exit(f"xtracker {' '.join(argv)} exited {code}")
"""


def make_database(path: Path) -> None:
    """A space with a few links, made with the real commands."""
    proc = subprocess.run(
        [sys.executable, "-c", MAKE_DATABASE, str(path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"making the database failed: {proc.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds (default 15)")
    warm = "no untimed first run of each program (a quick check that each runs)"
    parser.add_argument("--no-warm-up", action="store_true", help=warm)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "cli-bench.db"
        make_database(db)
        programs = {"baseline (Typer + sqlite3)": [sys.executable, "-c", BASELINE, str(db)]}
        for name, argv in COMMANDS.items():
            programs[name] = [sys.executable, "-m", "xtracker_server",
                              *(a.format(db=db) for a in argv)]  # fmt: skip
        for argv in [] if args.no_warm_up else programs.values():
            timed(argv)  # warm the page cache (and any bytecode cache)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in programs}
        names = list(programs)
        for round_ in range(args.runs):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                samples[name].append(timed(programs[name]))
    base_wall = statistics.median(w for w, _ in samples[names[0]])
    base_cpu = statistics.median(c for _, c in samples[names[0]])
    print(f"{'command':28} {'wall s':>8} {'cpu s':>7} {'÷ baseline':>11}  target {TARGET_S} s")
    result = {}
    for name in names:
        wall = statistics.median(w for w, _ in samples[name])
        cpu = statistics.median(c for _, c in samples[name])
        verdict = "" if name == names[0] else ("met" if wall < TARGET_S else "MISSED")
        print(f"{name:28} {wall:8.3f} {cpu:7.3f} {wall / base_wall:11.2f}  {verdict}")
        result[name] = {"wall_s": wall, "cpu_s": cpu, "ratio": wall / base_wall}
    print(f"(baseline: {base_wall:.3f} s wall, {base_cpu:.3f} s CPU; {args.runs} rounds)")
    print("json:", json.dumps(result))


if __name__ == "__main__":
    main()
