"""The examples in ``examples/``, driven with fake Telegram updates against the real server.

Telegram itself is never called: aiogram's ``Bot`` gets a session and python-telegram-bot's
``Application`` a request object that record each Bot API call and answer it the way Telegram
would. Everything on the XTRACKER side is real: ``xtracker serve`` with its SQLite file, read
back with sqlite3.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest
from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    ApproveChatJoinRequest,
    CreateChatInviteLink,
    GetMe,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import Chat, ChatInviteLink, Message, User
from aiogram.types import Update as AiogramUpdate
from aiohttp import test_utils  # (its TestClient imported by name would look like a test class)
from telegram import Update as PtbUpdate
from telegram.ext import Application, ContextTypes
from telegram.request import BaseRequest, RequestData

from tests.conftest import Server, SpaceKeys
from xtracker_client import AsyncXTracker, Backoff

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FAST = Backoff(base_s=0.05, cap_s=0.3)
BOT_ID = 4242
CHANNEL_ID = -1001234567890
T = TypeVar("T")


@functools.cache
def example(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"xtracker_example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def with_tracker(
    space: SpaceKeys, server: Server, body: Callable[[AsyncXTracker], Awaitable[T]]
) -> T:
    """Run ``body`` in a fresh event loop with an in-memory ``AsyncXTracker``, then flush and
    close it so every buffered item has reached the server before the test reads the DB."""

    async def run() -> T:
        tracker = AsyncXTracker(server.url, space.bearer, in_memory=True, backoff=FAST)
        try:
            result = await body(tracker)
            assert await tracker.flush(20), await tracker.stats()
            stats = await tracker.stats()
            assert stats.dead == 0, (stats, await tracker.dead_letters())
            return result
        finally:
            await tracker.close()

    return asyncio.run(run())


# --- reading the server's database ----------------------------------------------------------


def query(server: Server, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(server.db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def inbox(server: Server, space: SpaceKeys) -> list[tuple[Any, ...]]:
    return query(
        server,
        "SELECT event, uid, tg_id, eid, value FROM inbox WHERE space_id = ? ORDER BY id",
        space.id,
    )


def binds(server: Server, space: SpaceKeys) -> list[tuple[Any, ...]]:
    return query(
        server, "SELECT uid, tg_id FROM binds WHERE space_id = ? ORDER BY created_ms", space.id
    )


def clicks_of_link(server: Server, space: SpaceKeys, slug: str) -> list[str]:
    rows = query(
        server,
        "SELECT c.uid FROM clicks c JOIN links l ON l.id = c.link_id"
        " WHERE c.space_id = ? AND l.slug = ? ORDER BY c.id",
        space.id,
        slug,
    )
    return [r[0] for r in rows]


# --- fake Telegram: aiogram ------------------------------------------------------------------


def tg_user(tg_id: int, *, is_bot: bool = False) -> dict[str, Any]:
    return {"id": tg_id, "is_bot": is_bot, "first_name": f"user{tg_id}"}


class FakeAiogramSession(BaseSession):
    """Answers the Bot API calls the examples make, and records them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[TelegramMethod[Any]] = []

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        self.calls.append(method)
        if isinstance(method, GetMe):
            return User(id=BOT_ID, is_bot=True, first_name="Offer", username="my_offer_bot")
        if isinstance(method, SendMessage):
            return Message(
                message_id=len(self.calls),
                date=datetime.now(timezone.utc),
                chat=Chat(id=int(method.chat_id), type="private"),
                text=method.text,
            )
        if isinstance(method, ApproveChatJoinRequest):
            return True
        if isinstance(method, CreateChatInviteLink):
            return ChatInviteLink(
                invite_link="https://t.me/+FreshLink0123",
                creator=User(id=BOT_ID, is_bot=True, first_name="Offer"),
                creates_join_request=bool(method.creates_join_request),
                is_primary=False,
                is_revoked=False,
                name=method.name,
            )
        raise AssertionError(f"unexpected Bot API call: {method!r}")

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        raise AssertionError("the examples download nothing")
        yield b""  # pragma: no cover

    async def close(self) -> None:
        pass

    def sent(self, kind: type[TelegramMethod[Any]]) -> list[Any]:
        return [c for c in self.calls if isinstance(c, kind)]


def fake_bot() -> tuple[Bot, FakeAiogramSession]:
    session = FakeAiogramSession()
    return Bot("4242:TEST-token-not-real", session=session), session


