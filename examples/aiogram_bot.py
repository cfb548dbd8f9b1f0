"""An aiogram 3 bot that reports its funnel to XTRACKER.

The funnel:

1. An ad leads to an XTRACKER ``bot`` link. The landing page records the click, mints its uid and
   opens ``https://t.me/<bot>?start=fb_<uid>``; Telegram sends the bot ``/start fb_<uid>``.
2. The bot binds the Telegram user to the click (``bind``) and reports ``contact`` and
   ``subscribed``. It then gives the user the offer's link, carrying the user's Telegram id
   (``?sub1={tg_id}``).
3. The offer's server calls this bot's backend when the user registers or deposits
   (``GET /offer/postback?...``). The bot reports ``registration`` and ``deposit`` by ``tg_id``:
   the XTRACKER server finds the click through the bind, even one made after the event.

Every tracker call returns once the event is on disk (a local SQLite spool); a background task
sends it, retrying through outages. Nothing here waits for the XTRACKER server.

Run it::

    pip install -e '.[examples]'   # in a checkout of XTRACKER (it is not on PyPI), or a wheel:
    # python -m build --wheel && pip install "$(ls dist/xtracker-*.whl)[examples]"
    export BOT_TOKEN=123456:ABC... XTRACKER_URL=https://track.example.com XTRACKER_BEARER=xt_sk_...
    export OFFER_URL='https://partner.example/register?sub1={tg_id}' POSTBACK_SECRET=change-me
    python examples/aiogram_bot.py

Its settings, all from the environment (``Settings.from_env``)::

    BOT_TOKEN          the bot's token (required)
    POSTBACK_SECRET    the secret the offer's postbacks carry (required)
    OFFER_URL          the offer's link, {tg_id} replaced (default: a partner.example URL)
    TELEGRAM_API_URL   the Bot API server, e.g. a local telegram-bot-api
                       (default https://api.telegram.org)
    POSTBACK_HOST      where the postback endpoint listens (default 127.0.0.1; 0.0.0.0 in a
                       container that publishes the port)
    POSTBACK_PORT      its port (default 8081)
    XTRACKER_SPOOL     the tracker's spool file; keep it on a volume that outlives the container
                       (default: the client's file in the user's cache directory)
    XTRACKER_URL, XTRACKER_BEARER   read by the client itself (required)

Importing this module has no side effects: ``build_dispatcher`` and ``build_postback_app``
assemble the bot and the postback endpoint, and ``main`` runs them.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message
from aiohttp import web

from xtracker_client import AsyncXTracker, InvalidEventError, Receipt, parse_start_payload

log = logging.getLogger("aiogram_bot")

DEFAULT_OFFER_URL = "https://partner.example/register?sub1={tg_id}"


@dataclass(frozen=True)
class Settings:
    """What this bot reads from the environment (the table in the module's docstring)."""

    bot_token: str
    postback_secret: str
    offer_url: str = DEFAULT_OFFER_URL
    telegram_api_url: str = "https://api.telegram.org"
    postback_host: str = "127.0.0.1"
    postback_port: int = 8081
    spool: str | None = None  # None: the client's default file in the user's cache directory

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            bot_token=env["BOT_TOKEN"],
            postback_secret=env["POSTBACK_SECRET"],
            offer_url=env.get("OFFER_URL") or cls.offer_url,
            telegram_api_url=env.get("TELEGRAM_API_URL") or cls.telegram_api_url,
            postback_host=env.get("POSTBACK_HOST") or cls.postback_host,
            postback_port=int(env.get("POSTBACK_PORT") or cls.postback_port),
            spool=env.get("XTRACKER_SPOOL") or None,
        )


def build_bot(settings: Settings) -> Bot:
    """The bot, talking to the Bot API server of the settings."""
    api = TelegramAPIServer.from_base(settings.telegram_api_url)
    return Bot(settings.bot_token, session=AiohttpSession(api=api))


# --- Telegram: /start ------------------------------------------------------------------------


async def start_from_ad(
    message: Message, command: CommandObject, tracker: AsyncXTracker, offer_url: str
) -> None:
    """``/start fb_<uid>``: the user arrived through an XTRACKER link."""
    user = message.from_user
    uid = parse_start_payload(command.args)
    if user is None or uid is None:  # someone else's payload (or garbage): an organic start
        await start_organic(message, offer_url)
        return
    # The bind goes first: the spool sends items in order, so the server knows the user before
    # it sees the events. The eid makes a second /start with the same link (or Telegram
    # delivering the update again) a duplicate instead of a second contact.
    await tracker.bind(uid, tg_id=user.id)
    await tracker.contact(uid, tg_id=user.id, eid=f"start-{user.id}")
    # Starting the bot subscribes the user to its messages.
    await tracker.subscribed(uid, tg_id=user.id, eid=f"start-{user.id}")
    await message.answer(welcome_text(offer_url, user.id))


