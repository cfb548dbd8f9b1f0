"""Spaces: what the store answers (a new space's secrets only in ``NewSpace``, which shows them
once). Their credentials' records are in ``credentials.py``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NewSpace", "Space"]


@dataclass(frozen=True)
class Space:
    id: int
    name: str
    created_ms: int


@dataclass(frozen=True)
class NewSpace:
    """A space just created, with its secrets: the only time they are ever shown."""

    space: Space
    bearer: str
    ingest_token: str
