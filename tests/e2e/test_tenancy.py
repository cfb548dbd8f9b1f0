"""Spaces never see each other's data: space B's credentials can neither write into nor read
anything of space A."""

from __future__ import annotations

import sqlite3

import httpx

from tests.conftest import ADMIN_TOKEN, Server


def snapshot(server: Server, space_id: int) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(server.db)
    try:
        out: list[tuple[object, ...]] = []
        for table in ("inbox", "binds", "clicks"):
            sql = f"SELECT * FROM {table} WHERE space_id = ? ORDER BY 1, 2"
            out += [(table, *r) for r in conn.execute(sql, (space_id,))]
        return out
    finally:
        conn.close()


def test_space_b_can_neither_write_into_nor_read_space_a(
    server: Server, http: httpx.Client
) -> None:
    a, b = server.new_space("tenant-a"), server.new_space("tenant-b")
    uid = http.post("/clicks", json={}, headers=a.auth).json()["uid"]
    assert http.post("/bind", json={"uid": uid, "tg_id": 111}, headers=a.auth).json()["matched"]
    deposit = {"uid": uid, "event": "deposit", "value": "50.00", "eid": "tx-a"}
    assert http.post("/events", json=deposit, headers=a.auth).json()["status"] == "queued"
    before = snapshot(server, a.id)

    # B's key with A's uid: A's click is invisible to B, and A's bind is not B's to conflict with.
    r = http.post("/bind", json={"uid": uid, "tg_id": 222}, headers=b.auth)
    assert r.status_code == 200 and r.json()["matched"] is False
    r = http.get("/bind", params={"token": b.ingest_token, "uid": uid, "tg_id": 333})
    assert r.status_code == 409  # B's own earlier bind of that uid string, not A's
    # A's event replayed with B's key is B's own event: not a duplicate of A's.
    assert http.post("/events", json=deposit, headers=b.auth).json()["status"] == "queued"
    r = http.get("/e", params={**deposit, "token": b.ingest_token})
    assert r.json()["status"] == "duplicate"  # of B's event above, not A's
    # B's tg_id-only event is not attributed through A's bind of user 111.
    r = http.post("/events", json={"event": "contact", "tg_id": 111}, headers=b.auth)
    assert r.json()["attributed"] is False
    # B's key on the admin API, and A's link slugs through B's key, get nothing.
    assert http.get("/admin/spaces", headers=b.auth).status_code == 401
    assert http.post("/clicks", json={"link_slug": "a-link"}, headers=b.auth).status_code == 422

    assert snapshot(server, a.id) == before
    b_rows = snapshot(server, b.id)
    assert any(row[0] == "inbox" for row in b_rows)
    assert all(row[0] != "clicks" for row in b_rows)


def test_a_link_of_space_a_cannot_be_clicked_through_space_b(server: Server) -> None:
    a, b = server.new_space("links-a"), server.new_space("links-b")
    server.cli(
        "link",
        "create",
        "--space",
        str(a.id),
        "--slug",
        "promo-a",
        "--kind",
        "bot",
        "--target",
        "a_offer_bot",
    )
    with server.client() as http:
        assert (
            http.post("/clicks", json={"link_slug": "promo-a"}, headers=a.auth).status_code == 200
        )
        r = http.post("/clicks", json={"link_slug": "promo-a"}, headers=b.auth)
    assert r.status_code == 422 and r.json()["field"] == "link_slug"


def test_admin_api_needs_the_admin_token(server: Server, http: httpx.Client) -> None:
    space = server.new_space("admin-check")
    assert http.get("/admin/spaces").status_code == 401
    for secret in (space.bearer, space.ingest_token, "xt_admin_wrong"):
        r = http.get("/admin/spaces", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 401
    r = http.get("/admin/spaces", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200
    assert space.id in [s["id"] for s in r.json()["spaces"]]
    assert "bearer" not in r.text and space.bearer not in r.text


def test_token_and_key_calls_on_space_a_never_touch_space_b(
    server: Server, http: httpx.Client
) -> None:
    a, b = server.new_space("tokens-a"), server.new_space("tokens-b")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    b_adcombo = http.post(f"/admin/spaces/{b.id}/tokens", json={"name": "adcombo"},
                          headers=admin).json()["ingest_token"]  # fmt: skip
    http.post(f"/admin/spaces/{a.id}/tokens", json={"name": "adcombo"}, headers=admin)
    http.post(f"/admin/spaces/{b.id}/rotate", headers=admin)  # B's old bearer: in its grace
    http.post(f"/admin/spaces/{b.id}/rotate", json={"kind": "ingest"}, headers=admin)

    # Everything A can revoke, revoked on A: tokens of the same names, keys of the same kinds.
    assert http.delete(f"/admin/spaces/{a.id}/tokens/adcombo", headers=admin).status_code == 200
    for kind in ("bearer", "ingest"):
        r = http.post(f"/admin/spaces/{a.id}/revoke", json={"kind": kind}, headers=admin)
        assert r.json()["revoked"] == 0
    server.cli("token", "revoke", "--space", str(a.id), "--name", "default")
    assert server.cli_json("key", "revoke", "--space", str(a.id))["revoked"] == 0
    assert server.cli_json("token", "list", "--space", str(a.id)) == []

    # Space credentials reach no token or key endpoint, of their own space or another.
    for secret in (a.bearer, b.bearer, b.ingest_token):
        auth = {"Authorization": f"Bearer {secret}"}
        assert http.get(f"/admin/spaces/{b.id}/tokens", headers=auth).status_code == 401
        assert http.delete(f"/admin/spaces/{b.id}/tokens/adcombo", headers=auth).status_code == 401
        assert http.post(f"/admin/spaces/{b.id}/revoke", headers=auth).status_code == 401

    # B's tokens, its rotated-out ingest token and bearer all still work.
    for token, eid in ((b_adcombo, "b-1"), (b.ingest_token, "b-2")):
        r = http.get("/e", params={"token": token, "uid": "x", "event": "contact", "eid": eid})
        assert r.status_code == 200
    assert http.post("/events", json={"uid": "x", "event": "contact"}, headers=b.auth).is_success
    names = [t["name"] for t in server.cli_json("token", "list", "--space", str(b.id))]
    assert names == ["adcombo", "default", "default"]  # default: the current one and the old
