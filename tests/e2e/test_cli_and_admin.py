"""The ``xtracker`` command and the admin API, against a running server on the same file. The
commands run in this process (``cli_in_process``: the real command, by Typer's runner); what a
command's own process shows is in tests/server/test_cli_imports.py."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN, TLS_VERIFY, Server, ServerFactory
from tests.inprocess import cli_in_process

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def eventually(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it returns a truthy value: the server sees a CLI change within its
    credential cache time (2 s), and there is no event to wait on across processes."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_space_create_json_shape_and_secrets_stored_only_hashed(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    data = json.loads(cli_in_process(db, "space", "create", "demo", "--json").stdout)
    assert set(data) == {"id", "name", "bearer", "ingest_token"}
    assert data["name"] == "demo"
    assert data["bearer"].startswith("xt_sk_") and data["ingest_token"].startswith("xt_it_")
    assert len(data["bearer"]) - len("xt_sk_") >= 22  # at least 128 random bits, base64url
    raw = db.read_bytes() + (
        db.with_name("x.db-wal").read_bytes() if db.with_name("x.db-wal").exists() else b""
    )
    assert data["bearer"].encode() not in raw
    assert data["ingest_token"].encode() not in raw


def test_space_list_json(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    cli_in_process(db, "space", "create", "one")
    cli_in_process(db, "space", "create", "two")
    listed = json.loads(cli_in_process(db, "space", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["one", "two"]
    assert all("bearer" not in s for s in listed)
    human = cli_in_process(db, "space", "list").stdout
    assert "one" in human and "two" in human


def test_first_serve_prints_a_generated_admin_token_once(start_server: ServerFactory) -> None:
    # `serve` prints the token before its app starts: its writer on a thread and no delivery
    # worker spare each start two more processes.
    fewer = {"XTRACKER_WRITER_PROCESS": "off"}
    server = start_server("--no-worker", XTRACKER_ADMIN_TOKEN="", **fewer)
    text = server.log_text()
    token = next(w for w in text.split() if w.startswith("xt_admin_"))
    assert f"http://127.0.0.1:{server.port}" in text
    with server.client() as http:
        auth = {"Authorization": f"Bearer {token}"}
        assert http.get("/admin/spaces", headers=auth).status_code == 200
    server.stop()
    again = start_server("--no-worker", XTRACKER_ADMIN_TOKEN="", db=server.db, **fewer)
    assert "xt_admin_" not in again.log_text()
    with again.client() as http:
        assert http.get("/admin/spaces", headers=auth).status_code == 200


def test_key_rotate_keeps_the_old_bearer_for_24_hours(server: Server) -> None:
    space = server.new_space("rotating")
    rotated = server.cli_json("key", "rotate", "--space", str(space.id))
    assert set(rotated) == {"space_id", "bearer", "previous_valid_until_ms"}
    grace = rotated["previous_valid_until_ms"] - int(time.time() * 1000)
    assert 23.9 * 3600_000 < grace <= 24 * 3600_000
    new = {"Authorization": f"Bearer {rotated['bearer']}"}
    body = {"uid": "rot", "event": "contact"}
    with server.client() as http:
        assert eventually(lambda: http.post("/events", json=body, headers=new).status_code == 200)
        assert http.post("/events", json=body, headers=space.auth).status_code == 200


def test_expired_rotated_key_is_refused(server: Server) -> None:
    space = server.new_space("expiring")
    server.cli_json("key", "rotate", "--space", str(space.id), "--ingest")
    conn = sqlite3.connect(server.db)
    with conn:  # fast-forward the 24 hours of grace
        conn.execute(
            "UPDATE credentials SET expires_ms = 1 WHERE space_id = ? AND expires_ms IS NOT NULL",
            (space.id,),
        )
    conn.close()
    params = {"token": space.ingest_token, "uid": "x", "event": "contact"}
    with server.client() as http:
        assert eventually(lambda: http.get("/e", params=params).status_code == 401)
        # The bearer was not rotated and still works.
        r = http.post("/events", json={"uid": "x", "event": "contact"}, headers=space.auth)
        assert r.status_code == 200


def test_key_rotate_for_an_unknown_space_fails_clearly(tmp_path: Path) -> None:
    cli_in_process(tmp_path / "x.db", "space", "create", "only")
    proc = cli_in_process(tmp_path / "x.db", "key", "rotate", "--space", "99", check=False)
    assert proc.returncode == 1
    assert "no space 99" in proc.stderr


def test_a_mistyped_db_path_is_an_error_not_an_empty_database(tmp_path: Path) -> None:
    proc = cli_in_process(tmp_path / "typo.db", "space", "list", check=False)
    assert proc.returncode == 1
    assert "no database at" in proc.stderr
    assert not (tmp_path / "typo.db").exists()


def test_a_database_from_a_newer_version_is_a_clean_error(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    cli_in_process(db, "space", "create", "one")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    proc = cli_in_process(db, "space", "list", check=False)
    assert proc.returncode == 1
    assert "upgrade xtracker" in proc.stderr and "Traceback" not in proc.stderr


def test_a_file_that_is_not_a_database_is_a_clean_error(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_bytes(b"not a database at all" * 100)
    proc = cli_in_process(db, "space", "list", check=False)
    assert proc.returncode == 1
    assert f"cannot open {db}: file is not a database" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_admin_api_creates_spaces_and_rotates_keys(server: Server) -> None:
    with server.client() as http:
        r = http.post("/admin/spaces", json={"name": "  via api "}, headers=ADMIN)
        assert r.status_code == 201
        created = r.json()
        assert created["name"] == "via api"
        auth = {"Authorization": f"Bearer {created['bearer']}"}
        assert http.post("/events", json={"uid": "a", "event": "contact"}, headers=auth).is_success

        r = http.post(
            f"/admin/spaces/{created['id']}/rotate", json={"kind": "ingest"}, headers=ADMIN
        )
        assert r.status_code == 200 and r.json()["ingest_token"].startswith("xt_it_")
        params = {"token": r.json()["ingest_token"], "uid": "a", "event": "subscribed"}
        assert http.get("/e", params=params).status_code == 200

        assert http.post("/admin/spaces/9999/rotate", json={}, headers=ADMIN).status_code == 404
        # No body: the default kind (bearer) is rotated.
        r = http.post(f"/admin/spaces/{created['id']}/rotate", headers=ADMIN)
        assert r.status_code == 200 and r.json()["bearer"].startswith("xt_sk_")
        r = http.post("/admin/spaces", json={"name": ""}, headers=ADMIN)
        assert r.status_code == 422 and r.json()["field"] == "name"
        r = http.post(f"/admin/spaces/{created['id']}/rotate", json={"kind": "root"}, headers=ADMIN)
        assert r.status_code == 422


def test_cli_and_server_write_the_same_file_at_once(server: Server) -> None:
    """The CLI's writes wait for the server's transactions (busy timeout), never fail."""
    space = server.new_space("busy")
    statuses: list[int] = []

    def load() -> None:
        with httpx.Client(verify=TLS_VERIFY, base_url=server.url) as http:
            for i in range(300):
                r = http.post(
                    "/events",
                    json={"uid": "b", "event": "contact", "eid": str(i)},
                    headers=space.auth,
                )
                statuses.append(r.status_code)

    loader = threading.Thread(target=load)
    loader.start()
    for i in range(4):
        server.cli("space", "create", f"busy-{i}")
    loader.join()
    assert statuses == [200] * 300
    names = [s["name"] for s in server.cli_json("space", "list")]
    assert {"busy-0", "busy-1", "busy-2", "busy-3"} <= set(names)


def test_an_id_beyond_sqlite_integers_is_not_found_not_a_server_error(server: Server) -> None:
    """Found by schemathesis: a 20-digit id reached SQLite, which cannot hold it (500)."""
    huge = 2**70
    space = server.new_space("huge-ids")
    with server.client() as http:
        for method, path in [
            ("GET", f"/admin/spaces/{huge}/links"),
            ("POST", f"/admin/spaces/{huge}/rotate"),
            ("GET", f"/admin/spaces/{huge}/reports/funnel"),
            ("PATCH", f"/admin/spaces/{space.id}/destinations/{huge}"),
        ]:
            r = http.request(method, path, headers=ADMIN, json={})
            assert (r.status_code, r.json()["error"]) == (404, "not_found"), (path, r.text)
        r = http.get(f"/admin/spaces/{space.id}/outbox?destination={huge}", headers=ADMIN)
        assert (r.status_code, r.json()["field"]) == (422, "destination"), r.text
