"""An aiogram 3 bot that attributes channel joins to XTRACKER ``channel`` links.

A channel join can't carry a payload, so attribution is per link: every XTRACKER ``channel``
link gets its own invite link of the channel, and the bot (an admin of the channel) sees which
invite link a user joined through. For each tracked join it mints a click for that link
(``new_click(link_slug=...)``), binds the user to it and reports ``subscribed``.

* ``chat_join_request`` (invite links made with ``creates_join_request``): the bot approves the
  request, then reports the join.
* ``chat_member`` (ordinary invite links): a user joined through a known link.
* No invite link (a public channel joined directly) or one we don't know: organic, not tracked.

Setup:

1. Make the bot an admin of the channel with the right to invite users.
2. Create one invite link per XTRACKER link, named after the link's slug::

       python examples/channel_join_bot.py invite @my_channel news-fb
       xtracker link create --space 1 --slug news-fb --kind channel --target https://t.me/+AbC...

   Links the bot creates itself arrive in updates in full; links made by another admin arrive
   with their tail hidden, so those are matched by their name (use the slug as the name).
3. Tell the bot the mapping and run it::

       export BOT_TOKEN=123456:ABC... XTRACKER_BEARER=xt_sk_...
       export XTRACKER_URL=https://track.example.com
       export CHANNEL_LINKS='news-fb=https://t.me/+AbC...,news-tt=https://t.me/+XyZ...'
       python examples/channel_join_bot.py

   ``TELEGRAM_API_URL`` (default ``https://api.telegram.org``) points the bot at another Bot API
   server (a local ``telegram-bot-api``), and ``XTRACKER_SPOOL`` (default: the client's file in
   the user's cache directory) says where the tracker's spool lives: keep it on a volume that
   outlives the container.

Importing this module has no side effects; ``build_dispatcher`` assembles the bot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import JOIN_TRANSITION, ChatMemberUpdatedFilter
from aiogram.types import ChatInviteLink, ChatJoinRequest, ChatMemberUpdated

from xtracker_client import AsyncXTracker, XTrackerError

log = logging.getLogger("channel_join_bot")

#: Telegram's limit on an invite link's name.
MAX_INVITE_NAME = 32


@dataclass(frozen=True)
class ChannelLinks:
    """Which XTRACKER link (slug) an invite link belongs to."""

    urls: Mapping[str, str] = field(default_factory=dict)  # slug -> invite link URL

    @classmethod
    def parse(cls, text: str) -> ChannelLinks:
        """``"news-fb=https://t.me/+AbC,news-tt=https://t.me/+XyZ"`` (a bare slug is matched by
        the invite link's name only)."""
        urls: dict[str, str] = {}
        for part in text.split(","):
            slug, _, url = part.strip().partition("=")
            if slug.strip():
                urls[slug.strip()] = url.strip()
        return cls(urls)

    def slug_for(self, invite: ChatInviteLink | None) -> str | None:
        if invite is None:
            return None  # joined without an invite link: organic
        for slug, url in self.urls.items():
            if url and invite.invite_link == url:
                return slug
        if invite.name:  # another admin's link: its URL is hidden, its name is not
            for slug in self.urls:
                if invite.name == slug[:MAX_INVITE_NAME]:
                    return slug
        return None


async def track_join(
    tracker: AsyncXTracker, links: ChannelLinks, invite: ChatInviteLink | None, tg_id: int
) -> str | None:
    """Report a join through a known invite link; the uid minted for it, or None (organic)."""
    slug = links.slug_for(invite)
    if slug is None:
        return None
    try:
        # new_click needs the server's answer (the uid), so unlike the events it is not
        # buffered: with the server away this join can't be attributed.
        uid = await tracker.new_click(link_slug=slug)
    except XTrackerError:
        log.exception("no click for a join through %r: the join stays unattributed", slug)
        return None
    await tracker.bind(uid, tg_id=tg_id)
    await tracker.subscribed(uid, tg_id=tg_id, eid=f"join-{tg_id}")
    return uid


async def on_join_request(
    request: ChatJoinRequest, tracker: AsyncXTracker, channel_links: ChannelLinks
) -> None:
    # Approve first: the user's join never waits for, or depends on, the tracker.
    await request.approve()
    await track_join(tracker, channel_links, request.invite_link, request.from_user.id)


async def on_member_joined(
    event: ChatMemberUpdated, tracker: AsyncXTracker, channel_links: ChannelLinks
) -> None:
    invite = event.invite_link
    if invite is not None and invite.creates_join_request:
        return  # counted from its join request already
    await track_join(tracker, channel_links, invite, event.new_chat_member.user.id)


def build_router() -> Router:
    router = Router(name="xtracker-channel")
    router.chat_join_request.register(on_join_request)
    router.chat_member.register(on_member_joined, ChatMemberUpdatedFilter(JOIN_TRANSITION))
    return router


def build_dispatcher(tracker: AsyncXTracker, channel_links: ChannelLinks) -> Dispatcher:
    """``tracker`` and ``channel_links`` reach the handlers by name (aiogram workflow data).
    ``start_polling`` asks Telegram for the update types these handlers use, including
    ``chat_member``, which Telegram only sends when asked."""
    dp = Dispatcher(tracker=tracker, channel_links=channel_links)
    dp.include_router(build_router())
    return dp


def build_bot(token: str, telegram_api_url: str = "https://api.telegram.org") -> Bot:
    """The bot, talking to the Bot API server at ``telegram_api_url``."""
    api = TelegramAPIServer.from_base(telegram_api_url)
    return Bot(token, session=AiohttpSession(api=api))


async def create_invite_link(bot: Bot, chat_id: int | str, slug: str) -> str:
    """A new invite link of the channel for the XTRACKER link ``slug`` (join requests on, so
    the bot approves each join and sees where it came from)."""
    link = await bot.create_chat_invite_link(
        chat_id, name=slug[:MAX_INVITE_NAME], creates_join_request=True
    )
    return link.invite_link


async def main(argv: list[str], env: Mapping[str, str] = os.environ) -> None:
    bot = build_bot(env["BOT_TOKEN"], env.get("TELEGRAM_API_URL") or "https://api.telegram.org")
    if argv[:1] == ["invite"] and len(argv) == 3:
        async with bot.session:
            print(await create_invite_link(bot, argv[1], argv[2]))
        return
    links = ChannelLinks.parse(env["CHANNEL_LINKS"])
    # XTRACKER_URL and XTRACKER_BEARER: read by the client from the environment.
    async with AsyncXTracker(spool=env.get("XTRACKER_SPOOL") or None) as tracker:
        await build_dispatcher(tracker, links).start_polling(bot)  # returns on SIGINT / SIGTERM


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(sys.argv[1:]))
