"""The examples in ``examples/``, run against a fake Telegram and the real XTRACKER.

Telegram is a fake Bot API server on loopback (``tests/fake_bot_api.py``): the bots reach it
over HTTP, through the Bot API URL of their settings, as they reach Telegram. Everything on the
XTRACKER side is real: the app with its SQLite file, read back with sqlite3, served on loopback
from this process (``AppServer``: the bots reach it over HTTP as they reach ``xtracker serve``;
what only a ``serve`` process shows is tested in tests/e2e and tests/server). Each bot
runs twice over: as a process (``python examples/<bot>.py``, the whole funnel from the ad's
click to the deposit, then the tracker down and SIGTERM), and in this process, fed updates one
by one, for the cases one at a time.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import TLS_VERIFY, AppServer, Server, ServerFactory, SpaceKeys, free_port
from tests.databases import migrated
from tests.fake_bot_api import BOT_ID, TOKEN, FakeBotAPI
from xtracker_client import AsyncXTracker, Backoff
from xtracker_client._exit import DEFAULT_EXIT_TIMEOUT_S

if TYPE_CHECKING:
    from aiogram import Bot
    from telegram.ext import ContextTypes

# aiogram and python-telegram-bot are imported by the tests that use them, not here: importing
# them costs seconds of CPU, and every pytest-xdist worker collects this module.

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FAST = Backoff(base_s=0.05, cap_s=0.3)
CHANNEL_ID = -1001234567890
PHONE = {"User-Agent": "Mozilla/5.0 (Linux; Android 13) Chrome/120 Mobile Safari/537.36"}
#: A bound on what takes a second or two (a bot's start, its exit): it only catches a hang.
HANG_S = 60.0
#: What `docker stop` waits after SIGTERM before it kills the process.
DOCKER_GRACE_S = 10.0
#: The exit deadline the bots of the grace period test are given (the default is 3 s).
EXIT_S = 1.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real app for this module, as a bot's operator serves it, in this process."""
    server = AppServer(db=migrated(tmp_path_factory.mktemp("serve") / "xtracker.db"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def telegram() -> Iterator[FakeBotAPI]:
    fake = FakeBotAPI()
    yield fake
    fake.close()
    assert fake.unexpected == [], "the bot called Bot API methods the fake does not know"


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


def click_through_landing(server: Server, space: SpaceKeys, slug: str) -> str:
    """A phone opens a ``bot`` link's redirect, as after an ad; the ``start`` payload of the
    ``t.me`` link it is sent to (``fb_<uid>``)."""
    server.cli(
        "link", "create", "--space", str(space.id), "--slug", slug,
        "--kind", "bot", "--target", "my_offer_bot",
    )  # fmt: skip
    r = httpx.get(
        f"{server.url}/r/{slug}?fbclid=IwAR-{slug}", verify=TLS_VERIFY, headers=PHONE, timeout=10
    )
    assert r.status_code == 302, r.text
    location = urlsplit(r.headers["location"])
    assert location.netloc == "t.me" and location.path == "/my_offer_bot", location
    payload = parse_qs(location.query)["start"][0]
    assert payload.startswith("fb_")
    return payload


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


# --- Telegram's updates ----------------------------------------------------------------------


def tg_user(tg_id: int, *, is_bot: bool = False) -> dict[str, Any]:
    return {"id": tg_id, "is_bot": is_bot, "first_name": f"user{tg_id}"}


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
    from aiogram.types import Update as AiogramUpdate

    await dp.feed_update(bot, AiogramUpdate.model_validate(data, context={"bot": bot}))


def replies(telegram: FakeBotAPI) -> list[tuple[int, str]]:
    """(chat, offer link) of each message the bot sent."""
    return [(int(m["chat_id"]), m["text"].rsplit(" ", 1)[-1]) for m in telegram.sent("sendMessage")]


# --- the bots as processes ------------------------------------------------------------------


class BotProcess:
    """``python examples/<name>.py`` with the environment a deployment gives it: the fake Bot
    API's URL, the XTRACKER server and bearer, a spool file and a postback address of its own.
    The default cache directory is an empty one of the test's, so a spool that ignored
    ``XTRACKER_SPOOL`` would show there."""

    def __init__(
        self,
        name: str,
        tmp_path: Path,
        telegram: FakeBotAPI,
        server: Server,
        space: SpaceKeys,
        **extra_env: str,
    ) -> None:
        self.spool = tmp_path / "state" / "bot-spool.sqlite3"
        self.cache = tmp_path / "cache"
        self.cache.mkdir()
        # 127.0.0.2 is loopback too: a bot listening on 0.0.0.0 or 127.0.0.1 instead of the
        # configured host is told apart by where it answers.
        self.postback_at = ("127.0.0.2", free_port())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XTRACKER_", "BOT_"))}
        env.update(
            BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=telegram.url,
            XTRACKER_URL=server.url,
            XTRACKER_BEARER=space.bearer,
            XTRACKER_SPOOL=str(self.spool),
            XDG_CACHE_HOME=str(self.cache),
            POSTBACK_HOST=self.postback_at[0],
            POSTBACK_PORT=str(self.postback_at[1]),
            POSTBACK_SECRET="postback-secret",
            OFFER_URL="https://partner.example/reg?sub1={tg_id}",
            PYTHONPATH=str(ROOT),
        )
        env.update(extra_env)
        self.spool.parent.mkdir()
        self.log = tmp_path / f"{name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(EXAMPLES / f"{name}.py")],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,
            )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_polling(self, telegram: FakeBotAPI) -> None:
        """Until the bot polls Telegram: its start is over (the postback endpoint is up)."""
        telegram.wait_for("getUpdates", timeout=HANG_S)
        assert self.proc.poll() is None, self.log_text()
        assert telegram.sent("getUpdates"), f"the bot never polled: {self.log_text()}"

    def postback(self, **params: str) -> tuple[int, Any]:
        host, port = self.postback_at
        r = httpx.get(
            f"http://{host}:{port}/offer/postback", verify=TLS_VERIFY, params=params, timeout=10
        )
        return r.status_code, r.json()

    def terminate(self) -> int:
        """SIGTERM, as ``docker stop`` sends; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(HANG_S)
            raise AssertionError(f"the bot did not exit on SIGTERM: {self.log_text()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(HANG_S)


@pytest.fixture
def bot_process(
    tmp_path: Path, telegram: FakeBotAPI, server: Server
) -> Iterator[Callable[..., BotProcess]]:
    started: list[BotProcess] = []

    def start(
        name: str, space: SpaceKeys, tracker: Server | None = None, **extra_env: str
    ) -> BotProcess:
        """The bot, reporting to ``tracker`` (the module's server unless given)."""
        bot = BotProcess(name, tmp_path, telegram, tracker or server, space, **extra_env)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.kill()


def wait_until(check: Callable[[], bool], what: str, timeout: float = HANG_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)  # another process's database: no event to wait on


def refused(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(5)
        return s.connect_ex((host, port)) != 0


def test_channel_join_bot_reports_a_join_through_a_known_invite_link(
    server: Server, telegram: FakeBotAPI, bot_process: Callable[..., BotProcess]
) -> None:
    """The channel bot as a process: it approves a join request through the link's invite
    link, mints a click for that link, binds the user and reports ``subscribed``."""
    space = server.new_space("channel-process")
    invite_url = "https://t.me/+ProcInvite01"
    server.cli(
        "link", "create", "--space", str(space.id), "--slug", "chan-proc",
        "--kind", "channel", "--target", invite_url,
    )  # fmt: skip
    ann = 790_001
    bot = bot_process("channel_join_bot", space, CHANNEL_LINKS=f"chan-proc={invite_url}")
    bot.wait_polling(telegram)

    invite = Updates.invite(invite_url, "chan-proc", join_request=True)
    telegram.push(Updates().join_request(ann, invite))
    telegram.wait_for("approveChatJoinRequest", 1, timeout=HANG_S)
    wait_until(lambda: bool(inbox(server, space)), "the join reported")  # then stop the bot

    assert bot.terminate() == 0, bot.log_text()
    [uid] = clicks_of_link(server, space, "chan-proc")
    assert binds(server, space) == [(uid, ann)]
    assert inbox(server, space) == [("subscribed", uid, ann, f"join-{ann}", None)]
    approved = telegram.sent("approveChatJoinRequest")
    assert [(int(c["chat_id"]), int(c["user_id"])) for c in approved] == [(CHANNEL_ID, ann)]
    # It asked Telegram for the update types its handlers use; chat_member only comes if asked.
    allowed = telegram.sent("getUpdates")[0].get("allowed_updates") or []
    assert set(allowed) == {"chat_join_request", "chat_member"}, allowed
    assert bot.spool.exists()
    assert list(bot.cache.iterdir()) == []


@pytest.mark.parametrize("name", ["aiogram_bot", "ptb_bot"])
def test_bot_settings_come_from_the_environment_with_safe_defaults(name: str) -> None:
    settings_of = example(name).Settings.from_env
    required = {"BOT_TOKEN": TOKEN, "POSTBACK_SECRET": "s3cret"}
    defaults = settings_of(required)
    # Listening on loopback unless told otherwise; the client's own spool; Telegram itself.
    assert (defaults.postback_host, defaults.postback_port) == ("127.0.0.1", 8081)
    assert defaults.spool is None
    assert defaults.telegram_api_url == "https://api.telegram.org"
    given = settings_of(
        {
            **required,
            "TELEGRAM_API_URL": "http://127.0.0.1:8999",
            "POSTBACK_HOST": "0.0.0.0",
            "POSTBACK_PORT": "9000",
            "XTRACKER_SPOOL": "/var/lib/bot/spool.sqlite3",
            "OFFER_URL": "https://offer.example/?s={tg_id}",
        }
    )
    assert (given.telegram_api_url, given.postback_host, given.postback_port) == (
        "http://127.0.0.1:8999",
        "0.0.0.0",
        9000,
    )
    assert (given.spool, given.offer_url) == (
        "/var/lib/bot/spool.sqlite3",
        "https://offer.example/?s={tg_id}",
    )
    with pytest.raises(KeyError, match="POSTBACK_SECRET"):
        settings_of({"BOT_TOKEN": TOKEN})


# --- the aiogram bot, update by update --------------------------------------------------------


def aiogram_settings(mod: ModuleType, telegram: FakeBotAPI) -> Any:
    return mod.Settings(
        bot_token=TOKEN, postback_secret="postback-secret", telegram_api_url=telegram.url
    )


def test_aiogram_start_binds_and_reports_contact_and_subscribed(
    server: Server, telegram: FakeBotAPI
) -> None:
    mod = example("aiogram_bot")
    space = server.new_space("aiogram-start")
    updates = Updates()
    ann, bob, cid = 700_001, 700_002, 700_003

    async def body(tracker: AsyncXTracker) -> str:
        uid = await tracker.new_click(campaign_name="spring")  # as the landing page would
        dp = mod.build_dispatcher(tracker, "https://partner.example/reg?sub1={tg_id}")
        bot = mod.build_bot(aiogram_settings(mod, telegram))
        async with bot.session:
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
    assert replies(telegram) == [
        (ann, f"https://partner.example/reg?sub1={ann}"),
        (ann, f"https://partner.example/reg?sub1={ann}"),
        (bob, f"https://partner.example/reg?sub1={bob}"),
        (cid, f"https://partner.example/reg?sub1={cid}"),
    ]


@pytest.mark.parametrize("name", ["aiogram_bot", "ptb_bot"])
def test_offer_postbacks_report_registration_and_deposit_by_tg_id(
    name: str, server: Server
) -> None:
    mod = example(name)
    space = server.new_space(f"{name}-offer")
    ann = 710_001
    secret = "postback-secret"
    from aiohttp import test_utils  # (its TestClient imported by name would look like a test)

    async def body(tracker: AsyncXTracker) -> str:
        uid = await tracker.new_click(campaign_name="spring")
        await tracker.bind(uid, tg_id=ann)  # what the bot's /start did
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
    # Reported by tg_id alone, attributed to the uid through the bind, each retry a duplicate.
    assert inbox(server, space) == [
        ("registration", uid, ann, "reg-P-1", None),
        ("deposit", uid, ann, "T-9", "25.00"),
    ]
    currency = query(
        server, "SELECT currency FROM inbox WHERE eid = 'T-9' AND space_id = ?", space.id
    )
    assert currency == [("EUR",)]


def test_aiogram_offer_callbacks_before_the_bind_are_attributed_when_it_arrives(
    server: Server, telegram: FakeBotAPI
) -> None:
    """The offer may report a registration before the bot has bound the user (say, the
    user registered on a second device first): the server attributes it when the bind comes."""
    mod = example("aiogram_bot")
    space = server.new_space("aiogram-late")
    ann = 720_001

    async def body(tracker: AsyncXTracker) -> str:
        await mod.on_offer_registration(tracker, ann, "P-7")
        assert await tracker.flush(20)
        uid = await tracker.new_click(campaign_name="spring")
        bot = mod.build_bot(aiogram_settings(mod, telegram))
        async with bot.session:
            start = Updates().start(ann, f"/start fb_{uid}")
            await feed(mod.build_dispatcher(tracker), bot, start)
        await mod.on_offer_deposit(tracker, ann, "10.50", "USD", "T-1")
        return str(uid)

    uid = with_tracker(space, server, body)
    rows = inbox(server, space)
    assert rows[0] == ("registration", uid, ann, "reg-P-7", None)
    assert ("deposit", uid, ann, "T-1", "10.50") in rows


# --- the python-telegram-bot bot, update by update --------------------------------------------


def test_ptb_start_and_offer_callbacks(server: Server, telegram: FakeBotAPI) -> None:
    mod = example("ptb_bot")
    space = server.new_space("ptb")
    updates = Updates()
    errors: list[BaseException] = []
    ann, bob = 730_001, 730_002
    from telegram import Update as PtbUpdate

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    async def body(tracker: AsyncXTracker) -> str:
        uid = await tracker.new_click(campaign_name="spring")
        settings = mod.Settings(
            bot_token=TOKEN,
            postback_secret="postback-secret",
            telegram_api_url=telegram.url,
            offer_url="https://partner.example/reg?sub1={tg_id}",
        )
        app = mod.build_application(settings)
        app.add_error_handler(on_error)
        app.bot_data["tracker"] = tracker  # what post_init does in run_polling
        app.bot_data["offer_url"] = settings.offer_url
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
    assert telegram.sent("getMe")  # through the configured Bot API URL
    assert replies(telegram) == [
        (ann, f"https://partner.example/reg?sub1={ann}"),
        (ann, f"https://partner.example/reg?sub1={ann}"),
        (bob, f"https://partner.example/reg?sub1={bob}"),
        (bob, f"https://partner.example/reg?sub1={bob}"),
    ]


# --- the channel-join bot --------------------------------------------------------------------


FB_INVITE, TT_INVITE = "https://t.me/+FbInvite01", "https://t.me/+TtInvite02"


def test_channel_joins_through_known_invite_links_are_tracked_per_link(
    server: Server, telegram: FakeBotAPI
) -> None:
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
        bot = mod.build_bot(TOKEN, telegram.url)
        async with bot.session:
            for update in joins:
                await feed(dp, bot, update)

    with_tracker(space, server, body)

    approved = [
        (int(c["chat_id"]), int(c["user_id"])) for c in telegram.sent("approveChatJoinRequest")
    ]
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


def test_channel_links_matching_and_invite_creation(telegram: FakeBotAPI) -> None:
    mod = example("channel_join_bot")
    links = mod.ChannelLinks.parse(
        "a-very-long-slug-of-forty-characters-xyz=https://t.me/+L0ng, bare"
    )
    invite = functools.partial(Updates.invite, join_request=True)
    from aiogram.types import ChatInviteLink

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

    # The `invite` command, as the operator runs it, against the Bot API of TELEGRAM_API_URL.
    env = {"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url}
    argv = ["invite", "@my_channel", "a-very-long-slug-of-forty-characters-xyz"]
    asyncio.run(mod.main(argv, env))
    [call] = telegram.sent("createChatInviteLink")
    assert (call["chat_id"], call["name"], call["creates_join_request"]) == (
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
        "XTRACKER_SPOOL": str(tmp_path / "state" / "script-spool.sqlite3"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # where the default spool would go
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
    # The spool is the file XTRACKER_SPOOL names (its directory made), not the default one.
    assert (tmp_path / "state" / "script-spool.sqlite3").exists()
    assert not (tmp_path / "cache").exists()


def test_examples_import_without_side_effects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """No configuration, no token, no network: importing an example only defines things (no
    thread, no file, no output, no warning). In this process: each example is executed anew
    (a fresh process would only add the import of aiogram, seconds of CPU, which is not what
    is tested; a warning at that import fails the first test that imports it)."""
    for variable in list(os.environ):
        if variable.startswith(("XTRACKER_", "BOT_TOKEN")):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    threads = set(threading.enumerate())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("aiogram_bot", "ptb_bot", "channel_join_bot", "plain_script"):
            spec = importlib.util.spec_from_file_location(
                f"xtracker_example_fresh_{name}", EXAMPLES / f"{name}.py"
            )
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses look their module up
            try:
                spec.loader.exec_module(module)
            finally:
                del sys.modules[spec.name]
    assert set(threading.enumerate()) <= threads, threading.enumerate()
    assert capfd.readouterr() == ("", "")
    assert not any(tmp_path.iterdir())  # no spool was created


@pytest.mark.parametrize("name", ["aiogram_bot", "ptb_bot"])
def test_a_bot_reports_the_whole_funnel_then_exits_within_dockers_grace_period_tracker_down(
    name: str,
    start_app: ServerFactory,
    telegram: FakeBotAPI,
    bot_process: Callable[..., BotProcess],
) -> None:
    """The ad's click, ``/start fb_<uid>`` from Telegram, the offer's registration and deposit
    postbacks: each reported, attributed to the click. Then the tracker goes away (its server
    stops: nothing listens at its URL), another user's ``/start`` is handled and buffered, and
    ``docker stop`` sends SIGTERM and kills 10 s later: the bot still exits by itself, within
    the clients' shared exit deadline (3 s by default), and what it could not send stays in
    its spool file. One process for both (each bot process costs seconds of CPU to start).

    The bot runs with a deadline of 1 s (XTRACKER_EXIT_TIMEOUT): the time it takes beyond its
    deadline, added to the default deadline, must fit in Docker's grace period."""
    server = start_app()  # the bot's own: it is stopped midway
    space = server.new_space(f"{name}-process")
    slug = f"{name.replace('_', '-')}-ad"
    payload = click_through_landing(server, space, slug)
    uid = payload.removeprefix("fb_")
    ann, bea = 780_001, 780_002
    updates = Updates()
    bot = bot_process(name, space, tracker=server, XTRACKER_EXIT_TIMEOUT=str(EXIT_S))
    bot.wait_polling(telegram)

    telegram.push(updates.start(ann, f"/start {payload}"))
    telegram.wait_for("sendMessage", 1, timeout=HANG_S)
    assert replies(telegram) == [(ann, f"https://partner.example/reg?sub1={ann}")], bot.log_text()

    reg = {"secret": "postback-secret", "event": "registration", "tg_id": str(ann)}
    assert bot.postback(**reg, partner_id="P-1") == (200, {"ok": True})
    dep = {"secret": "postback-secret", "event": "deposit", "tg_id": str(ann), "tx_id": "T-9"}
    assert bot.postback(**dep, amount="25.00", currency="USD") == (200, {"ok": True})
    assert bot.postback(**dep)[0] == 400  # no amount: refused, the offer should not retry
    # The endpoint listens where POSTBACK_HOST says, and nowhere else.
    assert refused("127.0.0.1", bot.postback_at[1])

    start = f"start-{ann}"
    wait_until(lambda: len(inbox(server, space)) >= 4, f"the funnel reported: {bot.log_text()}")
    # Events of one user may arrive in any order (batches in flight): attribution is the point.
    assert sorted(inbox(server, space)) == sorted(
        [
            ("contact", uid, ann, start, None),
            ("subscribed", uid, ann, start, None),
            ("registration", uid, ann, "reg-P-1", None),
            ("deposit", uid, ann, "T-9", "25.00"),
        ]
    ), bot.log_text()
    assert binds(server, space) == [(uid, ann)]
    assert clicks_of_link(server, space, slug) == [uid]

    server.stop()  # the tracker is down
    assert refused("127.0.0.1", server.port)
    telegram.push(updates.start(bea, "/start fb_someone"))
    telegram.wait_for("sendMessage", 2, timeout=HANG_S)  # handled: its events are buffered
    assert len(replies(telegram)) == 2, bot.log_text()
    started = time.monotonic()
    assert bot.terminate() == 0, bot.log_text()
    took = time.monotonic() - started
    assert took >= EXIT_S, f"{took:.1f} s to exit: {bot.log_text()}"  # it waited its deadline
    with_default = took - EXIT_S + DEFAULT_EXIT_TIMEOUT_S
    assert with_default < DOCKER_GRACE_S, f"{took:.1f} s to exit: {bot.log_text()}"
    # The spool is the file XTRACKER_SPOOL names; none was made in the default place.
    assert bot.spool.exists()
    pending = sqlite3.connect(bot.spool).execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert pending >= 2, bot.log_text()  # contact and subscribed, kept for the next start
    assert list(bot.cache.iterdir()) == []
    # It polled the fake over HTTP with the configured token (a wrong one would be a 401).
    assert telegram.sent("getMe")
