"""A python-telegram-bot (v21+) bot that reports its funnel to XTRACKER.

The same funnel as ``aiogram_bot.py``:

1. An ad leads to an XTRACKER ``bot`` link, which opens ``https://t.me/<bot>?start=fb_<uid>``;
   Telegram sends the bot ``/start fb_<uid>``.
2. The bot binds the Telegram user to the click and reports ``contact`` and ``subscribed``,
   then gives the user the offer's link carrying the user's Telegram id (``?sub1={tg_id}``).
3. The offer's server calls this bot's backend when the user registers or deposits
   (``GET /offer/postback?...``). The bot reports ``registration`` and ``deposit`` by ``tg_id``:
   the XTRACKER server finds the click through the bind, even one made after the event.

PTB's handlers are coroutines, so the client is ``AsyncXTracker``. It is created in
``post_init`` (inside PTB's event loop), where the postback endpoint (aiohttp) starts too;
``post_shutdown`` stops the endpoint, then closes the tracker, which flushes what is buffered
(bounded); anything unsent stays in the local spool for the next start.

Run it::

    pip install -e '.[examples]'   # in a checkout of XTRACKER (it is not on PyPI), or a wheel:
    # python -m build --wheel && pip install "$(ls dist/xtracker-*.whl)[examples]"
    export BOT_TOKEN=123456:ABC... XTRACKER_URL=https://track.example.com XTRACKER_BEARER=xt_sk_...
    export OFFER_URL='https://partner.example/register?sub1={tg_id}' POSTBACK_SECRET=change-me
    python examples/ptb_bot.py

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

Importing this module has no side effects: ``build_application`` assembles the bot and
``build_postback_app`` the postback endpoint; ``main`` runs them.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes

from xtracker_client import AsyncXTracker, InvalidEventError, Receipt, parse_start_payload

log = logging.getLogger("ptb_bot")

DEFAULT_OFFER_URL = "https://partner.example/register?sub1={tg_id}"

App = Application[Any, Any, Any, Any, Any, Any]


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


# --- Telegram: /start ------------------------------------------------------------------------


def tracker_of(context: ContextTypes.DEFAULT_TYPE) -> AsyncXTracker:
    tracker: AsyncXTracker = context.bot_data["tracker"]
    return tracker


def welcome_text(offer_url: str, tg_id: int) -> str:
    return f"Welcome! Claim your bonus here: {offer_url.replace('{tg_id}', str(tg_id))}"


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/start`` with or without a payload; ``context.args[0]`` is ``fb_<uid>`` from an ad."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    uid = parse_start_payload(context.args[0]) if context.args else None
    if uid is not None:
        tracker = tracker_of(context)
        # The bind first (the spool keeps order); the eid turns a repeated /start with the same
        # link, or a redelivered update, into a duplicate instead of a second contact.
        await tracker.bind(uid, tg_id=user.id)
        await tracker.contact(uid, tg_id=user.id, eid=f"start-{user.id}")
        # Starting the bot subscribes the user to its messages.
        await tracker.subscribed(uid, tg_id=user.id, eid=f"start-{user.id}")
    # A plain /start (or someone else's payload) is organic: nothing to report.
    offer_url: str = context.bot_data.get("offer_url", DEFAULT_OFFER_URL)
    await message.reply_text(welcome_text(offer_url, user.id))


def register(application: App) -> None:
    """Add this example's handlers to an application (ours or yours)."""
    application.add_handler(CommandHandler("start", start))


# --- the offer's callbacks -------------------------------------------------------------------


async def on_offer_registration(tracker: AsyncXTracker, tg_id: int, partner_id: str) -> Receipt:
    """The user registered with the offer; ``partner_id`` is the offer's id for the user.

    By ``tg_id`` alone (the server attributes it to the user's latest bind), with an eid so the
    offer's retries are duplicates. Report an event the same way every time: the same eid sent
    once by tg_id and once by uid would count twice.
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
    PTB has no web server of its own; aiohttp runs in PTB's event loop, beside the polling.
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


def build_application(settings: Settings) -> App:
    """The bot, talking to the Bot API server of the settings. ``post_init`` creates the
    tracker and starts the postback endpoint in PTB's loop; ``post_shutdown`` stops both."""

    async def post_init(application: App) -> None:
        # Created inside the loop, the tracker starts its sender at once and sends what an
        # earlier run left in the spool. XTRACKER_URL and XTRACKER_BEARER: from the environment.
        tracker = AsyncXTracker(spool=settings.spool)
        application.bot_data["tracker"] = tracker
        application.bot_data["offer_url"] = settings.offer_url
        runner = web.AppRunner(build_postback_app(tracker, settings.postback_secret))
        application.bot_data["postback_runner"] = runner
        await runner.setup()
        host, port = settings.postback_host, settings.postback_port
        await web.TCPSite(runner, host, port).start()
        log.info("offer postbacks on http://%s:%d/offer/postback", host, port)

    async def post_shutdown(application: App) -> None:
        runner: web.AppRunner | None = application.bot_data.get("postback_runner")
        if runner is not None:
            await runner.cleanup()  # no postback can arrive once the tracker is closed
        tracker: AsyncXTracker | None = application.bot_data.get("tracker")
        if tracker is not None:
            await tracker.close()  # flushed until the exit deadline; the rest stays in the spool

    api = settings.telegram_api_url.rstrip("/")
    application = (
        Application.builder()
        .token(settings.bot_token)
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    register(application)
    return application


def main(settings: Settings) -> None:
    build_application(settings).run_polling()  # returns on SIGINT / SIGTERM


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(Settings.from_env())
