"""Who is calling: space credentials (bearer or ingest token), the operator's admin token, a
per-credential rate limit, and a per-address limit on failed authentications.

A credential is always checked first: a valid one is never refused because others failed from
the same address (a partner's shared server must keep working). Only failures are counted, and
past the budget a failure answers 429 instead of 401.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.requests import Request

from xtracker_server.clock import now_ms
from xtracker_server.config import Settings
from xtracker_server.domain.credentials import CredentialKind, hash_secret, same_hash
from xtracker_server.domain.entities import Credential
from xtracker_server.domain.visitors import client_ip, parse_networks
from xtracker_server.errors import ApiError
from xtracker_server.store.api import Store

#: How many client addresses the failure throttle remembers; the least recently failing
#: address is forgotten first, so memory stays bounded whatever the number of attackers.
MAX_THROTTLED_ADDRESSES = 65_536
#: Past this many credentials, the rate limiter forgets the buckets that are full again (as
#: if never used: nothing changes for them), and the credential cache starts over. Only
#: valid credentials get there, but a long-running server sees every secret ever rotated.
MAX_TRACKED_CREDENTIALS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per credential: ``rate`` requests a second, bursts of twice that.

    Past ``max_keys`` buckets (``MAX_TRACKED_CREDENTIALS``), those that are full again are
    forgotten (a bucket fills up in 2 s): what is kept is bounded by the credentials in use."""

    def __init__(
        self,
        rate: float,
        *,
        max_keys: int = MAX_TRACKED_CREDENTIALS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[bytes, _Bucket] = {}
        self._forget_at = max_keys  # grows while that many are in use (each forget is O(n))

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: bytes) -> None:
        if self.rate <= 0:
            return
        now = self._clock()
        burst = 2 * self.rate
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._forget_at:
                self._forget(now)
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

    def _forget(self, now: float) -> None:
        burst = 2 * self.rate
        self._buckets = {
            k: b for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate < burst
        }
        self._forget_at = max(self.max_keys, 2 * len(self._buckets))


class FailureThrottle:
    """Failed authentications per client address: a token bucket of ``per_minute`` failures,
    refilled at that rate. IPv6 addresses count per /64 (what one subscriber gets)."""

    def __init__(
        self,
        per_minute: float,
        *,
        max_addresses: int = MAX_THROTTLED_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def failed(self, address: str | None) -> int | None:
        """Count one failure from ``address``: None while within the budget, else the whole
        seconds until the next failure would be within it again."""
        if self.per_minute <= 0:
            return None
        key = _address_key(address)
        now = self._clock()
        rate = self.per_minute / 60
        bucket = self._buckets.pop(key, None) or _Bucket(self.per_minute, now)
        self._buckets[key] = bucket  # now the most recent
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
        bucket.tokens = min(self.per_minute, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens < 1:
            return max(1, math.ceil((1 - bucket.tokens) / rate))
        bucket.tokens -= 1
        return None


def _address_key(address: str | None) -> str:
    if address is None:
        return "?"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Authenticator:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._cache_s = settings.credential_cache_s
        self._cache: dict[bytes, tuple[Credential, float]] = {}
        self._env_admin = hash_secret(settings.admin_token) if settings.admin_token else None
        self._trusted = parse_networks(settings.trusted_proxies)
        self._metrics_token = (
            hash_secret(settings.metrics_token) if settings.metrics_token else None
        )
        self._metrics_public = settings.metrics_public
        self.limiter = RateLimiter(settings.rate_limit)
        self.failures = FailureThrottle(settings.auth_failures_per_minute)

    @property
    def cached(self) -> int:
        """Credentials held in the cache now (at most ``MAX_TRACKED_CREDENTIALS``)."""
        return len(self._cache)

    def forget(self, digests: Iterable[bytes]) -> None:
        """Drop cached lookups (of secrets just revoked here): the next use asks the database.
        Other processes see a revocation within ``credential_cache_s``."""
        for digest in digests:
            self._cache.pop(digest, None)

    def client(self, request: Request) -> str | None:
        """The caller's address, believing X-Forwarded-For only from a trusted proxy."""
        return client_ip(
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-for"),
            self._trusted,
        )

    def refused(self, request: Request, detail: str) -> ApiError:
        """The answer to a failed authentication: 401, or 429 once the caller's address has
        failed too often. Counts the failure."""
        wait = self.failures.failed(self.client(request))
        if wait is None:
            return ApiError(401, "unauthorized", detail)
        return ApiError(
            429,
            "rate_limited",
            f"too many failed authentications from this address; retry after {wait} s. This"
            f" one failed too: {detail}",
            headers={"Retry-After": str(wait)},
        )

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
            cred = await self._store.find_credential(digest, now_ms())
            if cred is None:
                self._cache.pop(digest, None)
            else:
                if len(self._cache) >= MAX_TRACKED_CREDENTIALS and digest not in self._cache:
                    self._cache.clear()  # looked up again when next used
                self._cache[digest] = (cred, now + self._cache_s)
        if cred is not None and cred.expires_ms is not None and cred.expires_ms <= now_ms():
            cred = None
        return cred

    async def credential(
        self, request: Request, secret: str | None, kind: CredentialKind, how: str
    ) -> Credential:
        """The live space credential ``secret`` is, of ``kind``; else 401 (or 429)."""
        if not secret:
            raise self.refused(request, f"missing credential: {how}")
        cred, digest = await self.lookup(secret)
        if cred is None or cred.kind is not kind or cred.space_id is None:
            raise self.refused(request, f"invalid or expired credential: {how}")
        self.limiter.check(digest)
        return cred

    async def space(
        self, request: Request, secret: str | None, kind: CredentialKind, how: str
    ) -> int:
        """The space a bearer secret or ingest token belongs to; else 401 (or 429)."""
        cred = await self.credential(request, secret, kind, how)
        assert cred.space_id is not None
        return cred.space_id

    async def bearer_space(self, request: Request) -> int:
        return await self.space(
            request,
            bearer_of(request),
            CredentialKind.BEARER,
            "send Authorization: Bearer <space secret>",
        )

    async def is_admin(self, request: Request) -> bool:
        """Whether the request carries the admin token. Counts nothing: for endpoints that
        also take another credential (reports), which then decides."""
        secret = bearer_of(request)
        if not secret:
            return False
        digest = hash_secret(secret)
        if self._env_admin is not None and same_hash(digest, self._env_admin):
            return True
        cred, _ = await self.lookup(secret)
        return cred is not None and cred.kind is CredentialKind.ADMIN

    async def admin(self, request: Request) -> None:
        """The admin token, or 401 (or 429)."""
        how = "send Authorization: Bearer <admin token>"
        if not bearer_of(request):
            raise self.refused(request, f"missing credential: {how}")
        if not await self.is_admin(request):
            raise self.refused(request, f"invalid admin token: {how}")

    async def metrics_reader(self, request: Request) -> None:
        """GET /metrics: the admin token or XTRACKER_METRICS_TOKEN, or nothing when
        XTRACKER_METRICS_PUBLIC is on; 401 otherwise."""
        if self._metrics_public:
            return
        secret = bearer_of(request)
        token = self._metrics_token
        if secret and token is not None and same_hash(hash_secret(secret), token):
            return
        if not secret:
            how = "send Authorization: Bearer <admin token or XTRACKER_METRICS_TOKEN>"
            raise ApiError(401, "unauthorized", f"missing credential: {how}")
        await self.admin(request)

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
