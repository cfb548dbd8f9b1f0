"""Secrets: minted random, shown once, stored only as SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import Enum


class CredentialKind(str, Enum):
    BEARER = "bearer"  # Authorization: Bearer on the POST endpoints
    INGEST = "ingest"  # ?token= on the header-less GET endpoints (postbacks)
    ADMIN = "admin"  # the operator's token for the admin API

    @property
    def prefix(self) -> str:
        # Recognisable prefixes let leak scanners (GitHub secret scanning, gitleaks) spot them.
        return {"bearer": "xt_sk_", "ingest": "xt_it_", "admin": "xt_admin_"}[self.value]


#: A rotated-out secret keeps working this long, so deployed bots and postback URLs can move over.
ROTATION_GRACE_MS = 24 * 3600 * 1000


def new_secret(kind: CredentialKind) -> str:
    """A fresh secret: the kind's prefix and 192 random bits, URL-safe."""
    return kind.prefix + secrets.token_urlsafe(24)


def hash_secret(secret: str) -> bytes:
    """What is stored. Secrets are high-entropy, so a plain SHA-256 is the right tool
    (a slow password hash would only slow every request)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def same_hash(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def mask(secret: str) -> str:
    """What may appear in logs and listings: the prefix and the last four characters."""
    for kind in CredentialKind:
        if secret.startswith(kind.prefix):
            return f"{kind.prefix}…{secret[-4:]}"
    return "…" + secret[-4:] if len(secret) > 8 else "…"
