"""Links, as the store answers them (what each is set to, ``LinkSettings``, is in
domain/links.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the writer process imports this module, keep it light
    from xtracker_server.domain.links import LinkKind, LinkSettings

__all__ = ["Link"]


@dataclass(frozen=True)
class Link:
    id: int
    space_id: int
    slug: str
    spec: LinkSettings
    created_ms: int
    updated_ms: int

    @property
    def kind(self) -> LinkKind:
        return self.spec.kind

    @property
    def enabled(self) -> bool:
        return self.spec.enabled
