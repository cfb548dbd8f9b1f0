"""The contract at ``GET /openapi.json``: a valid OpenAPI 3.1 document that names every route of
the app, and whose schemas hold for real answers of a running server, successes and errors of
every operation."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema_rs
import pytest
from starlette.routing import Route

from tests.conftest import (
    ADMIN_TOKEN,
    FAST_RETRY,
    TLS_VERIFY,
    AppServer,
    Server,
    ServerFactory,
    SpaceKeys,
)
from tests.databases import migrated
from tests.sink import Sink
from xtracker_server.app import create_app
from xtracker_server.config import Settings
from xtracker_server.openapi import OPERATIONS, Operation

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
METRICS_TOKEN = "xt-metrics-" + "m" * 24


@dataclass
class World:
    """A server with a little of everything: two spaces, a link, a webhook to a local sink,
    a click, a bind, a delivered deposit, a postback and its repeat with another amount; the
    other space takes no token binds and has an ingest token named "doomed". What the deletion
    calls delete is made for them: a third space ``doomed``, and in the other space the link
    "gone" and the destination ``doomed_destination_id``; the erasure erases "u-erase"."""

    server: Server
    space: SpaceKeys
    other: SpaceKeys
    slug: str
    destination_id: int
    doomed: SpaceKeys
    doomed_destination_id: int
    document: dict[str, Any]
    http: httpx.Client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sink = Sink()
    server = AppServer(
        db=migrated(tmp_path_factory.mktemp("openapi") / "xtracker.db"),
        extra_args=(
            *FAST_RETRY,
            "--fb-graph-url", sink.url,
            # many calls here fail authentication on purpose: no throttle on this address
            "--auth-failures-per-minute", "0",
            "--stream-max-per-credential", "1",  # a second stream shows the cap's 429
            "--metrics-token", METRICS_TOKEN,
        ),
    )  # fmt: skip
    server.start()
    space, other = server.new_space("contract"), server.new_space("other")
    doomed_space = server.new_space("doomed")
    with server.client() as http:
        link = {"slug": "contract", "kind": "bot", "target": "contract_bot"}
        assert http.post(f"/admin/spaces/{space.id}/links", json=link, headers=ADMIN).is_success
        hook = {"kind": "webhook", "url": f"{sink.url}/hook"}
        made = http.post(f"/admin/spaces/{space.id}/destinations", json=hook, headers=ADMIN)
        uid = http.get("/r/contract").headers["location"].rsplit("_", 1)[1]
        http.post("/bind", json={"uid": uid, "tg_id": 42}, headers=space.auth)
        deposit = {"event": "deposit", "uid": uid, "value": "9.90", "eid": "dep-1"}
        assert http.post("/events", json=deposit, headers=space.auth).is_success
        for amount in ("5", "6"):  # the repeat names another amount: a conflict
            http.get("/e", params={"token": space.ingest_token, "status": "ftd", "cid": uid,
                                   "sumdep": amount, "eid": "pb-1"})  # fmt: skip
        off = {"token_binds": False}
        r = http.patch(f"/admin/spaces/{other.id}/token-binds", json=off, headers=ADMIN)
        assert r.is_success, r.text
        doomed = {"name": "doomed"}
        r = http.post(f"/admin/spaces/{other.id}/tokens", json=doomed, headers=ADMIN)
        assert r.is_success, r.text
        gone = {"slug": "gone", "kind": "bot", "target": "gone_bot"}
        assert http.post(f"/admin/spaces/{other.id}/links", json=gone, headers=ADMIN).is_success
        http.get("/r/gone")  # a click that stays without its link
        ending = http.post(f"/admin/spaces/{other.id}/destinations", json=hook, headers=ADMIN)
        assert ending.is_success, ending.text
        erased = {"event": "contact", "uid": "u-erase", "eid": "erase-1"}
        assert http.post("/events", json=erased, headers=space.auth).is_success
        bind = {"uid": "u-erase", "tg_id": 4242}
        assert http.post("/bind", json=bind, headers=space.auth).is_success
        doomed_cost = {"day": "2026-11-02", "level": "ad", "id": "doomed-ad", "amount": "1",
                       "currency": "USD"}  # fmt: skip
        r = http.post(f"/admin/spaces/{space.id}/costs", json={"costs": [doomed_cost]},
                      headers=ADMIN)  # fmt: skip
        assert r.is_success, r.text
        sink.wait_for(1)
        document = http.get("/openapi.json").json()
    with server.client() as http:
        yield World(
            server, space, other, "contract", made.json()["id"], doomed_space, ending.json()["id"],
            document, http,
        )  # fmt: skip
    server.stop()
    sink.close()


# --- the document itself -------------------------------------------------------------------


def test_the_document_is_served_without_a_credential(world: World) -> None:
    answer = world.http.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["servers"] == [{"url": world.server.url}]


def test_the_document_is_valid_openapi_3_1(world: World) -> None:
    # The OpenAPI 3.1 meta-schema that schemathesis carries (imported here: schemathesis is a
    # second of CPU to import, and every xdist worker collects this module).
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    document = world.document
    assert document["openapi"].startswith("3.1.")
    errors = [str(e) for e in jsonschema_rs.Draft202012Validator(OPENAPI_31).iter_errors(document)]
    assert errors == []
    for where, schema in _schemas_in(document):
        assert jsonschema_rs.meta.is_valid(schema), where
        _validator(document, where)  # every $ref resolves


def _schemas_in(node: Any, where: str = "#") -> Iterator[tuple[str, Any]]:
    """Every Schema Object of the document, with its JSON pointer."""
    if isinstance(node, dict):
        for key, value in node.items():
            pointer = f"{where}/{key.replace('~', '~0').replace('/', '~1')}"
            if key == "schema" and isinstance(value, dict):
                yield pointer, value
            elif where == "#/components" and key == "schemas":
                yield from ((f"{pointer}/{n}", s) for n, s in value.items())
            else:
                yield from _schemas_in(value, pointer)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schemas_in(value, f"{where}/{i}")


#: Where the document is registered for its validators (any URI: nothing is fetched).
DOCUMENT_URI = "urn:xtracker:openapi"
_REGISTRIES: dict[int, tuple[dict[str, Any], jsonschema_rs.Registry]] = {}


def _validator(document: dict[str, Any], pointer: str) -> jsonschema_rs.Validator:
    """A validator for the schema at ``pointer``, its references resolved in the document.
    The document is registered once (a validator of the whole document with a ``$ref`` cost
    about 8 ms to build, for each of some 300 schemas and each call)."""
    held = _REGISTRIES.get(id(document))
    if held is None or held[0] is not document:
        held = _REGISTRIES[id(document)] = (
            document,
            jsonschema_rs.Registry([(DOCUMENT_URI, document)]),
        )
    ref = {"$ref": DOCUMENT_URI + quote(pointer, safe="#/~")}
    return jsonschema_rs.Draft202012Validator(ref, registry=held[1])


def _routes() -> set[tuple[str, str]]:
    app = create_app(Settings(db="never-opened.db"))  # the store opens at start-up only
    found: set[tuple[str, str]] = set()
    for route in app.app.routes:
        assert isinstance(route, Route), f"{route!r}: the test reads only Route; extend it"
        # Starlette answers HEAD wherever it answers GET; HEAD is documented where it differs.
        methods = route.methods or set()
        found |= {(m, route.path) for m in methods if m != "HEAD" or "GET" not in methods}
    return found


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}


def test_every_route_of_the_app_is_documented(world: World) -> None:
    missing = _routes() - _documented(world.document)
    assert missing == set(), "add an Operation to its area's OPERATIONS in xtracker_server/openapi/"


def test_every_documented_operation_is_a_route(world: World) -> None:
    routes = _routes()
    heads = {("HEAD", p) for m, p in routes if m == "GET"}
    assert _documented(world.document) - routes - heads == set()


# --- real answers against the document -----------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request of an operation and the status it must get. ``auth``: whose credential
    (``None``: none). ``path``: path parameters other than the world's. ``hold``: the same
    request is made this many times first, and those answers are kept open during the call
    (streams that fill a cap)."""

    status: int
    auth: str | None = "own"
    path: dict[str, object] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    json: object = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: int = 0


