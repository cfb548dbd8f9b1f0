"""The server reads the wall clock in one place (xtracker_server/clock.py): a second definition
of "now in milliseconds" can drift from the first (rounding, a clock a test controls)."""

from __future__ import annotations

import re
from pathlib import Path

import xtracker_server
from xtracker_server.clock import now_ms

SERVER = Path(xtracker_server.__file__).parent
#: A function that says what time it is in ms, or the expression such functions return.
OWN_CLOCK = re.compile(r"def _?now_ms\(|time\.time\(\) \* 1000")


def test_only_clock_py_reads_the_time_in_milliseconds() -> None:
    found = [
        f"{path.relative_to(SERVER)}:{n}: {line.strip()}"
        for path in sorted(SERVER.rglob("*.py"))
        if path.name != "clock.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OWN_CLOCK.search(line)
    ]
    assert found == [], "use xtracker_server.clock.now_ms():\n" + "\n".join(found)


def test_now_ms_is_unix_time_in_milliseconds() -> None:
    import time

    before = time.time()
    now = now_ms()
    after = time.time()
    assert isinstance(now, int)
    assert int(before * 1000) <= now <= int(after * 1000)
