"""Credentials against a running server and the real CLI: a rotated-out secret revoked at once,
a strong admin token, failed authentications throttled per address, and named ingest tokens
(docs/api.md#authentication, docs/operations.md#secrets)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Server, ServerFactory, free_port, module_server
from tests.e2e.test_cli_and_admin import eventually
from tests.inprocess import cli_in_process

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EVENT = {"uid": "cred-uid", "event": "contact"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """tests/conftest.py's module server, trusting a looked-up credential for 0.5 s instead of
    2 (XTRACKER_CREDENTIAL_CACHE_S): what the CLI changes is seen within that."""
    yield from module_server(tmp_path_factory, "--credential-cache-s", "0.5")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def postback(http: httpx.Client, token: str, eid: str, **headers: str) -> httpx.Response:
    params = {"token": token, "uid": "cred-uid", "event": "deposit", "value": "5", "eid": eid}
    return http.get("/e", params=params, headers=headers)


def test_admin_revoke_ends_the_previous_bearer_at_once(server: Server) -> None:
    space = server.new_space("leaked-bearer")
    path = f"/admin/spaces/{space.id}"
    with server.client() as http:
        new = http.post(f"{path}/rotate", headers=ADMIN).json()["bearer"]
        # The leaked secret still works in its grace period (and is now in the server's cache).
        assert http.post("/events", json=EVENT, headers=space.auth).status_code == 200
        r = http.post(f"{path}/revoke", json={"kind": "bearer"}, headers=ADMIN)
        assert r.status_code == 200
        assert r.json() == {"ok": True, "space_id": space.id, "kind": "bearer", "revoked": 1}
        old = http.post("/events", json=EVENT, headers=space.auth)
        assert old.status_code == 401 and old.json()["error"] == "unauthorized"
        assert http.post("/events", json=EVENT, headers=bearer(new)).status_code == 200

        # A second rotation and revoke (empty body: the bearer) ends the first new one only.
        newer = http.post(f"{path}/rotate", headers=ADMIN).json()["bearer"]
        assert http.post("/events", json=EVENT, headers=bearer(new)).status_code == 200
        assert http.post(f"{path}/revoke", headers=ADMIN).json()["revoked"] == 1
        assert http.post("/events", json=EVENT, headers=bearer(new)).status_code == 401
        assert http.post("/events", json=EVENT, headers=bearer(newer)).status_code == 200
        # Nothing left to end: the current secret is never revoked by this.
        assert http.post(f"{path}/revoke", headers=ADMIN).json()["revoked"] == 0
        assert http.post("/events", json=EVENT, headers=bearer(newer)).status_code == 200


def test_admin_revoke_ends_the_previous_ingest_token_at_once(server: Server) -> None:
    space = server.new_space("leaked-token")
    path = f"/admin/spaces/{space.id}"
    with server.client() as http:
        rotated = http.post(f"{path}/rotate", json={"kind": "ingest"}, headers=ADMIN).json()
        assert rotated["name"] == "default"
        new = rotated["ingest_token"]
        assert postback(http, space.ingest_token, "it-1").status_code == 200
        r = http.post(f"{path}/revoke", json={"kind": "ingest"}, headers=ADMIN)
        assert r.json() == {
            "ok": True, "space_id": space.id, "kind": "ingest", "name": "default", "revoked": 1
        }  # fmt: skip
        assert postback(http, space.ingest_token, "it-2").status_code == 401
        assert postback(http, new, "it-3").status_code == 200
        # The bearer was not touched.
        assert http.post("/events", json=EVENT, headers=space.auth).status_code == 200


def test_cli_key_revoke_ends_the_previous_secret_in_a_running_server(server: Server) -> None:
    space = server.new_space("cli-revoke")
    sid = str(space.id)
    new = server.cli_json("key", "rotate", "--space", sid)["bearer"]
    with server.client() as http:

        def works(secret: str) -> bool:
            return http.post("/events", json=EVENT, headers=bearer(secret)).status_code == 200

        assert works(space.bearer)
        revoked = server.cli_json("key", "revoke", "--space", sid)
        assert revoked == {"space_id": space.id, "kind": "bearer", "revoked": 1}
        # Another process revoked it: the server sees it within its credential cache time.
        assert eventually(lambda: not works(space.bearer))
        assert eventually(lambda: works(new))

        newer = server.cli_json("key", "rotate", "--space", sid)["bearer"]
        assert eventually(lambda: works(newer)) and works(new)
        text = server.cli("key", "revoke", "--space", sid).stdout
        assert "Ended 1 previous bearer" in text
        assert eventually(lambda: not works(new))
        assert works(newer)
    again = server.cli("key", "revoke", "--space", sid).stdout
    assert "nothing to end" in again


def _exits(args: list[str], db: Path, token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XTRACKER_ADMIN_TOKEN": token}
    env.pop("XTRACKER_DB", None)
    try:
        return subprocess.run(
            [sys.executable, "-m", "xtracker_server", *args, "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=30,  # it exits in about a second; still running means it started
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"xtracker {args[0]} started with a weak admin token") from None


WEAK_TOKENS = ["adm", "x" * 40, "0123456789" * 4, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcdefgh"]


@pytest.mark.parametrize("token", WEAK_TOKENS, ids=["short", "one-char", "repeated", "few-chars"])
def test_serve_refuses_a_weak_admin_token(tmp_path: Path, token: str) -> None:
    db = tmp_path / "x.db"
    proc = _exits(["serve", "--port", str(free_port())], db, token)
    assert proc.returncode == 2
    assert "XTRACKER_ADMIN_TOKEN" in proc.stderr and "openssl rand" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not db.exists()  # refused before anything was opened


def test_worker_refuses_a_weak_admin_token(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    cli_in_process(db, "space", "create", "one")
    proc = _exits(["worker"], db, "adm")
    assert proc.returncode == 2
    assert "XTRACKER_ADMIN_TOKEN is 3 characters" in proc.stderr


def _failures(send: Callable[[int], httpx.Response], count: int = 25) -> list[httpx.Response]:
    return [send(i) for i in range(count)]


def _throttled(responses: list[httpx.Response]) -> None:
    """The first 20 failures (the default budget) answer 401, the ones past it 429."""
    assert [r.status_code for r in responses[:20]] == [401] * 20
    last = responses[-1]
    assert last.status_code == 429
    body = last.json()
    assert body["ok"] is False and body["error"] == "rate_limited"
    assert "failed authentications from this address" in body["detail"]
    assert int(last.headers["Retry-After"]) >= 1


def test_failed_authentications_are_throttled_per_address_on_every_kind(
    start_app: ServerFactory,
) -> None:
    server = start_app("--trusted-proxies", "127.0.0.1")
    space = server.new_space("throttled")
    report = f"/admin/spaces/{space.id}/reports/funnel"
    with server.client() as http:

        def via(address: str) -> dict[str, str]:
            return {"X-Forwarded-For": address}

        # Bearer: bad secrets from one partner address, then that partner's valid one.
        a = via("203.0.113.1")

        def bad_bearer(i: int) -> httpx.Response:
            return http.post("/events", json=EVENT, headers={**a, **bearer(f"xt_sk_wrong{i}")})

        _throttled(_failures(bad_bearer))
        assert http.post("/events", json=EVENT, headers={**a, **space.auth}).status_code == 200
        assert http.get(report, headers={**a, **space.auth}).status_code == 200
        assert http.get(report, headers={**a, **bearer("xt_sk_bad")}).status_code == 429

        # Ingest token, from another address: its budget is its own.
        b = via("203.0.113.2")
        _throttled(_failures(lambda i: postback(http, f"xt_it_wrong{i}", f"t-{i}", **b)))
        assert postback(http, space.ingest_token, "ok-1", **b).status_code == 200
        r = http.get("/bind", params={"token": "xt_it_bad", "uid": "u", "tg_id": 1}, headers=b)
        assert r.status_code == 429

        # Admin token (and no credential at all), from a third address.
        c = via("203.0.113.3")

        def bad_admin(i: int) -> httpx.Response:
            return http.get("/admin/spaces", headers={**c, **bearer(f"xt_admin_wrong{i}")})

        _throttled(_failures(bad_admin))
        assert http.get("/admin/spaces", headers=c).status_code == 429
        assert http.get("/admin/spaces", headers={**c, **ADMIN}).status_code == 200

        # An address that has not failed is not affected.
        r = http.post("/events", json=EVENT, headers={**via("203.0.113.4"), **bearer("xt_sk_x")})
        assert r.status_code == 401


def test_a_forged_forwarded_for_does_not_escape_the_throttle(start_app: ServerFactory) -> None:
    server = start_app()  # no trusted proxy: X-Forwarded-For is not believed
    space = server.new_space("forged")
    with server.client() as http:

        def forged(i: int) -> httpx.Response:
            headers = {"X-Forwarded-For": f"198.51.100.{i}", **bearer(f"xt_sk_wrong{i}")}
            return http.post("/events", json=EVENT, headers=headers)

        _throttled(_failures(forged))
        assert http.post("/events", json=EVENT, headers=space.auth).status_code == 200


def test_named_ingest_tokens_each_work_are_logged_by_name_and_revoke_alone(
    server: Server,
) -> None:
    space = server.new_space("partners")
    sid = str(space.id)
    added = server.cli_json("token", "add", "--space", sid, "--name", "AdCombo")
    assert set(added) == {"space_id", "name", "ingest_token"} and added["name"] == "adcombo"
    adcombo = added["ingest_token"]
    path = f"/admin/spaces/{space.id}/tokens"
    with server.client() as http:
        r = http.post(path, json={"name": "leadbit"}, headers=ADMIN)
        assert r.status_code == 201 and r.json()["name"] == "leadbit"
        leadbit = r.json()["ingest_token"]
        assert leadbit.startswith("xt_it_") and leadbit != adcombo
        taken = http.post(path, json={"name": "leadbit"}, headers=ADMIN)
        assert taken.status_code == 409 and taken.json()["error"] == "token_name_taken"

        for token, eid in ((adcombo, "a-1"), (leadbit, "l-1"), (space.ingest_token, "d-1")):
            assert eventually(lambda t=token, e=eid: postback(http, t, e).status_code == 200)
        logged = http.get(f"/admin/spaces/{space.id}/postbacks", headers=ADMIN).json()["postbacks"]
        names = {row["eid"]: row["token_name"] for row in logged}
        assert names == {"a-1": "adcombo", "l-1": "leadbit", "d-1": "default"}
        cli_rows = server.cli_json("postback", "log", "--space", sid)
        assert {row["eid"]: row["token_name"] for row in cli_rows} == names
        assert "with token adcombo" in server.cli("postback", "log", "--space", sid).stdout

        listed = server.cli_json("token", "list", "--space", sid)
        assert [t["name"] for t in listed] == ["adcombo", "default", "leadbit"]
        assert {t["name"]: t["hint"][-4:] for t in listed} == {
            "adcombo": adcombo[-4:], "default": space.ingest_token[-4:], "leadbit": leadbit[-4:]
        }  # fmt: skip
        assert all(t["last_postback_ms"] and t["expires_ms"] is None for t in listed)
        human = server.cli("token", "list", "--space", sid).stdout
        api = http.get(path, headers=ADMIN)
        assert [t["name"] for t in api.json()["tokens"]] == ["adcombo", "default", "leadbit"]
        for secret in (adcombo, leadbit, space.ingest_token):
            assert secret not in human and secret not in api.text

        # Revoked with the CLI (another process): refused within the cache time; others go on.
        revoked = server.cli_json("token", "revoke", "--space", sid, "--name", "adcombo")
        assert revoked == {"space_id": space.id, "kind": "ingest", "name": "adcombo", "revoked": 1}
        assert eventually(lambda: postback(http, adcombo, "a-2").status_code == 401)
        assert postback(http, leadbit, "l-2").status_code == 200
        # Revoked through the admin API: refused at once.
        r = http.delete(f"{path}/leadbit", headers=ADMIN)
        assert r.status_code == 200 and r.json()["revoked"] == 1
        assert postback(http, leadbit, "l-3").status_code == 401
        assert postback(http, space.ingest_token, "d-2").status_code == 200
        assert http.delete(f"{path}/leadbit", headers=ADMIN).status_code == 404
        assert [t["name"] for t in http.get(path, headers=ADMIN).json()["tokens"]] == ["default"]
    proc = server.cli("token", "revoke", "--space", sid, "--name", "adcombo", check=False)
    assert proc.returncode == 1 and "no ingest token named 'adcombo'" in proc.stderr


def test_a_named_token_rotates_and_revokes_on_its_own(server: Server) -> None:
    space = server.new_space("rotate-named")
    path = f"/admin/spaces/{space.id}"
    with server.client() as http:
        old = http.post(f"{path}/tokens", json={"name": "kma"}, headers=ADMIN).json()
        rotated = http.post(
            f"{path}/rotate", json={"kind": "ingest", "name": "kma"}, headers=ADMIN
        ).json()
        assert rotated["name"] == "kma" and rotated["previous_valid_until_ms"]
        assert postback(http, old["ingest_token"], "k-1").status_code == 200  # grace period
        r = http.post(f"{path}/revoke", json={"kind": "ingest", "name": "kma"}, headers=ADMIN)
        assert r.json()["revoked"] == 1
        assert postback(http, old["ingest_token"], "k-2").status_code == 401
        assert postback(http, rotated["ingest_token"], "k-3").status_code == 200
        assert postback(http, space.ingest_token, "k-4").status_code == 200  # default untouched
        missing = http.post(
            f"{path}/rotate", json={"kind": "ingest", "name": "nope"}, headers=ADMIN
        )
        assert missing.status_code == 404 and "no ingest token named 'nope'" in missing.text
        named_bearer = http.post(f"{path}/revoke", json={"name": "kma"}, headers=ADMIN)
        assert named_bearer.status_code == 422 and named_bearer.json()["field"] == "name"
