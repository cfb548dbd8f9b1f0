"""A space's credentials: what the store answers (secrets only in the records that show them
once: ``Rotation``, ``NewToken``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the writer process imports this module, keep it light
    from xtracker_server.domain.credentials import CredentialKind

__all__ = ["Credential", "IngestToken", "NewToken", "Revocation", "Rotation"]


@dataclass(frozen=True)
class Credential:
    space_id: int | None
    kind: CredentialKind
    expires_ms: int | None
    name: str | None = None  # an ingest token's name


@dataclass(frozen=True)
class Rotation:
    space_id: int
    kind: CredentialKind
    secret: str
    previous_valid_until_ms: int | None
    name: str | None = None  # an ingest token's name


@dataclass(frozen=True)
class Revocation:
    """Secrets ended now. ``hashes`` lets the server drop them from its cache at once."""

    space_id: int
    kind: CredentialKind
    name: str | None
    hashes: tuple[bytes, ...]

    @property
    def revoked(self) -> int:
        return len(self.hashes)


@dataclass(frozen=True)
class NewToken:
    """An ingest token just added: the only time its secret is shown."""

    space_id: int
    name: str
    secret: str


@dataclass(frozen=True)
class IngestToken:
    """A live ingest token as listed: never its secret. ``expires_ms`` is set while a
    rotated-out token is in its grace period."""

    name: str
    hint: str
    created_ms: int
    expires_ms: int | None
    last_postback_ms: int | None = None
