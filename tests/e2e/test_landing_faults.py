"""Ad visitors during storage faults, against a real server: every visitor is sent on with its
uid, and every click whose visitor was sent on is in the database afterwards, once, or counted
as dropped (docs/links.md#when-storage-fails).

The faults are real: the writer process killed (``kill -9``), a full file system (a tmpfs), the
database files made unwritable (``chattr +i`` on an ext4 image: a read-only remount is refused
while the server has them open), the server killed while clicks wait in the journal. The file
system faults need root."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    TLS_VERIFY,
    AppServer,
    Server,
    ServerFactory,
    SpaceKeys,
    free_port,
)
from tests.server.test_writer_process import _children

PHONE = {"User-Agent": "Mozilla/5.0 (Linux; Android 13) Chrome/120 Mobile Safari/537.36"}
OFFER = "https://t.me/offer_bot?start=fb_"
UID = re.compile(r"https://t\.me/offer_bot\?start=fb_([A-Za-z0-9_-]{16})(?![A-Za-z0-9_-])")
FAST = ("--rate-limit", "0", "--click-limit-per-ip", "0")  # all visits come from 127.0.0.1
JOURNAL = ".clicks-pending"


def make_link(server: Server, space: SpaceKeys, slug: str) -> str:
    server.cli("link", "create", "--space", str(space.id), "--slug", slug, "--kind", "bot",
               "--target", "offer_bot")  # fmt: skip
    return slug


def uid_of(r: httpx.Response) -> str:
    """The uid a visitor was sent on with: by /r's redirect, or in /l's page."""
    if r.status_code == 302:
        location = r.headers["location"]
        assert location.startswith(OFFER), location
        return location.removeprefix(OFFER)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    found = UID.search(r.text)
    assert found, r.text[:300]
    return found.group(1)


def visit(server: Server, slug: str) -> httpx.Response:
    return httpx.get(f"{server.url}/r/{slug}", headers=PHONE, timeout=30, verify=TLS_VERIFY)


def stored_uids(db: Path, slug: str) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [
            uid
            for (uid,) in conn.execute(
                "SELECT c.uid FROM clicks c JOIN links l ON l.id = c.link_id WHERE l.slug = ?",
                (slug,),
            )
        ]
    finally:
        conn.close()


def wait_stored(db: Path, slug: str, uids: list[str], timeout: float = 30) -> list[str]:
    """The link's stored uids once all of ``uids`` are among them, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        stored = stored_uids(db, slug)
        if set(uids) <= set(stored) or time.monotonic() > deadline:
            return stored
        time.sleep(0.1)  # the buffer is stored in the background: nothing to wait on


def dropped(server: Server, space: SpaceKeys, slug: str, *, want: int) -> int:
    """The link's ``unrecorded_dropped`` once it reaches ``want`` (the server stores its counts
    every second), or what it is after 20 s."""
    deadline = time.monotonic() + 20
    while True:
        r = httpx.get(
            f"{server.url}/admin/spaces/{space.id}/reports/links",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
            verify=TLS_VERIFY,
        )
        assert r.status_code == 200, r.text
        got = {row["link"]: row for row in r.json()["links"]}.get(slug, {})
        n = int(got.get("unrecorded_dropped", 0))
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


def test_killing_the_writer_under_load_sends_every_visitor_on_and_loses_no_click(
    start_app: ServerFactory,
) -> None:
    # The app in this process with its writer in a process of its own (as `serve` runs it):
    # the writer is the one writer child of this process.
    server = start_app(*FAST, XTRACKER_WRITER_PROCESS="on")
    space = server.new_space("ads")
    slug = make_link(server, space, "spring")
    (writer,) = _children(os.getpid())
    answers: list[httpx.Response] = []

    async def client(http: httpx.AsyncClient, n: int, until: float) -> None:
        i = 0
        while time.monotonic() < until:
            path = f"/l/{slug}" if (n + i) % 3 == 0 else f"/r/{slug}"
            answers.append(await http.get(path, headers=PHONE))
            i += 1

    async def load() -> None:
        async with httpx.AsyncClient(verify=TLS_VERIFY, base_url=server.url, timeout=30) as http:
            http.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # new browsers
            start = time.monotonic()
            # Visits before the kill, while no writer runs (it is started again after half a
            # second: RESPAWN_DELAY_S) and after.
            clients = [asyncio.create_task(client(http, n, start + 2.0)) for n in range(4)]
            await asyncio.sleep(0.5)
            os.kill(writer, signal.SIGKILL)
            await asyncio.gather(*clients)

    asyncio.run(load())

    statuses = {r.status_code for r in answers}
    assert statuses <= {200, 302}, sorted(statuses)  # no 503, no 500
    uids = [uid_of(r) for r in answers]
    assert len(set(uids)) == len(uids)
    stored = wait_stored(server.db, slug, uids)
    assert dropped(server, space, slug, want=0) == 0
    assert sorted(stored) == sorted(uids)  # every click once, none twice, none lost
    log = server.log_text()
    assert "the writer process exited" in log  # the kill did cut writes off ...
    assert "visitors are sent on and their clicks kept" in log  # ... and the buffer took them
    assert "storage recovered" in log
    (new_writer,) = _children(os.getpid())
    assert new_writer != writer


