"""A link as the operator creates or changes it: ``LinkSpec``, a pydantic model that validates
and normalises its fields (a bot's username without ``@``, a miniapp's app in its own field,
payloads Telegram would refuse). Only the commands and routes that write a link import it
(and pydantic); the store keeps and answers ``LinkSettings`` (domain/links.py)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from xtracker_server.domain.clicks import UID_LENGTH
from xtracker_server.domain.links import LinkKind, LinkSettings, PayloadTooLong, destination
from xtracker_wire import BOT_USERNAME

__all__ = ["LinkSpec"]

_APP = re.compile(r"[A-Za-z0-9_]{3,64}")
_PREFIX = re.compile(r"[A-Za-z0-9]{1,20}")  # no "_": the first "_" ends the prefix
_CHANNEL_HOSTS = ("t.me", "telegram.me")


def _bot_username(raw: str) -> str:
    name = raw.strip().removeprefix("@")
    for host in ("https://t.me/", "http://t.me/", "t.me/"):
        name = name.removeprefix(host)
    if not BOT_USERNAME.fullmatch(name):
        raise ValueError("must be the bot's username, e.g. my_offer_bot")
    return name


class LinkSpec(BaseModel):
    """A link's definition as created or updated by the operator."""

    model_config = ConfigDict(extra="forbid")

    kind: LinkKind
    target: str = Field(max_length=2048)
    app: str | None = Field(default=None, validate_default=True)
    prefix: str = "fb"
    title: str = Field(default="", max_length=200)
    text: str = Field(default="", max_length=2000)
    button: str = Field(default="Open", max_length=60)
    image_url: str | None = Field(default=None, max_length=2048)
    auto_redirect: bool = False
    redirect_delay_ms: int = Field(default=0, ge=0, le=60_000)
    enabled: bool = True

    @field_validator("target")
    @classmethod
    def _target(cls, raw: str, info: ValidationInfo) -> str:
        kind, target = info.data.get("kind"), raw.strip()
        if kind is None:  # the kind itself was invalid: that is the error to report
            return target
        if kind is LinkKind.BOT:
            return _bot_username(target)
        if kind is LinkKind.MINIAPP:
            bot, slash, app = target.partition("/")
            return _bot_username(bot) + slash + app
        if kind is LinkKind.CHANNEL:
            parts = urlsplit(target)
            if (
                parts.scheme != "https"
                or parts.hostname not in _CHANNEL_HOSTS
                or len(parts.path) < 2
            ):
                raise ValueError("must be the channel's invite link, https://t.me/+…")
            return target
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        if "{uid}" not in target:
            raise ValueError("must contain {uid} where the click id goes, e.g. &click_id={uid}")
        return target

    @field_validator("app")
    @classmethod
    def _app(cls, raw: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("kind") is not LinkKind.MINIAPP:
            return None
        app = (raw or "").strip()
        if not app:  # "bot/app" given as the target
            target = info.data.get("target", "")
            app = target.partition("/")[2]
        if not _APP.fullmatch(app):
            raise ValueError("a miniapp link needs the app's short name (3-64 letters, digits, _)")
        return app

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, raw: str, info: ValidationInfo) -> str:
        if not _PREFIX.fullmatch(raw):
            raise ValueError("must be 1-20 letters or digits (the '_' after it is added)")
        kind = info.data.get("kind")
        if kind in (LinkKind.BOT, LinkKind.MINIAPP) and "target" in info.data:
            # Refuse at creation what Telegram would refuse at every click.
            try:
                destination(kind, info.data["target"], info.data.get("app"), raw, "x" * UID_LENGTH)
            except PayloadTooLong as exc:
                raise ValueError(str(exc)) from None
        return raw

    @field_validator("image_url")
    @classmethod
    def _image(cls, raw: str | None) -> str | None:
        if raw is None or not raw.strip():
            return None
        if urlsplit(raw.strip()).scheme != "https":
            raise ValueError("must be an https:// URL")
        return raw.strip()

    @model_validator(mode="after")
    def _miniapp_target(self) -> LinkSpec:
        if self.kind is LinkKind.MINIAPP:
            self.target = self.target.partition("/")[0]  # the app lives in its own field
        return self

    def destination(self, uid: str) -> str:
        """Where a click with ``uid`` on this link leads."""
        return destination(self.kind, self.target, self.app, self.prefix, uid)

    def settings(self) -> LinkSettings:
        """The validated link, as the store keeps it."""
        return LinkSettings(**dict(self))
