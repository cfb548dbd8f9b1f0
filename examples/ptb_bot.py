"""A python-telegram-bot (v21+) bot that reports its funnel to XTRACKER.

The same funnel as ``aiogram_bot.py``:

1. An ad leads to an XTRACKER ``bot`` link, which opens ``https://t.me/<bot>?start=fb_<uid>``;
   Telegram sends the bot ``/start fb_<uid>``.
2. The bot binds the Telegram user to the click and reports ``contact`` and ``subscribed``,
   then gives the user the offer's link carrying the user's Telegram id (``?sub1={tg_id}``).
3. When the offer reports a registration or a deposit for that Telegram user (its callback
   reaches the bot's backend), ``on_offer_registration`` / ``on_offer_deposit`` report them by
   ``tg_id``: the XTRACKER server finds the click through the bind.

PTB's handlers are coroutines, so the client is ``AsyncXTracker``. It is created in
``post_init`` (inside PTB's event loop) and closed in ``post_shutdown``, which flushes what is
buffered; anything unsent stays in the local spool for the next start.

Run it::

    pip install -e '.[examples]'   # in a checkout of XTRACKER (it is not on PyPI), or a wheel:
    # python -m build --wheel && pip install "$(ls dist/xtracker-*.whl)[examples]"
    export BOT_TOKEN=123456:ABC... XTRACKER_URL=https://track.example.com XTRACKER_BEARER=xt_sk_...
    export OFFER_URL='https://partner.example/register?sub1={tg_id}'
    python examples/ptb_bot.py

Importing this module has no side effects; ``build_application`` assembles the bot.
"""

from __future__ import annotations

import logging
import os
from decimal import Decimal
from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes

from xtracker_client import AsyncXTracker, Receipt, parse_start_payload

log = logging.getLogger("ptb_bot")

DEFAULT_OFFER_URL = "https://partner.example/register?sub1={tg_id}"


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


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add this example's handlers to an application (ours or yours)."""
    application.add_handler(CommandHandler("start", start))


async def post_init(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Runs in PTB's event loop before polling starts. Created inside the loop, the tracker
    starts its sender at once and sends what an earlier run left in the spool.
    XTRACKER_URL and XTRACKER_BEARER come from the environment."""
    application.bot_data["tracker"] = AsyncXTracker()
    application.bot_data["offer_url"] = os.environ.get("OFFER_URL", DEFAULT_OFFER_URL)


async def post_shutdown(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    tracker: AsyncXTracker | None = application.bot_data.get("tracker")
    if tracker is not None:
        await tracker.close(5)  # a bounded flush; the rest stays in the spool for the next start


def build_application(token: str) -> Application[Any, Any, Any, Any, Any, Any]:
    application = (
        Application.builder().token(token).post_init(post_init).post_shutdown(post_shutdown).build()
    )
    register(application)
    return application


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    build_application(os.environ["BOT_TOKEN"]).run_polling()


if __name__ == "__main__":
    main()
