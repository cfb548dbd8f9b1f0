"""The landing while its database cannot be read: a link it has looked up before still sends
visitors on, and a link it has never seen gets a 503 page with Retry-After. The app runs in
process on a real SQLite file; the read fault is injected at the store's ``read`` (a reader
connection's I/O error cannot be made to order on a live server)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.inprocess import cli_in_process
from xtracker_server.app import create_app
from xtracker_server.caches import ReadCache
from xtracker_server.config import Settings
from xtracker_server.store.sqlite.runtime import Store

PHONE = {"User-Agent": "Mozilla/5.0 (Linux; Android 13) Chrome/120 Mobile Safari/537.36"}
TTL_S = 0.05


def _unreadable(store: Store) -> None:
    """Every read of ``store`` fails from now on, as with a disk I/O error."""

    async def read(op: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    store.read = read  # type: ignore[method-assign]


def test_a_known_link_sends_visitors_on_and_an_unknown_one_gets_a_503_page(
    tmp_path: Path,
) -> None:
    db = tmp_path / "x.db"
    space = cli_in_process(db, "space", "create", "ads", "--json").stdout
    space_id = str(json.loads(space)["id"])
    cli_in_process(db, "link", "create", "--space", space_id, "--slug", "spring",
                   "--kind", "bot", "--target", "offer_bot")  # fmt: skip
    settings = Settings(db=str(db), click_limit_per_ip=0, credential_cache_s=TTL_S, worker=False)
    front = create_app(settings)
    starlette = front.app

    async def go() -> list[httpx.Response]:
        async with starlette.router.lifespan_context(starlette):
            transport = httpx.ASGITransport(app=front)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                first = await http.get("/r/spring", headers=PHONE)
                _unreadable(starlette.state.xt.store)
                await asyncio.sleep(TTL_S * 2)  # the cached link is due to be read again
                return [
                    first,
                    await http.get("/r/spring", headers=PHONE),
                    await http.get("/l/spring", headers=PHONE),
                    await http.get("/r/autumn", headers=PHONE),
                    await http.get("/l/autumn", headers=PHONE),
                ]

    first, again, page, unknown_r, unknown_l = asyncio.run(go())
    assert first.status_code == 302
    assert again.status_code == 302
    assert again.headers["location"].startswith("https://t.me/offer_bot?start=fb_")
    assert again.headers["location"] != first.headers["location"]  # a new click, recorded
    assert page.status_code == 200 and "start=fb_" in page.text
    for r in (unknown_r, unknown_l):
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.headers["content-type"].startswith("text/html")
        assert "Try again in a moment" in r.text
    conn = sqlite3.connect(db)
    uids = {u for (u,) in conn.execute("SELECT uid FROM clicks")}
    conn.close()
    assert again.headers["location"].rsplit("fb_", 1)[1] in uids


class _Failing:
    """A store operation that fails with ``error`` once ``failing`` is set."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.failing = False

    async def value_of(self, key: str) -> str:
        if self.failing:
            raise self.error
        return f"value of {key}"


def _cache(store: _Failing, *, stale_on_fault: bool) -> ReadCache[str, str]:
    return ReadCache(store.value_of, ttl_s=TTL_S, max_entries=10, stale_on_fault=stale_on_fault)


def test_a_cache_serves_its_last_value_while_storage_fails() -> None:
    store = _Failing(sqlite3.OperationalError("disk I/O error"))
    cache = _cache(store, stale_on_fault=True)

    async def go() -> str:
        assert await cache.get("a") == "value of a"
        store.failing = True
        time.sleep(TTL_S * 2)
        return await cache.get("a")

    assert asyncio.run(go()) == "value of a"


def test_a_cache_raises_what_is_not_a_storage_fault_or_not_asked_to_serve_stale() -> None:
    async def go(store: _Failing, cache: ReadCache[str, str]) -> BaseException | None:
        await cache.get("a")
        store.failing = True
        time.sleep(TTL_S * 2)
        try:
            await cache.get("a")
        except BaseException as exc:
            return exc
        return None

    bug = _Failing(ValueError("a bug"))
    assert isinstance(asyncio.run(go(bug, _cache(bug, stale_on_fault=True))), ValueError)
    fault = _Failing(sqlite3.OperationalError("disk I/O error"))
    raised = asyncio.run(go(fault, _cache(fault, stale_on_fault=False)))
    assert isinstance(raised, sqlite3.OperationalError)
