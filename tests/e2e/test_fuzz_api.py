"""Schemathesis against a live ``xtracker serve``: every operation of the OpenAPI document gets
the boundary and invalid values its schemas imply (the coverage phase) and random requests
(the fuzzing phase, fixed seed), with valid credentials. No answer may be a 5xx, and every
answer (status, content type, headers, body) must be one the document describes.

``XTRACKER_FUZZ_EXAMPLES`` raises the random requests per operation for a longer run
(docs/api.md#testing-the-contract).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, AppServer, Server, SpaceKeys, fuzz_examples
from tests.databases import migrated
from tests.sink import Sink
from xtracker_server.openapi import OPERATIONS, document

if TYPE_CHECKING:
    import schemathesis
    from schemathesis.transport.requests import ManagedCookiesSession

# Schemathesis builds an operation's cases (the coverage phase's are computed when its test is
# made) in the test of that operation, not when pytest collects this module (what its pytest
# plugin does: about 3 s of CPU in every xdist worker, which also made the cases of the
# operations the other worker ran). The builder is the plugin's own, with the same settings
# and the same seed per operation, so the requests are the ones the plugin would send.
AUTH = {op.id: op.auth for op in OPERATIONS}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: Every operation of the document but the live stream (its answer never ends).
FUZZED = [op for op in OPERATIONS if op.id != "stream"]


@dataclass
class Fuzz:
    """The document as schemathesis loads it, with what its tests are built from."""

    schema: Any  # schemathesis' BaseSchema
    feedback: Any  # one FeedbackSources for every operation, as the plugin has
    checks: list[Any]


@pytest.fixture(scope="module")
def fuzz() -> Fuzz:
    import schemathesis
    from schemathesis.checks import load_all_checks, not_a_server_error
    from schemathesis.generation.feedback import FeedbackSources
    from schemathesis.python._constants.orchestrator import make_constants_value_source
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    config = schemathesis.Config.from_dict(
        {
            "seed": 20260412,
            "suppress-health-check": ["too_slow"],  # generation is slower on a loaded machine
            "generation": {
                "max-examples": fuzz_examples(5),
                "deterministic": True,
                "database": "none",
            },
            # Methods a path does not have answer 405 (tests/e2e/test_errors.py).
            "phases": {"coverage": {"unexpected-methods": []}, "stateful": {"enabled": False}},
        }
    )
    # The document is loaded here, not from the server; the `live` fixture checks that the
    # server serves this same document.
    schema = schemathesis.openapi.from_dict(document("http://127.0.0.1"), config=config)
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert labels == {op.route for op in OPERATIONS}, "an operation would not be fuzzed"
    load_all_checks()
    feedback = FeedbackSources(constants_value_source=make_constants_value_source(schema))
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    return Fuzz(schema, feedback, checks)


@dataclass
class Live:
    server: Server
    space: SpaceKeys
    spare: SpaceKeys
    doomed: int  # the space the deletions and erasures are sent to
    sink: Sink
    session: ManagedCookiesSession
    http: httpx.Client  # the fixture's own calls (new spaces to delete)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The server, with space 1 holding a link and a webhook (destination 1) to a local sink,
    so that small ids find real objects, a spare space 2, and space 3 for the deletions and
    erasures, with a link and a webhook of its own. No worker: deliveries wait in the
    outbox. Nothing here is about durability, so SQLite does not sync."""
    sink = Sink()
    server = AppServer(
        db=migrated(tmp_path_factory.mktemp("fuzz") / "xtracker.db"),
        extra_args=(
            "--allow-private-destinations",
            "--no-worker",
            "--rate-limit", "0",
            "--auth-failures-per-minute", "0",  # the invalid cases fail authentication
            "--fb-graph-url", sink.url,
            "--sync", "OFF",
        ),
    )  # fmt: skip
    server.start()
    space, spare = server.new_space("fuzz"), server.new_space("spare")
    with server.client() as http:
        assert http.get("/openapi.json").json() == document(server.url)
        link = {"slug": "fuzz", "kind": "bot", "target": "fuzz_bot"}
        assert http.post(f"/admin/spaces/{space.id}/links", json=link, headers=ADMIN).is_success
        hook = {"kind": "webhook", "url": f"{sink.url}/hook"}
        r = http.post(f"/admin/spaces/{space.id}/destinations", json=hook, headers=ADMIN)
        assert r.is_success, r.text
        uid = http.post("/clicks", json={"link_slug": "fuzz"}, headers=space.auth).json()["uid"]
        event = {"event": "deposit", "uid": uid, "value": "5", "eid": "fuzz-1"}
        assert http.post("/events", json=event, headers=space.auth).is_success
        doomed = _doomed_space(http, "doomed", f"{sink.url}/hook")
    # One session for every case: its connections are kept open between requests (a new
    # connection and a new session per case cost more than the request), and schemathesis
    # drops a ManagedCookiesSession's cookies after each, so each case is sent as it would be
    # alone. No proxy from the environment: the server is on loopback.
    from schemathesis.transport.requests import ManagedCookiesSession

    with ManagedCookiesSession() as session, server.client() as http:
        session.trust_env = False
        yield Live(server, space, spare, doomed, sink, session, http)
    server.stop()
    sink.close()


