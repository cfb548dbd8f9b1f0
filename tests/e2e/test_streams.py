"""The live stream under abuse, against the real server: one reader for every stream, caps per
credential and per space, streams that end with their credential, ids that commit out of order,
and cursors (``since``) that are huge or malformed."""

from __future__ import annotations

import queue
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Server, ServerFactory, SpaceKeys
from tests.e2e.test_reports import StreamReader
from tests.tail_ops import commit_click_with_id
from xtracker_server.domain.credentials import ROTATION_GRACE_MS, CredentialKind
from xtracker_server.store.sqlite import spaces
from xtracker_server.store.sqlite.db import open_db, transaction

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
POLL_S = 0.2  # the server's default XTRACKER_STREAM_POLL_S


def _url(server: Server, space: SpaceKeys) -> str:
    return f"{server.url}/admin/spaces/{space.id}/stream"


def _status(http: httpx.Client) -> dict[str, Any]:
    r = http.get("/admin/streams", headers=ADMIN)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _wait_for(http: httpx.Client, check: Any, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(http)
        if check(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)  # the server's state, seen over HTTP: nothing to await


def _messages(
    stream: StreamReader, kind: str, wait: float, *, first: bool = False
) -> list[tuple[str, dict[str, Any], str]]:
    """Every message of ``kind`` that arrives within ``wait`` seconds of the last one (for at
    most a minute: a stream that never pauses fails rather than holding the test); with
    ``first``, only the first one (none: none came within ``wait``)."""
    got: list[tuple[str, dict[str, Any], str]] = []
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, f"the stream never paused for {wait} s"
        try:
            _, k, data, ident = stream.next(timeout=wait)
        except queue.Empty:
            return got
        if k == kind:
            got.append((k, data, ident))
            if first:
                return got


def test_many_streams_share_one_reader(start_app: ServerFactory) -> None:
    server = start_app("--stream-max-per-credential", "50", "--stream-max-per-space", "50")
    a, b = server.new_space("a"), server.new_space("b")
    streams: list[StreamReader] = []
    with server.client() as http:
        try:
            for n in range(30):
                streams.append(StreamReader(_url(server, a if n % 3 else b), ADMIN))
            assert all(s.status == 200 for s in streams)
            status = _wait_for(http, lambda s: s["open"] == 30)
            assert status["spaces"] == {str(a.id): 20, str(b.id): 10}
            assert status["reader"]["running"]
            # over 1.5 s: about one read per poll interval (at most 18 allowed), not one per
            # stream and interval (225)
            before, started = status["reader"]["reads"], time.monotonic()
            time.sleep(1.5)
            status = _status(http)
            polls = (time.monotonic() - started) / POLL_S
            reads = status["reader"]["reads"] - before
            assert 1 <= reads <= 2 * polls + 3, (reads, polls)
            # and every stream of the space gets the space's click, once: the streams are read
            # side by side (each has its thread), the space's until the click came, then all
            # after one pause in which none gets more (the other space's get nothing at all)
            uid = http.post("/clicks", json={}, headers=a.auth).json()["uid"]
            got: list[list[str]] = [[] for _ in streams]
            for n, stream in enumerate(streams):
                if n % 3:
                    got[n] += [d["uid"] for _, d, _ in _messages(stream, "click", 5, first=True)]
            time.sleep(0.3)
            for n, stream in enumerate(streams):
                got[n] += [d["uid"] for _, d, _ in _messages(stream, "click", 0.01)]
                assert got[n] == ([uid] if n % 3 else []), n
        finally:
            for stream in streams:
                stream.close()
        # the last stream gone, the reader stops
        status = _wait_for(http, lambda s: s["open"] == 0 and not s["reader"]["running"])
        time.sleep(3 * POLL_S)
        assert _status(http)["reader"]["reads"] == status["reader"]["reads"]


def _too_many(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert (body["ok"], body["error"]) == (False, "too_many_streams")
    assert "close one" in body["detail"]
    assert int(r.headers["retry-after"]) > 0


def test_streams_are_capped_per_credential_and_per_space(start_app: ServerFactory) -> None:
    server = start_app("--stream-max-per-space", "6")  # 4 per credential: the default
    space, other = server.new_space("capped"), server.new_space("other")
    streams: list[StreamReader] = []
    with server.client() as http:
        try:
            for _ in range(4):
                streams.append(StreamReader(_url(server, space), space.auth))
            _too_many(http.get(f"/admin/spaces/{space.id}/stream", headers=space.auth))
            # another credential may open more on the same space, up to the space's cap
            for _ in range(2):
                streams.append(StreamReader(_url(server, space), ADMIN))
            assert all(s.status == 200 for s in streams)
            _too_many(http.get(f"/admin/spaces/{space.id}/stream", headers=ADMIN))
            # the space's cap is not another space's
            streams.append(StreamReader(_url(server, other), ADMIN))
            assert streams[-1].status == 200
            # a stream that ends frees its place
            streams.pop(0).close()
            _wait_for(http, lambda s: s["spaces"].get(str(space.id)) == 5)
            streams.append(StreamReader(_url(server, space), space.auth))
            assert streams[-1].status == 200
        finally:
            for stream in streams:
                stream.close()


def _rotate_with_grace(server: Server, space: SpaceKeys, grace_ms: int) -> None:
    """Rotate the space's bearer secret through the store as if it had been rotated
    ``ROTATION_GRACE_MS - grace_ms`` ago: the previous secret works ``grace_ms`` more."""
    conn = open_db(str(server.db))
    try:
        with transaction(conn):
            past = int(time.time() * 1000) - ROTATION_GRACE_MS + grace_ms
            assert spaces.rotate_credential(conn, space.id, CredentialKind.BEARER, past)
    finally:
        conn.close()


def test_a_stream_ends_when_its_bearer_expires(server: Server, http: httpx.Client) -> None:
    space = server.new_space("rotated")
    stream = StreamReader(_url(server, space), space.auth)
    admin_stream = StreamReader(_url(server, space), ADMIN)
    try:
        assert stream.status == 200
        _rotate_with_grace(server, space, 1500)
        rotated = time.monotonic()
        _, kind, data, _ = stream.next(timeout=30)
        assert (kind, data) == ("end", {"type": "end", "reason": "credential_expired"})
        assert stream.ended.wait(10)
        assert time.monotonic() - rotated < 15  # grace + cache + re-check, with room
        # the old secret is refused from now on; the admin's stream of the space goes on
        assert http.get(f"/admin/spaces/{space.id}/stream", headers=space.auth).status_code == 401
        assert not admin_stream.ended.is_set()
    finally:
        stream.close()
        admin_stream.close()


def test_a_revoked_bearer_ends_its_stream_at_once(server: Server, http: httpx.Client) -> None:
    space = server.new_space("revoked")
    old_auth = space.auth
    stream = StreamReader(_url(server, space), old_auth)
    try:
        assert stream.status == 200
        r = http.post(f"/admin/spaces/{space.id}/rotate", headers=ADMIN)
        assert r.status_code == 200, r.text
        new_auth = {"Authorization": f"Bearer {r.json()['bearer']}"}
        # within the rotation's grace the old secret still streams...
        assert not stream.ended.wait(2.5)
        r = http.post(f"/admin/spaces/{space.id}/revoke", headers=ADMIN)
        assert (r.status_code, r.json()["revoked"]) == (200, 1), r.text
        revoked = time.monotonic()
        _, kind, data, _ = stream.next(timeout=30)
        assert (kind, data) == ("end", {"type": "end", "reason": "credential_expired"})
        assert time.monotonic() - revoked < 15  # the reader re-checks about every second
        assert http.get(f"/admin/spaces/{space.id}/stream", headers=old_auth).status_code == 401
        fresh = StreamReader(_url(server, space), new_auth)
        try:
            assert fresh.status == 200
        finally:
            fresh.close()
    finally:
        stream.close()


def test_a_lower_id_committed_after_a_higher_one_is_delivered_once(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("out-of-order")
    stream = StreamReader(_url(server, space), ADMIN)
    resumed: StreamReader | None = None
    try:
        assert stream.status == 200
        # a click through the API shows the stream is live, and gives the newest id
        first = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
        _, kind, data, _ = stream.next(timeout=30)
        assert (kind, data["uid"]) == ("click", first)
        n = data["id"]
        now = int(time.time() * 1000)
        commit_click_with_id(str(server.db), n + 2, space.id, "late-two", now)
        _, kind, data, after_two = stream.next(timeout=10)
        assert (kind, data["id"]) == ("click", n + 2)
        # a client that reconnects from here must still get n + 1, and not n + 2 again
        resumed = StreamReader(_url(server, space), {**ADMIN, "Last-Event-ID": after_two})
        commit_click_with_id(str(server.db), n + 1, space.id, "late-one", now)
        uid = http.post("/clicks", json={}, headers=space.auth).json()["uid"]  # n + 3
        # Committed before: each comes within a poll (0.2 s) or two; 1.5 s of silence after
        # the last is seven polls that brought nothing more (no n + 2 again).
        got = [(d["id"], d["uid"]) for _, d, _ in _messages(stream, "click", 1.5)]
        assert got == [(n + 1, "late-one"), (n + 3, uid)]
        again = [(d["id"], d["uid"]) for _, d, _ in _messages(resumed, "click", 1.5)]
        assert again == [(n + 1, "late-one"), (n + 3, uid)]
    finally:
        stream.close()
        if resumed is not None:
            resumed.close()


@pytest.mark.parametrize(
    "since",
    [
        "9" * 5000 + "-0-0",  # int() refuses over 4300 digits
        "99999999999999999999-0-0",  # over 64 bits
        "9223372036854775807-0-0",  # the largest id, far ahead of the database
        "1000000-0-0",
        "²-0-0",  # a digit to str.isdigit(), not to int()
    ],
)
def test_a_huge_or_malformed_since_is_refused_at_once(
    server: Server, http: httpx.Client, space: SpaceKeys, since: str
) -> None:
    url = f"/admin/spaces/{space.id}/stream"
    auth = [(k.encode(), v.encode()) for k, v in space.auth.items()]
    as_header = [*auth, (b"Last-Event-ID", since.encode())]  # bytes: UTF-8 as sent
    for headers, params in ((auth, {"since": since}), (as_header, {})):
        started = time.monotonic()
        r = http.get(url, headers=headers, params=params, timeout=30)
        assert r.status_code == 422, r.text[:200]
        body = r.json()
        assert (body["ok"], body["error"], body["field"]) == (False, "invalid_field", "since")
        assert time.monotonic() - started < 10