def deposit(eid: str) -> dict[str, object]:
    return {"event": "deposit", "uid": "u-contract", "value": "1.00", "eid": eid}


CALLS: dict[str, list[Call]] = {
    "post_events": [
        Call(200, json=deposit("c-1")),
        Call(200, json={**deposit("c-1"), "value": "7.00"}),  # a duplicate with a conflict
        Call(200, json={"event": "contact", "uid": "u-contract", "value": "1"}),  # warnings
        Call(400, content=b'{"event":'),
        Call(400, json={"event": "deposit", "uid": "u-contract", "eid": "{transaction_id}"}),
        Call(401, auth=None, json=deposit("c-2")),
        Call(413, content=b'{"eid":"' + b"x" * 70_000 + b'"}'),
        Call(422, json={"event": "purchase"}),
    ],
    "post_events_batch": [
        Call(200, json={"events": [deposit("b-1"), {**deposit("b-1"), "value": "7.00"}]}),
        Call(200, json={"events": [{"event": "purchase"}, "x", deposit("{tid}")]}),  # refused
        Call(400, content=b'{"events":'),
        Call(401, auth=None, json={"events": [deposit("b-2")]}),
        Call(413, json={"events": [deposit("b-3")] * 501}),
        Call(422, json={"events": []}),
    ],
    "get_e": [
        Call(200, params={"event": "deposit", "uid": "u-contract", "value": "2", "eid": "e-1"}),
        Call(200, params={"event": "deposit", "uid": "u-contract", "value": "3", "eid": "e-1"}),
        Call(200, params={"status": "withdrawal", "uid": "u-contract"}),  # ignored
        Call(400, params={"event": "deposit", "uid": "u-contract", "tid": "%7Btid%7D"}),
        Call(401, auth=None, params={"event": "contact"}),
        Call(422, params={"event": "chargeback"}),
    ],
    "post_e": [
        Call(
            200,
            content=b"event=registration&uid=u-contract&eid=p-1",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        Call(200, json={"event": "ftd", "uid": "u-contract", "value": 3, "eid": "p-2"}),
        Call(400, content=b"{not json", headers={"content-type": "application/json"}),
        Call(400, json={"event": "ftd", "uid": "[sub1]"}),
        Call(401, auth=None, content=b"event=registration"),
        Call(413, content=b"x" * 70_000),
        Call(422, json={"event": "deposit", "value": "-1"}),
    ],
    "post_bind": [
        Call(200, json={"uid": "u-bind", "tg_id": 7}),
        Call(200, json={"uid": "u-bind", "tg_id": 7}),  # unchanged
        Call(400, content=b"[]"),
        Call(400, json={"uid": "{uid}", "tg_id": 7}),
        Call(401, auth=None, json={"uid": "u-bind", "tg_id": 7}),
        Call(409, json={"uid": "u-bind", "tg_id": 8}),
        Call(413, content=b" " * 70_000),
        Call(422, json={"uid": "u-bind"}),
    ],
    "get_bind": [
        Call(200, params={"uid": "u-bind-2", "tg_id": "9"}),
        Call(200, params={"uid": "u-bind-2", "tg_id": "9"}),  # unchanged
        Call(200, params={"uid": "u-token", "tg_id": "42"}),  # ignored: the bot bound 42
        Call(400, params={"uid": "[sub1]", "tg_id": "9"}),
        Call(401, auth=None, params={"uid": "u-bind-2", "tg_id": "9"}),
        Call(403, auth="other_ingest", params={"uid": "u-bind-4", "tg_id": "11"}),
        Call(409, params={"uid": "u-bind-2", "tg_id": "10"}),
        Call(422, params={"uid": "u-bind-3", "tg_id": "0"}),
    ],
    "post_clicks": [
        Call(200, json={"link_slug": "contract", "fbclid": "IwAR1"}),
        Call(400, content=b""),
        Call(401, auth=None, json={}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"link_slug": "nope"}),
    ],
    "healthz": [Call(200, auth=None)],
    "livez": [Call(200, auth=None)],
    "metrics": [
        Call(200),
        Call(200, auth="metrics"),
        Call(200, headers={"accept": "application/openmetrics-text; version=1.0.0"}),
        Call(401, auth=None),
        Call(401, auth="own_space"),
    ],
    "openapi": [Call(200, auth=None)],
    "get_landing": [
        Call(200, auth=None),
        Call(404, auth=None, path={"slug": "nope"}),
        Call(404, auth=None, path={"slug": "a/b"}),  # not a slug: the error shape
    ],
    "head_landing": [Call(200, auth=None), Call(404, auth=None, path={"slug": "nope"})],
    "get_redirect": [Call(302, auth=None), Call(404, auth=None, path={"slug": "nope"})],
    "head_redirect": [Call(302, auth=None), Call(404, auth=None, path={"slug": "nope"})],
    "list_spaces": [Call(200), Call(401, auth="own_space")],
    "create_space": [
        Call(201, json={"name": "made"}),
        Call(400, content=b"nope"),
        Call(401, auth=None, json={"name": "x"}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"name": ""}),
    ],
    "rotate_key": [
        Call(200),
        Call(200, json={"kind": "ingest"}, path={"space_id": "other"}),
        Call(400, content=b"{"),
        Call(401, auth=None),
        Call(404, path={"space_id": 999}),
        Call(404, path={"space_id": 2**70}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"kind": "admin"}),
    ],
    "revoke_key": [  # on the other space: the world's own secrets stay as they are
        Call(200, path={"space_id": "other"}),
        Call(200, path={"space_id": "other"}, json={"kind": "ingest", "name": "doomed"}),
        Call(400, content=b"{"),
        Call(401, auth=None),
        Call(404, path={"space_id": 999}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"name": "default"}),  # a name without "kind": "ingest"
    ],
    "get_token_binds": [Call(200), Call(401, auth=None), Call(404, path={"space_id": 999})],
    "set_token_binds": [
        Call(200, json={"token_binds": True}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={"token_binds": True}),
        Call(404, path={"space_id": 999}, json={"token_binds": True}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"token_binds": "off"}),
    ],
    "list_tokens": [Call(200), Call(401, auth=None), Call(404, path={"space_id": 999})],
    "add_token": [
        Call(201, json={"name": "AdCombo"}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={"name": "x"}),
        Call(404, path={"space_id": 999}, json={"name": "x"}),
        Call(409, json={"name": "default"}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"name": "no spaces"}),
    ],
    "revoke_token": [
        Call(200, path={"space_id": "other"}),
        Call(401, auth=None),
        Call(404, path={"name": "nope"}),
        Call(404, path={"space_id": 999}),
    ],
    "get_currencies": [Call(200), Call(401, auth=None), Call(404, path={"space_id": 999})],
    "put_currencies": [
        Call(200, json={"allowed": []}),
        Call(200, json={"allowed": ["gems", "PTS"]}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={"allowed": []}),
        Call(404, path={"space_id": 999}, json={"allowed": []}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"allowed": ["G"]}),
        Call(422, json={"allowed": "GEMS"}),
    ],
    "get_sub_ids": [Call(200), Call(401, auth=None), Call(404, path={"space_id": 999})],
    "put_sub_ids": [
        Call(200, json={"params": ["sub1", "creative"]}),
        Call(200, json={"params": []}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={"params": []}),
        Call(404, path={"space_id": 999}, json={"params": []}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"params": ["utm_source"]}),
        Call(422, json={"params": "sub1"}),
    ],
    "list_links": [Call(200), Call(401, auth=None), Call(404, path={"space_id": 999})],
    "create_link": [
        Call(201, json={"slug": "made", "kind": "web", "target": "https://x.example/?c={uid}"}),
        Call(400, content=b"1"),
        Call(401, auth=None, json={}),
        Call(404, path={"space_id": 999}, json={}),
        Call(409, json={"slug": "contract", "kind": "bot", "target": "contract_bot"}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"slug": "Bad_Slug", "kind": "bot", "target": "b"}),
    ],
    "update_link": [
        Call(200, json={"title": "Contract"}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={}),
        Call(404, path={"slug": "nope"}, json={"title": "x"}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"slug": "other"}),
    ],
    # Each deletion deletes what the world made for it (World), whatever the order of the tests.
    "delete_link": [
        Call(200, path={"space_id": "other", "slug": "gone"}, params={"dry_run": "1"}),
        Call(401, auth=None, path={"space_id": "other", "slug": "gone"}),
        Call(401, auth="own_space", path={"space_id": "other", "slug": "gone"}),
        Call(422, path={"space_id": "other", "slug": "gone"}, params={"dry_run": "maybe"}),
        Call(200, path={"space_id": "other", "slug": "gone"}),
        Call(404, path={"space_id": "other", "slug": "gone"}),  # deleted
        Call(404, path={"space_id": "other"}),  # the world's link is in another space
        Call(404, path={"space_id": 999, "slug": "gone"}),
    ],
    "delete_space": [
        Call(200, path={"space_id": "doomed"}, params={"dry_run": "true"}),
        Call(401, auth=None, path={"space_id": "doomed"}),
        Call(401, auth="own_space", path={"space_id": "doomed"}),
        Call(422, path={"space_id": "doomed"}, params={"dry_run": "2"}),
        Call(200, path={"space_id": "doomed"}),
        Call(404, path={"space_id": "doomed"}),  # deleted
        Call(404, path={"space_id": 2**70}),
        Call(404, path={"space_id": "\u00b2"}),
    ],
    "erase": [
        Call(200, json={"uid": "u-erase", "dry_run": True}),
        Call(200, json={"uid": "u-erase"}),
        Call(200, json={"tg_id": "4242"}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={"uid": "u-erase"}),
        Call(404, path={"space_id": 999}, json={"uid": "u-erase"}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={}),
        Call(422, json={"uid": "u-erase", "tg_id": 4242}),
        Call(422, json={"uid": "u-erase", "dry_run": "yes"}),
    ],
    "list_destinations": [Call(200), Call(401, auth=None), Call(404, path={"space_id": 999})],
    "create_destination": [
        Call(201, json={"kind": "s2s_postback", "url_template": "http://127.0.0.1:9/pb?c={uid}"}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={}),
        Call(404, path={"space_id": 999}, json={}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"kind": "webhook", "url": "ftp://x"}),
    ],
    "update_destination": [
        Call(200, json={"name": "renamed", "event_map": {"contact": ""}}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={}),
        Call(404, path={"destination_id": 999}, json={"name": "x"}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"url": "http://y"}),
    ],
    "delete_destination": [
        Call(200, path={"space_id": "other", "destination_id": "doomed"}, params={"dry_run": "1"}),
        Call(401, auth=None, path={"space_id": "other", "destination_id": "doomed"}),
        Call(422, path={"space_id": "other", "destination_id": "doomed"}, params={"dry_run": "x"}),
        Call(200, path={"space_id": "other", "destination_id": "doomed"}),
        Call(404, path={"space_id": "other", "destination_id": "doomed"}),  # deleted
        Call(404, path={"space_id": "other"}),  # the world's webhook is in another space
        Call(404, path={"space_id": "other", "destination_id": 2**70}),
        Call(404, path={"space_id": "other", "destination_id": "\u00b2"}),
    ],
    "test_destination": [
        Call(200),
        Call(400, content=b"[1]"),
        Call(401, auth=None),
        Call(404, path={"destination_id": 2**70}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"live": "yes"}),
    ],
    "list_outbox": [
        Call(200),
        Call(200, params={"status": "sent", "limit": "5"}),
        Call(401, auth=None),
        Call(404, path={"space_id": 999}),
        Call(422, params={"status": "lost"}),
        Call(422, params={"destination": str(2**70)}),
    ],
    "replay_outbox": [
        Call(200),
        Call(200, json={"status": "sent"}),
        Call(400, content=b"{"),
        Call(401, auth=None),
        Call(404, path={"space_id": 999}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"destination_id": "x"}),
    ],
    "list_postbacks": [
        Call(200),
        Call(200, params={"outcome": "ignored"}),
        Call(401, auth=None),
        Call(404, path={"space_id": 999}),
        Call(422, params={"limit": "0"}),
        Call(200, params={"format": "csv", "limit": "all"}),
        Call(200, headers={"accept": "text/csv"}),
        Call(422, params={"format": "xml"}),
    ],
    "get_aliases": [Call(200), Call(401, auth=None), Call(404, path={"space_id": 999})],
    "change_aliases": [
        Call(200, json={"statuses": {"qualified": "registration", "conf": None}}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={}),
        Call(404, path={"space_id": 999}, json={}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"statuses": {"deposit": "ignore"}}),
    ],
    "make_urls": [
        Call(200, json={"network": "quotex"}),
        Call(200, json={"network": "keitaro", "event": "deposit", "rotate": True}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={}),
        Call(404, path={"space_id": 999}, json={}),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"network": "nope"}),
    ],
    "report_funnel": [
        Call(200),
        Call(200, auth="own_space", params={"link": "contract", "days": "3", "tz": "Asia/Tokyo"}),
        Call(401, auth=None),
        Call(403, auth="other_space"),
        Call(404, path={"space_id": 999}),
        Call(422, params={"from": "2025-02-01", "to": "2025-01-01"}),
        Call(200, params={"format": "csv"}),
        Call(200, headers={"accept": "text/csv"}),
        Call(422, params={"format": "xml"}),
    ],
    "report_links": [
        Call(200),
        Call(200, params={"sort": "revenue", "desc": "false", "currency": "USD"}),
        Call(401, auth=None),
        Call(403, auth="other_space"),
        Call(404, path={"space_id": 999}),
        Call(422, params={"sort": "nope"}),
        Call(200, params={"format": "CSV"}),
    ],
    "report_series": [
        Call(200, params={"metric": "click", "bucket": "hour", "days": "1"}),
        Call(200, params={"metric": "revenue", "currency": "USD"}),
        Call(401, auth=None, params={"metric": "click"}),
        Call(403, auth="other_space", params={"metric": "click"}),
        Call(404, path={"space_id": 999}, params={"metric": "click"}),
        Call(422, params={"metric": "nope"}),
        Call(200, params={"metric": "click", "format": "csv"}),
        Call(200, params={"metric": "revenue"}, headers={"accept": "text/csv, */*;q=0.5"}),
        Call(422, params={"metric": "click", "format": "xml"}),
    ],
    "report_groups": [
        Call(200),
        Call(200, params={"by": "campaign,ad", "currency": "USD", "sort": "profit", "days": "30"}),
        Call(
            200,
            auth="own_space",
            params={
                "by": "country",
                "mode": "activity",
                "limit": "5",
                "filter": "country=-US",
                "tz": "Asia/Kolkata",
            },
        ),
        Call(200, params={"by": "day", "format": "csv"}),
        Call(401, auth=None),
        Call(403, auth="other_space"),
        Call(404, path={"space_id": 999}),
        Call(422, params={"by": "nope"}),
        Call(422, params={"limit": "many"}),
    ],
    "report_deliveries": [
        Call(200),
        Call(200, auth="own_space"),
        Call(401, auth=None),
        Call(403, auth="other_space"),
        Call(404, path={"space_id": 999}),
        Call(200, auth="own_space", headers={"accept": "text/csv"}),
        Call(422, params={"format": "xml"}),
    ],
    "list_costs": [
        Call(200),
        Call(200, auth="own_space", params={"from": "2026-11-01", "level": "ad"}),
        Call(401, auth=None),
        Call(403, auth="other_space"),
        Call(404, path={"space_id": 999}),
        Call(422, params={"level": "account"}),
    ],
    "set_costs": [
        Call(
            200,
            json={
                "costs": [
                    {
                        "day": "2026-11-01",
                        "level": "link",
                        "id": "contract",
                        "amount": "12.50",
                        "currency": "EUR",
                        "name": "n",
                    }
                ]
            },
        ),
        Call(400, content=b"{"),
        Call(401, auth=None, json={"costs": []}),
        Call(404, path={"space_id": 999}, json={"costs": []}),
        Call(413, content=b"{}" + b" " * 300_000),
        Call(
            422,
            json={
                "costs": [
                    {
                        "day": "2026-11-01",
                        "level": "ad",
                        "id": "1",
                        "amount": "-3",
                        "currency": "EUR",
                    }
                ]
            },
        ),
    ],
    "delete_cost": [
        Call(200, params={"day": "2026-11-02", "level": "ad", "id": "doomed-ad"}),
        Call(401, auth=None, params={"day": "2026-11-02", "level": "ad", "id": "x"}),
        Call(404, params={"day": "2026-11-02", "level": "ad", "id": "never"}),
        Call(422, params={"day": "2026-11-02"}),
    ],
    "import_costs": [
        Call(
            200,
            content=b"Day,Ad ID,Amount spent (USD)\n2026-11-02,doomed-ad,1.00\n",
            headers={"content-type": "text/csv"},
        ),
        Call(400, content=b"Day,Ad ID,Amount spent (USD)\n\xff\n"),
        Call(401, auth=None, content=b"x"),
        Call(404, path={"space_id": 999}, content=b"x"),
        Call(422, content=b"Day,Ad ID,Amount spent (USD)\n2026-11-02,a,1,00\n2026-11-02,b,x\n"),
    ],
    "list_rates": [
        Call(200),
        Call(200, auth="own_space"),
        Call(401, auth=None),
        Call(403, auth="other_space"),
        Call(404, path={"space_id": 999}),
    ],
    "set_rate": [
        Call(200, json={"from": "EUR", "to": "USD", "day": "2026-11-01", "rate": "1.08"}),
        Call(400, content=b"{"),
        Call(401, auth=None, json={}),
        Call(
            404,
            path={"space_id": 999},
            json={"from": "EUR", "to": "USD", "day": "2026-11-01", "rate": "1.08"},
        ),
        Call(413, content=b"{}" + b" " * 70_000),
        Call(422, json={"from": "EUR", "to": "USD", "day": "2026-11-01", "rate": "0"}),
    ],
    "report_costs": [
        Call(200),
        Call(200, auth="own_space", params={"currency": "EUR", "days": "30", "tz": "Asia/Kolkata"}),
        Call(401, auth=None),
        Call(403, auth="other_space"),
        Call(404, path={"space_id": 999}),
        Call(422, params={"currency": "NOPE1"}),
    ],
    "stream_status": [Call(200), Call(401, auth=None), Call(401, auth="own_space")],
    "stream": [
        Call(200),
        Call(401, auth=None),
        Call(403, auth="other_space"),
        Call(404, path={"space_id": 999}),
        Call(422, params={"since": "yesterday"}),
        Call(429, auth="own_space", hold=1),  # one stream per credential on this server
    ],
}

