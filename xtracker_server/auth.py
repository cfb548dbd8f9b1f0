"""Who is calling: space credentials (bearer or ingest token), the operator's admin token, and
a per-credential rate limit."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from starlette.requests import Request

from xtracker_server.config import Settings
from xtracker_server.domain.credentials import CredentialKind, hash_secret, same_hash
from xtracker_server.errors import ApiError
from xtracker_server.store.runtime import Store
from xtracker_server.store.spaces import Credential, find_credential


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per credential: ``rate`` requests a second, bursts of twice that."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[bytes, _Bucket] = {}

    def check(self, key: bytes) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        burst = 2 * self.rate
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens < 1:
            wait = math.ceil((1 - bucket.tokens) / self.rate)
            raise ApiError(
                429,
                "rate_limited",
                f"more than {self.rate:g} requests a second with this credential;"
                f" retry after {wait} s",
                headers={"Retry-After": str(wait)},
            )
        bucket.tokens -= 1


class Authenticator:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._cache_s = settings.credential_cache_s
        self._cache: dict[bytes, tuple[Credential, float]] = {}
        self._env_admin = hash_secret(settings.admin_token) if settings.admin_token else None
        self.limiter = RateLimiter(settings.rate_limit)

    async def lookup(self, secret: str) -> tuple[Credential | None, bytes]:
        digest = hash_secret(secret)
        return await self.lookup_hash(digest), digest

    async def lookup_hash(self, digest: bytes) -> Credential | None:
        """The live credential with this hash (cached ``credential_cache_s``), or None."""
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            cred: Credential | None = hit[0]
        else:
            cred = await self._store.read(find_credential, digest, now_ms())
            if cred is None:
                self._cache.pop(digest, None)
            else:
                self._cache[digest] = (cred, now + self._cache_s)
        if cred is not None and cred.expires_ms is not None and cred.expires_ms <= now_ms():
            cred = None
        return cred

    async def space(self, secret: str | None, kind: CredentialKind, how: str) -> int:
        """The space a bearer secret or ingest token belongs to, or 401."""
        if not secret:
            raise ApiError(401, "unauthorized", f"missing credential: {how}")
        cred, digest = await self.lookup(secret)
        if cred is None or cred.kind is not kind or cred.space_id is None:
            raise ApiError(401, "unauthorized", f"invalid or expired credential: {how}")
        self.limiter.check(digest)
        return cred.space_id

    async def bearer_space(self, request: Request) -> int:
        return await self.space(
            bearer_of(request), CredentialKind.BEARER, "send Authorization: Bearer <space secret>"
        )

    async def admin(self, request: Request) -> None:
        secret = bearer_of(request)
        how = "send Authorization: Bearer <admin token>"
        if not secret:
            raise ApiError(401, "unauthorized", f"missing credential: {how}")
        digest = hash_secret(secret)
        if self._env_admin is not None and same_hash(digest, self._env_admin):
            return
        cred, _ = await self.lookup(secret)
        if cred is None or cred.kind is not CredentialKind.ADMIN:
            raise ApiError(401, "unauthorized", f"invalid admin token: {how}")

    def forget_space(self, space_id: int) -> None:
        """Drop the cached credentials of a space (deleted: they stop working at once here;
        other processes notice within ``credential_cache_s``)."""
        for digest, (cred, _) in list(self._cache.items()):
            if cred.space_id == space_id:
                del self._cache[digest]

    async def still_valid(self, digest: bytes) -> bool:
        """Whether the credential with this hash still works (the live stream asks every second
        or so): False once it expired (rotated past its grace, revoked) or was deleted."""
        if self._env_admin is not None and same_hash(digest, self._env_admin):
            return True
        return await self.lookup_hash(digest) is not None


def bearer_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
