"""The cyclic garbage collector of a command's process.

A command runs for a moment. At Python's thresholds the collector runs some 40 times while the
command imports Typer and its own modules (about a tenth of a command's instructions) and finds
next to nothing to free: what an import makes lives on. ``for_a_moment`` makes it run after
every 50,000 new objects instead, so that a command that loops over many (an import of costs,
a long export) still collects. It is called first of all (xtracker_server/__main__.py, before
Typer is imported). A command that runs until it is stopped (``serve``, ``worker``, ``tail``)
calls ``runs_on``: Python's thresholds again, as any long-lived process has them.

When the process ends, the interpreter collects once more over every object still alive (about
8 % of a command's instructions, the same in any Python program), to free next to none of them:
``at_exit`` freezes them first (``gc.freeze``), so that last collection has nothing to walk.
Nothing else of the ending changes: files are flushed and closed, ``atexit`` handlers run.

This module imports nothing else: it is loaded before everything it is meant to speed up."""

from __future__ import annotations

import gc

__all__ = ["PYTHON_THRESHOLDS", "START_THRESHOLDS", "at_exit", "for_a_moment", "runs_on"]

#: The thresholds the interpreter started with, before ``for_a_moment`` changed them.
PYTHON_THRESHOLDS = gc.get_threshold()
#: A command's: a collection after 50,000 new objects (not 700), older generations seldom.
START_THRESHOLDS = (50_000, 20, 100)


def for_a_moment() -> None:
    gc.set_threshold(*START_THRESHOLDS)


def runs_on() -> None:
    gc.set_threshold(*PYTHON_THRESHOLDS)


def at_exit() -> None:
    gc.freeze()