class Updates:
    """Telegram updates as JSON, numbered like Telegram numbers them."""

    def __init__(self) -> None:
        self.n = 1000

    def next_id(self) -> int:
        self.n += 1
        return self.n

    def start(self, tg_id: int, text: str) -> dict[str, Any]:
        n = self.next_id()
        command = text.split()[0]
        return {
            "update_id": n,
            "message": {
                "message_id": n,
                "date": 1_760_000_000,
                "chat": {"id": tg_id, "type": "private", "first_name": f"user{tg_id}"},
                "from": tg_user(tg_id),
                "text": text,
                "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
            },
        }

    @staticmethod
    def invite(url: str, name: str | None, *, join_request: bool) -> dict[str, Any]:
        link: dict[str, Any] = {
            "invite_link": url,
            "creator": tg_user(BOT_ID, is_bot=True),
            "creates_join_request": join_request,
            "is_primary": False,
            "is_revoked": False,
        }
        if name is not None:
            link["name"] = name
        return link

    def join_request(self, tg_id: int, invite: dict[str, Any] | None) -> dict[str, Any]:
        request: dict[str, Any] = {
            "chat": {"id": CHANNEL_ID, "type": "channel", "title": "News"},
            "from": tg_user(tg_id),
            "user_chat_id": tg_id,
            "date": 1_760_000_000,
        }
        if invite is not None:
            request["invite_link"] = invite
        return {"update_id": self.next_id(), "chat_join_request": request}

    def member_joined(self, tg_id: int, invite: dict[str, Any] | None) -> dict[str, Any]:
        updated: dict[str, Any] = {
            "chat": {"id": CHANNEL_ID, "type": "channel", "title": "News"},
            "from": tg_user(tg_id),
            "date": 1_760_000_000,
            "old_chat_member": {"status": "left", "user": tg_user(tg_id)},
            "new_chat_member": {"status": "member", "user": tg_user(tg_id)},
        }
        if invite is not None:
            updated["invite_link"] = invite
        return {"update_id": self.next_id(), "chat_member": updated}


async def feed(dp: Any, bot: Bot, data: dict[str, Any]) -> None:
    await dp.feed_update(bot, AiogramUpdate.model_validate(data, context={"bot": bot}))


# --- the aiogram bot -------------------------------------------------------------------------


def test_aiogram_start_binds_and_reports_contact_and_subscribed(
    server: Server,
) -> None:
    mod = example("aiogram_bot")
    space = server.new_space("aiogram-start")
    updates = Updates()
    bot, session = fake_bot()
    ann, bob, cid = 700_001, 700_002, 700_003

    async def body(tracker: AsyncXTracker) -> str:
        uid = await tracker.new_click(campaign_name="spring")  # as the landing page would
        dp = mod.build_dispatcher(tracker, "https://partner.example/reg?sub1={tg_id}")
        await feed(dp, bot, updates.start(ann, f"/start fb_{uid}"))
        await feed(dp, bot, updates.start(ann, f"/start fb_{uid}"))  # again: duplicates
        await feed(dp, bot, updates.start(bob, "/start"))  # organic
        await feed(dp, bot, updates.start(cid, "/start promo2024"))  # not our payload
        return str(uid)

    uid = with_tracker(space, server, body)
    start = f"start-{ann}"
    assert inbox(server, space) == [
        ("contact", uid, ann, start, None),
        ("subscribed", uid, ann, start, None),
    ]
    assert binds(server, space) == [(uid, ann)]
    replies = session.sent(SendMessage)
    assert [(int(m.chat_id), m.text.rsplit(" ", 1)[-1]) for m in replies] == [
        (ann, f"https://partner.example/reg?sub1={ann}"),
        (ann, f"https://partner.example/reg?sub1={ann}"),
        (bob, f"https://partner.example/reg?sub1={bob}"),
        (cid, f"https://partner.example/reg?sub1={cid}"),
    ]