# ------------------------------------------------------------------ file system faults (root)


def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("file system faults need root (tmpfs, loop mount, chattr)")


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=60)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs: small enough to fill up in a moment."""
    _root()
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    _run("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount))
    try:
        yield mount
    finally:
        _run("umount", "-l", str(mount))


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[Path]:
    """An ext4 file system in a 64 MB image, loop-mounted; every file is made writable again
    (``chattr -i``) before it is unmounted."""
    _root()
    image, mount = tmp_path / "ext4.img", tmp_path / "ext4"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    _run("mkfs.ext4", "-q", str(image))
    _run("mount", "-o", "loop", str(image), str(mount))
    try:
        yield mount
    finally:
        for path in mount.iterdir():
            with contextlib.suppress(subprocess.CalledProcessError):
                _run("chattr", "-i", str(path))
        _run("umount", "-l", str(mount))


@contextlib.contextmanager
def unwritable(db: Path) -> Iterator[None]:
    """The database and its WAL immutable (root's ``chmod`` stops nothing): every commit fails
    with an I/O error, while the journal beside them can still be written."""
    files = [str(db), f"{db}-wal"]
    _run("chattr", "+i", *files)
    try:
        yield
    finally:
        _run("chattr", "-i", *files)


def _server_on(fs: Path, tmp_path: Path, *args: str, process: bool = False) -> Server:
    """A server whose database is on ``fs`` and whose log is not: in this process, or a
    process of its own (``process``) for a test that kills it."""
    if process:
        server = Server(db=fs / "xtracker.db", port=free_port(), extra_args=(*FAST, *args))
    else:
        server = AppServer(db=fs / "xtracker.db", extra_args=(*FAST, *args))
    server.log = tmp_path / "server.log"
    server.start()
    return server


def test_a_full_disk_sends_visitors_on_and_their_clicks_land_once_space_is_freed(
    small_tmpfs: Path, tmp_path: Path
) -> None:
    server = _server_on(small_tmpfs, tmp_path)
    try:
        space = server.new_space("ads")
        slug = make_link(server, space, "spring")
        before = uid_of(visit(server, slug))
        # An empty WAL, so that the next commit must grow it: then fill the file system.
        conn = sqlite3.connect(server.db)
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        conn.close()
        filler = small_tmpfs / "filler"
        with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)

        during = [visit(server, slug) for _ in range(12)]

        assert [r.status_code for r in during] == [302] * 12
        uids = [uid_of(r) for r in during]
        assert not set(uids) & set(stored_uids(server.db, slug))  # nothing could be stored
        filler.unlink()
        stored = wait_stored(server.db, slug, uids)
        assert sorted(stored) == sorted([before, *uids])
        log = server.log_text()
        assert "visitors are sent on and their clicks kept" in log
        assert "kept clicks are in memory only" in log  # the journal could not be written
        assert _emptied(Path(f"{server.db}{JOURNAL}"))  # no torn line left behind
    finally:
        server.stop()


def test_an_unwritable_database_sends_visitors_on_and_a_killed_server_stores_the_journal(
    ext4: Path, tmp_path: Path
) -> None:
    # A process without a delivery worker (nothing to deliver; its start costs about 1 s of
    # CPU): only the kill needs a process.
    server = _server_on(ext4, tmp_path, "--no-worker", process=True)
    try:
        space = server.new_space("ads")
        slug = make_link(server, space, "spring")
        before = uid_of(visit(server, slug))
        with unwritable(server.db):
            during = [visit(server, slug) for _ in range(15)]
            assert [r.status_code for r in during] == [302] * 15
            uids = [uid_of(r) for r in during]
            with httpx.Client(verify=TLS_VERIFY, cookies=during[0].cookies, timeout=30) as browser:
                again = browser.get(f"{server.url}/r/{slug}", headers=PHONE)
            assert uid_of(again) == uids[0]  # a repeat visit, though its click is not stored
            journal = Path(f"{server.db}{JOURNAL}").read_text().splitlines()
            assert len(journal) == 15  # each on disk before its visitor was sent on
            server.kill()  # SIGKILL while the clicks wait in the journal
        assert stored_uids(server.db, slug) == [before]
        # Started again on the same files: only the kill needs a process, the restart is the
        # same app in this process.
        server = _server_on(ext4, tmp_path)
        stored = wait_stored(server.db, slug, uids)
        assert sorted(stored) == sorted([before, *uids])  # each once
        assert "15 clicks left in the click journal" in server.log_text()
        assert _emptied(Path(f"{server.db}{JOURNAL}"))
    finally:
        server.stop()


def _emptied(journal: Path) -> bool:
    """Whether the journal is emptied (after the commit of its clicks) within 10 s."""
    deadline = time.monotonic() + 10
    while journal.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.05)  # emptied in the background: nothing to wait on
    return journal.stat().st_size == 0


def test_clicks_past_the_buffer_are_counted_as_dropped(ext4: Path, tmp_path: Path) -> None:
    server = _server_on(ext4, tmp_path, "--click-buffer-max", "3")
    try:
        space = server.new_space("ads")
        slug = make_link(server, space, "spring")
        uid_of(visit(server, slug))  # the link is looked up once
        with unwritable(server.db):
            during = [visit(server, slug) for _ in range(8)]
        assert [r.status_code for r in during] == [302] * 8  # every visitor still sent on
        uids = [uid_of(r) for r in during]
        stored = wait_stored(server.db, slug, uids[:3])
        assert set(uids[:3]) <= set(stored) and not set(uids[3:]) & set(stored)
        assert dropped(server, space, slug, want=5) == 5
        log = server.log_text()
        assert "the click buffer is full (XTRACKER_CLICK_BUFFER_MAX=3 clicks)" in log
        assert log.count("the click buffer is full") == 1  # once per change of state
    finally:
        server.stop()


def test_a_journal_replayed_twice_stores_each_click_once(start_app: ServerFactory) -> None:
    """What a server killed in the middle of storing its journal leaves: clicks stored already,
    a line written twice, a last line cut off. Each click is stored once at the next start.
    (The journal is written here after the server stopped: how it stopped does not matter.)"""
    server = start_app(*FAST)
    space = server.new_space("ads")
    slug = make_link(server, space, "spring")
    stored_before = uid_of(visit(server, slug))
    conn = sqlite3.connect(server.db)
    query = "SELECT space_id, link_id, created_ms FROM clicks WHERE uid = ?"
    row = conn.execute(query, (stored_before,)).fetchone()
    conn.close()
    server.stop()

    def line(uid: str) -> str:
        return (
            f'{{"space_id":{row[0]},"uid":"{uid}","created_ms":{row[2]},"source":"redirect",'
            f'"link_id":{row[1]},"ip":"127.0.0.1","user_agent":"phone","referrer":null,'
            f'"fbclid":null,"fbc":null,"fbp":null,"country":null,"raw_query":null,"fields":{{}}}}'
        )

    kept = ["keptAAAAAAAAAAAA", "keptBBBBBBBBBBBB"]
    Path(f"{server.db}{JOURNAL}").write_text(
        "\n".join([line(stored_before), line(kept[0]), line(kept[1]), line(kept[0])])
        + "\n"
        + line("tornCCCCCCCCCCCC")[:40]
    )
    server.start()
    stored = wait_stored(server.db, slug, kept)
    assert sorted(stored) == sorted([stored_before, *kept])
    log = server.log_text()
    assert "3 clicks left in the click journal" in log
    assert "held 1 lines without a click" in log  # the torn one, said so