_OPERATION = {op.id: op for op in OPERATIONS}


def test_every_operation_has_real_calls_checked_a_success_and_an_error() -> None:
    assert set(CALLS) == set(_OPERATION), "add the new operation's calls to CALLS"
    for op_id, calls in CALLS.items():
        statuses = {c.status for c in calls}
        assert any(s < 400 for s in statuses), op_id
        if _OPERATION[op_id].errors or op_id.endswith(("landing", "redirect")):
            assert any(s >= 400 for s in statuses), op_id


def _credential(world: World, op_id: str, who: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query) for the caller ``who``; "own": the credential the operation takes."""
    auth = _OPERATION[op_id].auth
    if who == "own":
        who = {"bearer": "own_space", "ingest": "ingest", "ingest_or_body": "ingest"}.get(
            auth, "admin" if auth in ("admin", "report", "metrics") else None
        )
    if who == "admin":
        return ADMIN, {}
    if who == "metrics":
        return {"Authorization": f"Bearer {METRICS_TOKEN}"}, {}
    if who in ("own_space", "other_space"):
        space = world.space if who == "own_space" else world.other
        return space.auth, {}
    if who in ("ingest", "other_ingest"):
        space = world.space if who == "ingest" else world.other
        return {}, {"token": space.ingest_token}
    return {}, {}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    content: bytes
    what: str  # for assertion messages


def _call(world: World, op_id: str, call: Call) -> Answer:
    op = _OPERATION[op_id]
    values: dict[str, object] = {
        "space_id": world.space.id,
        "slug": world.slug,
        "destination_id": world.destination_id,
        "name": "doomed",
        **call.path,
    }
    if values["space_id"] == "other":
        values["space_id"] = world.other.id
    if values["space_id"] == "doomed":
        values["space_id"] = world.doomed.id
    if values["destination_id"] == "doomed":
        values["destination_id"] = world.doomed_destination_id
    headers, query = _credential(world, op_id, call.auth)
    request = world.http.build_request(
        op.method,
        op.path.format(**values),
        params={**query, **call.params},
        headers={**headers, **call.headers},
        json=call.json,
        content=call.content,
    )
    held = [world.http.send(request, stream=True) for _ in range(call.hold)]
    try:
        assert [h.status_code for h in held] == [200] * call.hold
        # A stream never ends: its status, headers and first bytes are its answer.
        response = world.http.send(request, stream=True)
        try:
            ok_stream = op_id == "stream" and response.status_code == 200
            content = next(response.iter_raw()) if ok_stream else response.read()
        finally:
            response.close()
    finally:
        for h in held:
            h.close()
    what = f"{op.method} {request.url} -> {response.status_code} {content[:300]!r}"
    return Answer(response.status_code, response.headers, content, what)


@pytest.mark.parametrize("op_id", sorted(CALLS))
def test_real_answers_match_the_document(world: World, op_id: str) -> None:
    op = _OPERATION[op_id]
    described = world.document["paths"][op.path][op.method.lower()]["responses"]
    for call in CALLS[op_id]:
        answer = _call(world, op_id, call)
        assert answer.status == call.status, answer.what
        response = _resolve(world.document, described[str(call.status)])
        for name, header in response.get("headers", {}).items():
            if header.get("required"):
                assert name.lower() in answer.headers, answer.what
        if op.method == "HEAD" or call.status == 302:
            assert answer.content == b"", answer.what
            continue
        media = answer.headers.get("content-type", "").split(";")[0]
        assert media in response.get("content", {}), answer.what
        text = answer.content.decode()
        body = json.loads(text) if media == "application/json" else text
        pointer = _pointer_of(world.document, op, call.status, media)
        errors = [e.message for e in _validator(world.document, pointer).iter_errors(body)]
        assert errors == [], answer.what


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _pointer_of(document: dict[str, Any], op: Operation, status: int, media: str) -> str:
    """The JSON pointer of the schema of one answer (through a shared error response)."""
    node = document["paths"][op.path][op.method.lower()]["responses"][str(status)]
    base = "#/paths/{}/{}/responses/{}".format(
        op.path.replace("~", "~0").replace("/", "~1"), op.method.lower(), status
    )
    if "$ref" in node:
        base = node["$ref"]
    return f"{base}/content/{media.replace('/', '~1')}/schema"


def test_a_new_answer_field_without_documentation_fails_the_check(world: World) -> None:
    """The check above has teeth: an answer with a field the document does not name fails."""
    pointer = _pointer_of(world.document, _OPERATION["post_bind"], 200, "application/json")
    real = world.http.post("/bind", json={"uid": "u-teeth", "tg_id": 5}, headers=world.space.auth)
    validator = _validator(world.document, pointer)
    assert validator.is_valid(real.json())
    assert not validator.is_valid({**real.json(), "surprise": 1})


def test_a_stream_the_server_ends_says_why_as_documented(world: World) -> None:
    """The last message of a stream that the server ends (here: its secret was revoked) is
    ``event: end`` with the data ``#/components/schemas/StreamEnd``."""
    space = world.server.new_space("ending")
    url = f"{world.server.url}/admin/spaces/{space.id}/stream"
    with (
        httpx.Client(verify=TLS_VERIFY, timeout=30) as http,
        http.stream("GET", url, headers=space.auth) as stream,
    ):
        assert stream.status_code == 200
        assert world.http.post(f"/admin/spaces/{space.id}/rotate", headers=ADMIN).is_success
        revoked = world.http.post(f"/admin/spaces/{space.id}/revoke", headers=ADMIN)
        assert revoked.json()["revoked"] == 1, revoked.text
        lines = list(stream.iter_lines())  # the server closes the stream after the last one
    end = lines.index("event: end")
    data = json.loads(lines[end + 1].removeprefix("data: "))
    assert data["reason"] == "credential_expired"
    validator = _validator(world.document, "#/components/schemas/StreamEnd")
    assert [e.message for e in validator.iter_errors(data)] == []


