"""Credentials without a server: the admin-token rule, token names, the failed-authentication
throttle, and the store's named ingest tokens and revocation (on real SQLite files)."""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from pathlib import Path

import pytest

from tests.databases import migrated
from xtracker_server.auth import Authenticator, FailureThrottle, RateLimiter
from xtracker_server.config import Settings
from xtracker_server.domain.credentials import (
    CredentialKind,
    admin_token_problem,
    check_token_name,
    hash_secret,
    new_secret,
)
from xtracker_server.errors import ApiError
from xtracker_server.store.sqlite import spaces
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.migrations import MIGRATIONS
from xtracker_server.store.sqlite.runtime import Store


@pytest.mark.parametrize(
    "token",
    [
        new_secret(CredentialKind.ADMIN),
        secrets.token_hex(16),
        secrets.token_hex(32),
        secrets.token_urlsafe(32),
        str(uuid.uuid4()),
        "xt_admin_test-operator-token-0123456789",
    ],
    ids=["generated", "hex-16", "hex-32", "urlsafe-32", "uuid4", "tests"],
)
def test_random_admin_tokens_pass(token: str) -> None:
    assert admin_token_problem(token) is None


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("adm", "is 3 characters"),
        (secrets.token_hex(15) + "a", "is 31 characters"),
        ("x" * 64, "a block of 1 character repeated"),
        ("changeme" * 5, "a block of 8 characters repeated"),
        ("0123456789" * 3 + "01", "a block of 10 characters repeated"),
        ("a" * 30 + "bcdefghijk", "too few different characters"),
    ],
    # Named by the reason, not by the token: a random one would name the test differently in
    # each pytest-xdist worker, and the workers must collect the same tests.
    ids=["3", "random-31", "repeat-1", "repeat-8", "repeat-10", "few-different"],
)
def test_weak_admin_tokens_are_refused_with_the_reason(token: str, says: str) -> None:
    problem = admin_token_problem(token)
    assert problem is not None and says in problem and "openssl rand -hex 32" in problem


def test_settings_refuse_a_weak_admin_token_and_accept_none() -> None:
    with pytest.raises(ValueError, match="XTRACKER_ADMIN_TOKEN is 3 characters"):
        Settings(admin_token="adm")
    with pytest.raises(ValueError, match="XTRACKER_ADMIN_TOKEN"):
        Settings.from_env({"XTRACKER_ADMIN_TOKEN": "short"})
    assert Settings().admin_token is None  # generated and stored on the first start instead


def test_token_names_are_lower_cased_and_checked() -> None:
    assert check_token_name("  AdCombo ") == "adcombo"
    assert check_token_name("leadbit_2.eu-1") == "leadbit_2.eu-1"
    for bad in ("", "-x", "a b", "a/b", "x" * 41, "naïve"):
        with pytest.raises(ValueError, match="1 to 40 characters"):
            check_token_name(bad)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_allows_the_budget_then_asks_to_wait_and_refills() -> None:
    clock = Clock()
    throttle = FailureThrottle(6, clock=clock)  # 6 a minute: one every 10 s
    assert [throttle.failed("203.0.113.1") for _ in range(6)] == [None] * 6
    assert throttle.failed("203.0.113.1") == 10
    assert throttle.failed("203.0.113.2") is None  # another address has its own budget
    clock.now += 4
    assert throttle.failed("203.0.113.1") == 6
    clock.now += 6
    assert throttle.failed("203.0.113.1") is None  # one failure's worth refilled
    assert throttle.failed("203.0.113.1") == 10


def test_the_throttle_counts_ipv6_per_64_and_mapped_ipv4_as_ipv4() -> None:
    throttle = FailureThrottle(1, clock=Clock())
    assert throttle.failed("2001:db8:1:2::1") is None
    assert throttle.failed("2001:db8:1:2:ffff::9") is not None  # the same /64
    assert throttle.failed("2001:db8:1:3::1") is None  # another /64
    assert throttle.failed("192.0.2.7") is None
    assert throttle.failed("::ffff:192.0.2.7") is not None


def test_the_throttle_forgets_the_least_recent_address_past_its_bound() -> None:
    throttle = FailureThrottle(1, max_addresses=3, clock=Clock())
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        assert throttle.failed(address) is None
    assert throttle.failed("192.0.2.1") is not None  # remembered, and now the most recent
    assert throttle.failed("192.0.2.4") is None
    assert len(throttle) == 3
    assert throttle.failed("192.0.2.2") is None  # forgotten: a fresh budget
    assert throttle.failed("192.0.2.1") is not None  # still remembered


def test_a_zero_budget_turns_the_throttle_off() -> None:
    throttle = FailureThrottle(0, clock=Clock())
    assert all(throttle.failed("192.0.2.1") is None for _ in range(1000))
    assert len(throttle) == 0


