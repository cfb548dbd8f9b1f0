"""Secrets: minted random, shown once, stored only as SHA-256, compared in constant time."""

from __future__ import annotations

import math
import re
from collections import Counter
from enum import Enum

# hashlib, hmac and secrets are imported by the functions that use them: every command imports
# this module (``CredentialKind``), few of them hash or mint a secret (~4 ms of a start-up).


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
    import secrets  # here: see the imports above

    return kind.prefix + secrets.token_urlsafe(24)


def hash_secret(secret: str) -> bytes:
    """What is stored. Secrets are high-entropy, so a plain SHA-256 is the right tool
    (a slow password hash would only slow every request)."""
    import hashlib  # here: see the imports above

    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def same_hash(a: bytes, b: bytes) -> bool:
    import hmac  # here: see the imports above

    return hmac.compare_digest(a, b)


def mask(secret: str) -> str:
    """What may appear in logs and listings: the prefix and the last four characters."""
    for kind in CredentialKind:
        if secret.startswith(kind.prefix):
            return f"{kind.prefix}…{secret[-4:]}"
    return "…" + secret[-4:] if len(secret) > 8 else "…"


#: The ingest token every space starts with (migration 5 gave this name to existing ones).
DEFAULT_TOKEN_NAME = "default"

_TOKEN_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


def check_token_name(raw: str) -> str:
    """An ingest token's name (one per partner network: ``adcombo``), lower-cased."""
    name = raw.strip().lower()
    if not _TOKEN_NAME.fullmatch(name):
        raise ValueError(
            "a token name is 1 to 40 characters: letters, digits, '.', '_' or '-', starting"
            " with a letter or digit (e.g. adcombo)"
        )
    return name


#: The shortest ``XTRACKER_ADMIN_TOKEN`` a server accepts.
MIN_ADMIN_TOKEN_CHARS = 32
#: The least character-frequency entropy (length x bits per character) it must show.
MIN_ADMIN_TOKEN_BITS = 80.0
_GENERATE = "generate one with: openssl rand -hex 32"


def admin_token_problem(token: str) -> str | None:
    """Why ``token`` is too weak to guard the admin API, or None. The rule: at least 32
    characters; not a block repeated (``abcabc…``, ``0123456789`` over and over); and at least
    80 bits by its character frequencies (length x the Shannon entropy of its characters), which
    refuses tokens made mostly of one or a few characters. A random token passes by far (32 hex
    characters give about 115 bits); a chosen phrase may pass too, so generate it."""
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        return (
            f"XTRACKER_ADMIN_TOKEN is {len(token)} characters; it must be at least"
            f" {MIN_ADMIN_TOKEN_CHARS} random characters ({_GENERATE})"
        )
    period = _period(token)
    if period < len(token):
        return (
            f"XTRACKER_ADMIN_TOKEN is a block of {period} character{'s' if period > 1 else ''}"
            f" repeated; it must be random ({_GENERATE})"
        )
    counts = Counter(token).values()
    bits = -sum(c * math.log2(c / len(token)) for c in counts)
    if bits < MIN_ADMIN_TOKEN_BITS:
        return (
            f"XTRACKER_ADMIN_TOKEN is made of too few different characters (about {bits:.0f}"
            f" bits, at least {MIN_ADMIN_TOKEN_BITS:.0f} needed); it must be random ({_GENERATE})"
        )
    return None


def _period(text: str) -> int:
    """The length of the shortest block whose repetition is ``text`` (a last partial block
    allowed), or ``len(text)`` when there is none of at most half its length. Linear: the
    longest proper prefix that is also a suffix (Knuth-Morris-Pratt) gives the period."""
    border = [0] * len(text)
    for i in range(1, len(text)):
        k = border[i - 1]
        while k and text[i] != text[k]:
            k = border[k - 1]
        border[i] = k + 1 if text[i] == text[k] else 0
    period = len(text) - (border[-1] if text else 0)
    return period if period <= len(text) // 2 else len(text)