def test_aiogram_offer_postbacks_report_registration_and_deposit_by_tg_id(
    server: Server,
) -> None:
    mod = example("aiogram_bot")
    space = server.new_space("aiogram-offer")
    updates = Updates()
    bot, _ = fake_bot()
    ann = 710_001
    secret = "postback-secret"

    async def body(tracker: AsyncXTracker) -> str:
        uid = await tracker.new_click(campaign_name="spring")
        await feed(mod.build_dispatcher(tracker), bot, updates.start(ann, f"/start fb_{uid}"))
        app = mod.build_postback_app(tracker, secret)
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:

            async def postback(**params: str) -> tuple[int, Any]:
                r = await client.get("/offer/postback", params=params)
                return r.status, await r.json()

            reg = {"secret": secret, "event": "registration", "tg_id": str(ann)}
            assert await postback(**reg, partner_id="P-1") == (200, {"ok": True})
            assert await postback(**reg, partner_id="P-1") == (200, {"ok": True})  # a retry
            dep = {"secret": secret, "event": "deposit", "tg_id": str(ann), "tx_id": "T-9"}
            assert await postback(**dep, amount="25.00", currency="eur") == (200, {"ok": True})
            assert await postback(**dep, amount="25.00", currency="eur") == (200, {"ok": True})

            # Postbacks that can never succeed: refused, nothing buffered.
            status, answer = await postback(**{**reg, "secret": "wrong"}, partner_id="P-2")
            assert status == 403 and answer["ok"] is False
            status, answer = await postback(**dep)  # no amount
            assert status == 400 and "amount" in answer["error"]
            status, answer = await postback(**dep, amount="-5")
            assert status == 400 and "greater than zero" in answer["error"]
            status, answer = await postback(**{**reg, "tg_id": "abc"}, partner_id="P-3")
            assert status == 400
            status, answer = await postback(**{**reg, "event": "refund"}, partner_id="P-4")
            assert status == 400 and "refund" in answer["error"]
        return str(uid)

    uid = with_tracker(space, server, body)
    start = f"start-{ann}"
    # Reported by tg_id alone, attributed to the uid through the bind, each retry a duplicate.
    assert inbox(server, space) == [
        ("contact", uid, ann, start, None),
        ("subscribed", uid, ann, start, None),
        ("registration", uid, ann, "reg-P-1", None),
        ("deposit", uid, ann, "T-9", "25.00"),
    ]
    currency = query(server, "SELECT currency FROM inbox WHERE eid = 'T-9'")
    assert currency == [("EUR",)]


def test_aiogram_offer_callbacks_before_the_bind_are_attributed_when_it_arrives(
    server: Server,
) -> None:
    """The offer may report a registration before the bot has bound the user (say, the
    user registered on a second device first): the server attributes it when the bind comes."""
    mod = example("aiogram_bot")
    space = server.new_space("aiogram-late")
    bot, _ = fake_bot()
    ann = 720_001

    async def body(tracker: AsyncXTracker) -> str:
        await mod.on_offer_registration(tracker, ann, "P-7")
        assert await tracker.flush(20)
        uid = await tracker.new_click(campaign_name="spring")
        await feed(mod.build_dispatcher(tracker), bot, Updates().start(ann, f"/start fb_{uid}"))
        await mod.on_offer_deposit(tracker, ann, "10.50", "USD", "T-1")
        return str(uid)

    uid = with_tracker(space, server, body)
    rows = inbox(server, space)
    assert rows[0] == ("registration", uid, ann, "reg-P-7", None)
    assert ("deposit", uid, ann, "T-1", "10.50") in rows


# --- the python-telegram-bot bot ------------------------------------------------------------