def test_the_rate_limiter_forgets_credentials_whose_bucket_is_full_again() -> None:
    clock = Clock()
    limiter = RateLimiter(1, max_keys=3, clock=clock)  # 1 a second, bursts of 2
    for n in range(100):  # a long-running server: credentials used once, then rotated out
        limiter.check(b"key%d" % n)
        clock.now += 1
    assert len(limiter) <= 3
    busy = b"busy"
    limiter.check(busy)
    limiter.check(busy)  # its burst is used up: this one must not be forgotten
    for n in range(100, 110):
        limiter.check(b"key%d" % n)  # no time passes: none of them is full again either
    with pytest.raises(ApiError, match="requests a second"):
        limiter.check(busy)


def test_the_credential_cache_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import xtracker_server.auth as auth

    monkeypatch.setattr(auth, "MAX_TRACKED_CREDENTIALS", 3)
    path = str(migrated(tmp_path / "t.db"))
    conn = open_db(path)
    with transaction(conn):
        secrets_ = [spaces.create_space(conn, f"s{n}", 1).bearer for n in range(10)]
    conn.close()

    async def run() -> list[int]:
        store = Store(path, writer_process=False)
        await store.open()
        try:
            authenticator = Authenticator(store, Settings(db=path, credential_cache_s=3600))
            sizes = []
            for secret in secrets_:
                cred, _ = await authenticator.lookup(secret)
                assert cred is not None
                sizes.append(authenticator.cached)
            return sizes
        finally:
            await store.close()

    assert max(asyncio.run(run())) <= 3


def _db(tmp_path: Path) -> sqlite3.Connection:
    return open_db(str(migrated(tmp_path / "t.db")))


def test_revoke_previous_ends_only_the_rotated_out_secrets(tmp_path: Path) -> None:
    conn = _db(tmp_path)
    with transaction(conn):
        created = spaces.create_space(conn, "s", 1_000)
        rotation = spaces.rotate_credential(conn, created.space.id, CredentialKind.BEARER, 2_000)
    assert rotation is not None
    with transaction(conn):
        revoked = spaces.revoke_previous(conn, created.space.id, CredentialKind.BEARER, 3_000)
    assert revoked is not None and revoked.hashes == (hash_secret(created.bearer),)
    assert spaces.find_credential(conn, hash_secret(created.bearer), 3_000) is None
    assert spaces.find_credential(conn, hash_secret(rotation.secret), 3_000) is not None
    ingest = spaces.find_credential(conn, hash_secret(created.ingest_token), 3_000)
    assert ingest is not None and ingest.name == "default"
    assert spaces.revoke_previous(conn, 99, CredentialKind.BEARER, 3_000) is None


def test_a_live_token_name_is_taken_until_it_is_revoked(tmp_path: Path) -> None:
    conn = _db(tmp_path)
    with transaction(conn):
        space_id = spaces.create_space(conn, "s", 1_000).space.id
        first = spaces.add_ingest_token(conn, space_id, "adcombo", 1_000)
    assert first is not None
    with pytest.raises(spaces.TokenNameTaken), transaction(conn):
        spaces.add_ingest_token(conn, space_id, "adcombo", 2_000)
    with transaction(conn):
        assert spaces.revoke_ingest_token(conn, space_id, "adcombo", 3_000) is not None
        again = spaces.add_ingest_token(conn, space_id, "adcombo", 4_000)
    assert again is not None and again.secret != first.secret
    listed = spaces.list_ingest_tokens(conn, space_id, 5_000)
    assert [(t.name, t.created_ms) for t in listed] == [("adcombo", 4_000), ("default", 1_000)]


def test_the_migration_names_existing_ingest_tokens_default(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    mine = next(i for i, sql in enumerate(MIGRATIONS) if "token_name" in sql)
    old = sqlite3.connect(path)
    for sql in MIGRATIONS[:mine]:
        old.executescript(sql)
    old.execute(f"PRAGMA user_version = {mine}")
    old.execute("INSERT INTO spaces (id, name, created_ms) VALUES (1, 'old', 0)")
    old.execute(
        "INSERT INTO credentials (space_id, kind, hash, hint, created_ms)"
        " VALUES (1, 'ingest', ?, 'xt_it_…abcd', 0)",
        (hash_secret("xt_it_from-before"),),
    )
    old.commit()
    old.close()
    conn = open_db(str(path))
    found = spaces.find_credential(conn, hash_secret("xt_it_from-before"), 1)
    assert found is not None and found.name == "default" and found.space_id == 1
    assert [t.name for t in spaces.list_ingest_tokens(conn, 1, 1)] == ["default"]