def _doomed_space(http: httpx.Client, name: str, hook: str) -> int:
    """A new space with a link (slug ``name``) and a webhook: something to delete."""
    r = http.post("/admin/spaces", json={"name": name}, headers=ADMIN)
    assert r.status_code == 201, r.text
    space_id: int = r.json()["id"]
    link = {"slug": name, "kind": "bot", "target": "doomed_bot"}
    r = http.post(f"/admin/spaces/{space_id}/links", json=link, headers=ADMIN)
    assert r.is_success, r.text
    r = http.post(f"/admin/spaces/{space_id}/destinations", json={"kind": "webhook", "url": hook},
                  headers=ADMIN)  # fmt: skip
    assert r.is_success, r.text
    return space_id


def _authorize(case: schemathesis.Case, live: Live) -> None:
    """The credential the operation takes (the admin token where either is accepted)."""
    auth = AUTH[case.operation.definition.raw["operationId"]]
    if auth in ("admin", "report", "metrics"):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN_TOKEN}"}
    elif auth == "bearer":
        case.headers = {**(case.headers or {}), **live.space.auth}
    elif auth in ("ingest", "ingest_or_body"):
        case.query = {**(case.query or {}), "token": live.space.ingest_token}


#: Operations that end credentials or refuse token binds: aimed at the fuzzed space, they go
#: to the spare one instead, so that every case keeps the valid credentials it is sent with.
_ENDS_CREDENTIALS = {"revoke_key", "revoke_token", "set_token_binds"}


def _spare(case: schemathesis.Case, live: Live) -> None:
    if str((case.path_parameters or {}).get("space_id")) == str(live.space.id):
        case.path_parameters = {**(case.path_parameters or {}), "space_id": live.spare.id}


#: Operations that delete or erase: aimed at a space the other cases use, they go to the
#: doomed space instead, and a space deletion to a new space of its own each time (so that
#: the doomed space stays for the others).
_DELETES = {"delete_space", "delete_link", "delete_destination", "erase"}


def _doomed(case: schemathesis.Case, live: Live) -> None:
    op_id = case.operation.definition.raw["operationId"]
    kept = {str(s) for s in (live.space.id, live.spare.id, live.doomed)}
    if str((case.path_parameters or {}).get("space_id")) not in kept:
        return
    target = live.doomed
    if op_id == "delete_space":
        target = _doomed_space(live.http, f"doomed-{next(_NAMES)}", f"{live.sink.url}/hook")
    case.path_parameters = {**(case.path_parameters or {}), "space_id": target}


_NAMES = itertools.count(1)


def _loopback(value: Any, url: str) -> Any:
    """``value`` with every string that holds a URL replaced by ``url``: destinations the
    fuzzer creates, and their proxies, point at the local sink, never elsewhere."""
    if isinstance(value, str):
        return url if "://" in value else value
    if isinstance(value, dict):
        return {k: _loopback(v, url) for k, v in value.items()}
    if isinstance(value, list):
        return [_loopback(v, url) for v in value]
    return value


@pytest.mark.parametrize("operation_id", [op.id for op in FUZZED], ids=[op.route for op in FUZZED])
def test_no_request_gets_a_server_error_or_an_undocumented_answer(
    operation_id: str, fuzz: Fuzz, live: Live
) -> None:
    from schemathesis.core.failures import FailureGroup, as_reported_failure
    from schemathesis.generation.hypothesis.reporting import ignore_hypothesis_output
    from schemathesis.pytest._test_builder import build_operation_test

    def check(case: schemathesis.Case) -> None:
        _authorize(case, live)
        if operation_id in ("create_destination", "update_destination"):
            case.body = _loopback(case.body, f"{live.sink.url}/fuzz")
        if operation_id in _ENDS_CREDENTIALS:
            _spare(case, live)
        if operation_id in _DELETES:
            _doomed(case, live)
        # A redirect is the answer under test; following one could leave the machine.
        case.call_and_validate(
            base_url=live.server.url, session=live.session, checks=fuzz.checks,
            allow_redirects=False,
        )  # fmt: skip

    test = build_operation_test(
        config=fuzz.schema.config,
        operation=fuzz.schema.find_operation_by_id(operation_id),
        test_func=check,
        given_kwargs={},
        feedback=fuzz.feedback,
    )
    try:
        with ignore_hypothesis_output():
            test()
    except FailureGroup as failures:  # as the plugin reports them: each failure and its request
        raise as_reported_failure(failures) from None
