"""Deletions and erasures: what the store answers."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Batch", "Erased", "Marked"]


@dataclass(frozen=True)
class Marked:
    """A deletion just marked: what the mark itself removed (a space's credentials), and the
    landings that went (for the link cache)."""

    target_id: int
    removed: dict[str, int] = field(default_factory=dict)
    slugs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Batch:
    removed: dict[str, int]
    done: bool  # nothing is left to delete


@dataclass(frozen=True)
class Erased:
    removed: dict[str, int]
    uids: tuple[str, ...]  # the person's uids (by tg_id: every uid bound to them)