class FakePtbRequest(BaseRequest):
    """python-telegram-bot's HTTP layer, answering like the Bot API and recording each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data is not None else {}
        self.calls.append((name, params))
        result: Any
        if name == "getMe":
            result = {**tg_user(BOT_ID, is_bot=True), "username": "my_offer_bot"}
        elif name == "sendMessage":
            chat_id = int(str(params["chat_id"]))
            result = {
                "message_id": len(self.calls),
                "date": 1_760_000_000,
                "chat": {"id": chat_id, "type": "private"},
                "text": params["text"],
            }
        else:
            raise AssertionError(f"unexpected Bot API call: {name} {params}")
        return 200, json.dumps({"ok": True, "result": result}).encode()


def test_ptb_start_and_offer_callbacks(server: Server) -> None:
    mod = example("ptb_bot")
    space = server.new_space("ptb")
    updates = Updates()
    request = FakePtbRequest()
    errors: list[BaseException] = []
    ann, bob = 730_001, 730_002

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    async def body(tracker: AsyncXTracker) -> str:
        uid = await tracker.new_click(campaign_name="spring")
        app = (
            Application.builder()
            .token("4242:TEST-token-not-real")
            .request(request)
            .get_updates_request(FakePtbRequest())
            .build()
        )
        mod.register(app)
        app.add_error_handler(on_error)
        app.bot_data["tracker"] = tracker
        app.bot_data["offer_url"] = "https://partner.example/reg?sub1={tg_id}"
        async with app:  # initialize (getMe) ... shutdown
            for text, who in [
                (f"/start fb_{uid}", ann),
                (f"/start fb_{uid}", ann),  # again: duplicates
                ("/start", bob),  # organic
                ("/start nonsense!", bob),  # not a valid payload
            ]:
                await app.process_update(PtbUpdate.de_json(updates.start(who, text), app.bot))
        await mod.on_offer_registration(tracker, ann, "P-1")
        await mod.on_offer_deposit(tracker, ann, "99.90", "USD", "T-1")
        await mod.on_offer_deposit(tracker, ann, "99.90", "USD", "T-1")  # the offer retried
        return str(uid)

    uid = with_tracker(space, server, body)
    assert errors == []
    start = f"start-{ann}"
    assert inbox(server, space) == [
        ("contact", uid, ann, start, None),
        ("subscribed", uid, ann, start, None),
        ("registration", uid, ann, "reg-P-1", None),
        ("deposit", uid, ann, "T-1", "99.90"),
    ]
    assert binds(server, space) == [(uid, ann)]
    replies = [p for name, p in request.calls if name == "sendMessage"]
    assert [int(p["chat_id"]) for p in replies] == [ann, ann, bob, bob]
    assert replies[0]["text"].endswith(f"sub1={ann}")


def test_ptb_post_init_and_post_shutdown_own_the_tracker(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``post_init`` creates the tracker from the environment inside PTB's loop, and
    ``post_shutdown`` closes it (a bounded flush)."""
    mod = example("ptb_bot")
    space = server.new_space("ptb-lifecycle")
    monkeypatch.setenv("XTRACKER_URL", server.url)
    monkeypatch.setenv("XTRACKER_BEARER", space.bearer)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the durable spool goes here
    ann = 740_001

    async def run() -> str:
        app = (
            Application.builder()
            .token("4242:TEST-token-not-real")
            .request(FakePtbRequest())
            .get_updates_request(FakePtbRequest())
            .build()
        )
        mod.register(app)
        async with app:
            await mod.post_init(app)
            tracker = app.bot_data["tracker"]
            uid: str = await tracker.new_click(campaign_name="lifecycle")
            upd = PtbUpdate.de_json(Updates().start(ann, f"/start fb_{uid}"), app.bot)
            await app.process_update(upd)
            await mod.post_shutdown(app)
        with pytest.raises(RuntimeError, match="closed"):
            await tracker.contact(uid)
        return uid

    uid = asyncio.run(run())
    assert [r[:3] for r in inbox(server, space)] == [
        ("contact", uid, ann),
        ("subscribed", uid, ann),
    ]
    assert list((tmp_path / "xtracker").glob("spool-*.sqlite3"))


# --- the channel-join bot --------------------------------------------------------------------


FB_INVITE, TT_INVITE = "https://t.me/+FbInvite01", "https://t.me/+TtInvite02"


def test_channel_joins_through_known_invite_links_are_tracked_per_link(server: Server) -> None:
    mod = example("channel_join_bot")
    space = server.new_space("channel")
    for slug, target in [("chan-fb", FB_INVITE), ("chan-tt", TT_INVITE)]:
        server.cli(
            "link", "create", "--space", str(space.id), "--slug", slug,
            "--kind", "channel", "--target", target,
        )  # fmt: skip
    links = mod.ChannelLinks.parse(
        f"chan-fb={FB_INVITE}, chan-tt={TT_INVITE}, ghost=https://t.me/+Gh0st"
    )
    updates = Updates()
    invite = updates.invite
    bot, session = fake_bot()
    ann, bob, cid, dan, eve, fay = 750_001, 750_002, 750_003, 750_004, 750_005, 750_006
    joins = [
        # The bot's own link, seen in full.
        updates.join_request(ann, invite(FB_INVITE, "chan-fb", join_request=True)),
        # Another admin's link: its URL is hidden, its name (the slug) is not.
        updates.join_request(bob, invite("https://t.me/+TtIn...", "chan-tt", join_request=True)),
        # No invite link (a public channel), and a link no XTRACKER link knows: organic.
        updates.join_request(cid, None),
        updates.join_request(dan, invite("https://t.me/+Other999", "promo", join_request=True)),
        # A slug the server doesn't know: new_click is refused, the join still approved.
        updates.join_request(eve, invite("https://t.me/+Gh0st", None, join_request=True)),
        # A join through an ordinary invite link arrives as chat_member.
        updates.member_joined(fay, invite(FB_INVITE, "chan-fb", join_request=False)),
        # The chat_member update after an approved join request is not counted twice,
        updates.member_joined(ann, invite(FB_INVITE, "chan-fb", join_request=True)),
        # and a direct join is organic.
        updates.member_joined(cid, None),
    ]

    async def body(tracker: AsyncXTracker) -> None:
        dp = mod.build_dispatcher(tracker, links)
        for update in joins:
            await feed(dp, bot, update)

    with_tracker(space, server, body)

    approved = [(int(c.chat_id), c.user_id) for c in session.sent(ApproveChatJoinRequest)]
    assert approved == [(CHANNEL_ID, who) for who in (ann, bob, cid, dan, eve)]
    fb = clicks_of_link(server, space, "chan-fb")
    tt = clicks_of_link(server, space, "chan-tt")
    assert len(fb) == 2 and len(tt) == 1
    # Binds of different users may reach the server in any order (requests in flight).
    assert sorted(binds(server, space)) == sorted([(fb[0], ann), (tt[0], bob), (fb[1], fay)])
    assert inbox(server, space) == [
        ("subscribed", fb[0], ann, f"join-{ann}", None),
        ("subscribed", tt[0], bob, f"join-{bob}", None),
        ("subscribed", fb[1], fay, f"join-{fay}", None),
    ]