async def start_organic(message: Message, offer_url: str) -> None:
    """A plain ``/start``: nothing to attribute, so nothing is reported."""
    if message.from_user is not None:
        await message.answer(welcome_text(offer_url, message.from_user.id))


def welcome_text(offer_url: str, tg_id: int) -> str:
    return f"Welcome! Claim your bonus here: {offer_url.replace('{tg_id}', str(tg_id))}"


def build_router() -> Router:
    router = Router(name="xtracker-funnel")
    # Order matters: the deep-link handler must see "/start <payload>" before the plain one.
    router.message.register(start_from_ad, CommandStart(deep_link=True))
    router.message.register(start_organic, CommandStart())
    return router


def build_dispatcher(tracker: AsyncXTracker, offer_url: str = DEFAULT_OFFER_URL) -> Dispatcher:
    """The bot's dispatcher. ``tracker`` and ``offer_url`` reach the handlers by name, through
    aiogram's workflow data."""
    dp = Dispatcher(tracker=tracker, offer_url=offer_url)
    dp.include_router(build_router())
    return dp


# --- the offer's callbacks -------------------------------------------------------------------


async def on_offer_registration(tracker: AsyncXTracker, tg_id: int, partner_id: str) -> Receipt:
    """The user registered with the offer; ``partner_id`` is the offer's id for the user.

    Reported by ``tg_id`` alone: the server attributes it to the user's latest bind. The eid
    makes the offer's retries duplicates. Report an event the same way every time (here always
    by tg_id): the same eid sent once by tg_id and once by uid would count twice.
    """
    return await tracker.registration(tg_id=tg_id, eid=f"reg-{partner_id}")


async def on_offer_deposit(
    tracker: AsyncXTracker, tg_id: int, amount: str | Decimal, currency: str, tx_id: str
) -> Receipt:
    """A deposit. ``amount`` as the offer sent it ("25.00"); ``tx_id`` is its transaction id."""
    return await tracker.deposit(tg_id=tg_id, value=amount, currency=currency, eid=tx_id)


def build_postback_app(tracker: AsyncXTracker, secret: str) -> web.Application:
    """The endpoint the offer calls::

        GET /offer/postback?secret=S&event=registration&tg_id=777&partner_id=P-1
        GET /offer/postback?secret=S&event=deposit&tg_id=777&amount=25.00&currency=USD&tx_id=T-9

    It answers 200 once the event is safely buffered, so the offer retries anything that did
    not get that far; 400 for a postback that can never succeed (the offer should not retry).
    """

    async def postback(request: web.Request) -> web.Response:
        query = request.query
        if not secret or not hmac.compare_digest(query.get("secret", ""), secret):
            return web.json_response({"ok": False, "error": "forbidden"}, status=403)
        try:
            tg_id = int(query["tg_id"])
            event = query.get("event")
            if event == "registration":
                await on_offer_registration(tracker, tg_id, query["partner_id"])
            elif event == "deposit":
                await on_offer_deposit(
                    tracker, tg_id, query["amount"], query.get("currency", "USD"), query["tx_id"]
                )
            else:
                raise ValueError(f"unknown event {event!r}")
        except KeyError as exc:
            return web.json_response({"ok": False, "error": f"missing {exc}"}, status=400)
        except (ValueError, InvalidEventError) as exc:  # InvalidEventError is a ValueError too
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/offer/postback", postback)
    return app


# --- running it ------------------------------------------------------------------------------


async def main(settings: Settings) -> None:
    bot = build_bot(settings)
    # XTRACKER_URL and XTRACKER_BEARER come from the environment. Leaving the block flushes
    # what is buffered (bounded); anything still unsent stays in the spool for the next start.
    async with AsyncXTracker(spool=settings.spool) as tracker:
        dp = build_dispatcher(tracker, settings.offer_url)
        runner = web.AppRunner(build_postback_app(tracker, settings.postback_secret))
        await runner.setup()
        host, port = settings.postback_host, settings.postback_port
        await web.TCPSite(runner, host, port).start()
        log.info("offer postbacks on http://%s:%d/offer/postback", host, port)
        try:
            await dp.start_polling(bot)  # returns on SIGINT / SIGTERM
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(Settings.from_env()))