#: A request that fails authentication, per operation: each credential kind, and none.
_FAILING = {
    "post_events": ("POST", "/events", {}, {}),
    "get_e": ("GET", "/e", {"token": "xt_it_wrong", "event": "contact"}, {}),
    "get_bind": ("GET", "/bind", {"token": "xt_it_wrong", "uid": "u", "tg_id": "1"}, {}),
    "list_spaces": ("GET", "/admin/spaces", {}, {"Authorization": "Bearer xt_admin_wrong"}),
    "report_funnel": (
        "GET", "/admin/spaces/1/reports/funnel", {}, {"Authorization": "Bearer xt_sk_wrong"}
    ),
    "stream": ("GET", "/admin/spaces/1/stream", {}, {}),
}  # fmt: skip


def test_the_throttle_of_failed_authentications_answers_as_documented(
    world: World, start_app: ServerFactory
) -> None:
    """Past XTRACKER_AUTH_FAILURES_PER_MINUTE failures from one address, a failure answers 429
    ``rate_limited`` with Retry-After, as the document says, whatever the credential."""
    server = start_app("--auth-failures-per-minute", "1")  # a burst of one failure
    with server.client() as http:
        assert http.post("/events", json={}).status_code == 401
        for op_id, (method, path, params, headers) in _FAILING.items():
            answer = http.request(method, path, params=params, headers=headers)
            what = f"{op_id}: {answer.status_code} {answer.text}"
            assert answer.status_code == 429, what
            assert answer.headers["retry-after"].isdigit(), what
            pointer = _pointer_of(world.document, _OPERATION[op_id], 429, "application/json")
            errors = [
                e.message for e in _validator(world.document, pointer).iter_errors(answer.json())
            ]
            assert errors == [], what