def test_channel_links_matching_and_invite_creation() -> None:
    mod = example("channel_join_bot")
    links = mod.ChannelLinks.parse(
        "a-very-long-slug-of-forty-characters-xyz=https://t.me/+L0ng, bare"
    )
    invite = functools.partial(Updates.invite, join_request=True)

    def slug(url: str, name: str | None) -> str | None:
        found: str | None = links.slug_for(ChatInviteLink.model_validate(invite(url, name)))
        return found

    assert slug("https://t.me/+L0ng", None) == "a-very-long-slug-of-forty-characters-xyz"
    # Telegram's names stop at 32 characters: a long slug is matched by its first 32.
    assert slug("https://t.me/+L0...", "a-very-long-slug-of-forty-charac") == (
        "a-very-long-slug-of-forty-characters-xyz"
    )
    assert slug("https://t.me/+Bare1...", "bare") == "bare"
    assert slug("https://t.me/+Other", "other") is None
    assert links.slug_for(None) is None

    async def create() -> tuple[str, Any]:
        bot, session = fake_bot()
        url = await mod.create_invite_link(
            bot, "@my_channel", "a-very-long-slug-of-forty-characters-xyz"
        )
        return url, session.sent(CreateChatInviteLink)[0]

    url, call = asyncio.run(create())
    assert url == "https://t.me/+FreshLink0123"
    assert (call.chat_id, call.name, call.creates_join_request) == (
        "@my_channel",
        "a-very-long-slug-of-forty-charac",
        True,
    )


# --- the plain script ------------------------------------------------------------------------


def test_plain_script_runs_against_the_server(server: Server, tmp_path: Path) -> None:
    space = server.new_space("plain")
    env = {
        **os.environ,
        "XTRACKER_URL": server.url,
        "XTRACKER_BEARER": space.bearer,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # where the default spool goes
    }
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "plain_script.py"), "760001", "tx-plain-1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line.split()[0])
    uid = out["uid"]
    assert out["delivered"] == "True"
    assert "sent=3 queued=0 retried=0 dead=0 dropped={}" in proc.stdout
    assert inbox(server, space) == [
        ("contact", uid, 760001, "start-760001", None),
        ("deposit", uid, 760001, "tx-plain-1", "25.00"),
    ]
    assert binds(server, space) == [(uid, 760001)]
    assert query(server, "SELECT campaign_name FROM clicks WHERE uid = ?", uid) == [
        ("plain-script",)
    ]
    assert list((tmp_path / "cache" / "xtracker").glob("spool-*.sqlite3"))


def test_examples_import_without_side_effects(tmp_path: Path) -> None:
    """No configuration, no token, no network: importing an example only defines things."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XTRACKER_", "BOT_TOKEN"))}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    code = (
        "import importlib.util, sys, threading\n"
        "for name in ('aiogram_bot', 'ptb_bot', 'channel_join_bot', 'plain_script'):\n"
        f"    path = {str(EXAMPLES)!r} + f'/{{name}}.py'\n"
        "    spec = importlib.util.spec_from_file_location(name, path)\n"
        "    module = importlib.util.module_from_spec(spec)\n"
        "    sys.modules[name] = module\n"
        "    spec.loader.exec_module(module)\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr
    assert not any(tmp_path.iterdir())  # no spool was created
