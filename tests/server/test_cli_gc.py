"""A command runs with the cyclic collector's start-up thresholds (xtracker_server/_gc.py
``for_a_moment``: tests/server/test_cli_imports.py checks it in a real process); the commands
that run until they are stopped get Python's own back before they start serving."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from xtracker_server import _gc
from xtracker_server.cli import serve
from xtracker_server.config import Settings


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    _gc.for_a_moment()
    yield before
    gc.set_threshold(*before)


def test_a_command_starts_with_the_collector_seldom_running() -> None:
    assert gc.get_threshold() == (50_000, 20, 100)


def test_the_server_runs_with_pythons_thresholds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, thresholds: tuple[int, int, int]
) -> None:
    import uvicorn

    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.append(gc.get_threshold()))
    serve.run_server(Settings(db=str(tmp_path / "gc.db")))
    assert seen == [thresholds]


def test_the_worker_runs_with_pythons_thresholds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, thresholds: tuple[int, int, int]
) -> None:
    seen: list[tuple[int, int, int]] = []

    def run(main: Coroutine[Any, Any, None]) -> None:
        main.close()
        seen.append(gc.get_threshold())

    monkeypatch.setattr(asyncio, "run", run)
    serve.run_worker(Settings(db=str(tmp_path / "gc.db")))
    assert seen == [thresholds]