def test_a_storage_fault_answers_as_documented(world: World, start_app: ServerFactory) -> None:
    """While another process holds the write lock past XTRACKER_WRITE_TIMEOUT_S, a write answers
    503 ``unavailable`` with its ``reason`` and Retry-After, and /healthz answers its 503 body,
    as the document says; /livez still answers 200."""
    # A short deadline (0.1 s at least): each locked call below waits it out before its 503.
    server = start_app("--write-timeout-s", "0.3", "--no-worker", "--rate-limit", "0")
    space = server.new_space("locked")
    blocker = sqlite3.connect(server.db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        with server.client() as http:
            answers = {
                "post_events": http.post("/events", json=deposit("locked"), headers=space.auth),
                "delete_space": http.delete(f"/admin/spaces/{space.id}", headers=ADMIN),
                "healthz": http.get("/healthz"),
                "livez": http.get("/livez"),
            }
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    for op_id, answer in answers.items():
        what = f"{op_id}: {answer.status_code} {answer.text}"
        status = 200 if op_id == "livez" else 503
        assert answer.status_code == status, what
        if status == 503:
            assert answer.json()["reason"] == "timeout", what
            assert answer.headers["retry-after"].isdigit(), what
        pointer = _pointer_of(world.document, _OPERATION[op_id], status, "application/json")
        errors = [e.message for e in _validator(world.document, pointer).iter_errors(answer.json())]
        assert errors == [], what
