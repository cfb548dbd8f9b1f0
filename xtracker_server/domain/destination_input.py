"""A destination as the operator describes it (``DestinationInput``: the admin API's body or
the CLI's flags), the settings of each kind (pydantic models), and ``prepare_destination``,
which validates one and mints what it needs. Only creating or changing a destination imports
this module (and pydantic): domain/destinations.py re-exports its names lazily."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from xtracker_server.domain.capi import ACTION_SOURCES
from xtracker_server.domain.destinations import (
    DestinationKind,
    PreparedDestination,
    check_url_shape,
    default_event_map,
    new_webhook_secret,
)
from xtracker_wire import EVENT_NAMES

__all__ = [
    "CONFIG_MODELS",
    "KIND_FIELDS",
    "DestinationInput",
    "FbCapiConfig",
    "S2sPostbackConfig",
    "WebhookConfig",
    "prepare_destination",
]


class FbCapiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pixel_id: str = Field(pattern=r"^\d{5,20}$")
    test_event_code: str | None = Field(default=None, max_length=64)
    action_source: str = "website"

    @field_validator("action_source")
    @classmethod
    def _source(cls, raw: str) -> str:
        if raw not in ACTION_SOURCES:
            raise ValueError(f"must be one of {', '.join(sorted(ACTION_SOURCES))}")
        return raw


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048)
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, raw: str) -> str:
        return check_url_shape(raw)

    @field_validator("headers")
    @classmethod
    def _headers(cls, raw: dict[str, str]) -> dict[str, str]:
        reserved = {"content-type", "content-length", "host"} | {
            h for h in (k.lower() for k in raw) if h.startswith("webhook-")
        }
        for name in raw:
            if name.lower() in reserved:
                raise ValueError(f"header {name!r} is set by xtracker")
            if not name.isascii() or not name.replace("-", "").isalnum():
                raise ValueError(f"header name {name!r} is not valid")
        for name, value in raw.items():
            bad = next((c for c in value if not c.isprintable()), None)
            if bad is not None:
                # CR/LF would end the header and start another (header injection); NUL and
                # other control, format or separator characters have no place in a value.
                raise ValueError(
                    f"header {name!r}: its value holds the character U+{ord(bad):04X};"
                    " a header value must be printable text on one line"
                )
        return raw


class S2sPostbackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url_template: str = Field(max_length=4096)
    method: Literal["GET", "POST"] = "GET"
    expected_status: int = Field(default=200, ge=200, le=299)

    @field_validator("url_template")
    @classmethod
    def _template(cls, raw: str) -> str:
        from xtracker_server.domain.s2s import unknown_macros

        check_url_shape(raw.replace("{", "").replace("}", ""))
        unknown = unknown_macros(raw)
        if unknown:
            raise ValueError(f"unknown macro(s) {', '.join(sorted(unknown))}; see docs")
        return raw.strip()


CONFIG_MODELS: dict[DestinationKind, type[BaseModel]] = {
    DestinationKind.FB_CAPI: FbCapiConfig,
    DestinationKind.WEBHOOK: WebhookConfig,
    DestinationKind.S2S_POSTBACK: S2sPostbackConfig,
}


class DestinationInput(BaseModel):
    """A destination as the operator describes it (admin API body or CLI flags)."""

    model_config = ConfigDict(extra="forbid")

    kind: DestinationKind
    name: str = Field(default="", max_length=100)
    enabled: bool = True
    proxy: str | None = Field(default=None, max_length=2048)
    event_map: dict[str, str] | None = None
    # fb_capi
    pixel_id: str | None = None
    access_token: str | None = Field(default=None, max_length=1024)
    test_event_code: str | None = None
    action_source: str | None = None
    # webhook
    url: str | None = None
    method: str | None = None
    headers: dict[str, str] | None = None
    # s2s_postback
    url_template: str | None = None
    expected_status: int | None = None

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, raw: str | None) -> str | None:
        if raw is None or not raw.strip():
            return None
        parts = urlsplit(raw.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be a proxy URL such as http://user:pass@proxy:3128")
        return raw.strip()

    @field_validator("event_map")
    @classmethod
    def _map(cls, raw: dict[str, str] | None) -> dict[str, str] | None:
        if raw is None:
            return None
        unknown = set(raw) - set(EVENT_NAMES)
        if unknown:
            raise ValueError(f"unknown event(s) {', '.join(sorted(unknown))}")
        return raw

    def config(self) -> BaseModel:
        """The kind's settings, validated (raises pydantic's ValidationError naming the field)."""
        fields = KIND_FIELDS[self.kind]
        given = self.model_dump(exclude_none=True)
        stray = [f for f in given if f in _ALL_KIND_FIELDS and f not in fields]
        if stray or (self.kind is not DestinationKind.FB_CAPI and self.access_token):
            name = stray[0] if stray else "access_token"
            raise ValueError(f"{name}: is not a setting of a {self.kind.value} destination")
        return CONFIG_MODELS[self.kind].model_validate({f: given[f] for f in fields if f in given})

    def full_event_map(self) -> dict[str, str]:
        config = {"url_template": self.url_template or ""}
        return {**default_event_map(self.kind, config), **(self.event_map or {})}

    def target_url(self) -> str | None:
        """The URL whose host must be a public address (for the safety check)."""
        if self.kind is DestinationKind.WEBHOOK:
            return self.url
        if self.kind is DestinationKind.S2S_POSTBACK and self.url_template:
            return _MACRO_BRACES.sub("x", self.url_template)
        return None

    def guarded_urls(self) -> list[tuple[str, str]]:
        """``(field, url)`` for every host the address guard checks at creation: the target
        and the proxy."""
        target = self.target_url()
        found = [("url_template" if self.url_template else "url", target)] if target else []
        return found + ([("proxy", self.proxy)] if self.proxy else [])


KIND_FIELDS: dict[DestinationKind, tuple[str, ...]] = {
    DestinationKind.FB_CAPI: ("pixel_id", "test_event_code", "action_source"),
    DestinationKind.WEBHOOK: ("url", "method", "headers"),
    DestinationKind.S2S_POSTBACK: ("url_template", "method", "expected_status"),
}
_ALL_KIND_FIELDS = {f for fields in KIND_FIELDS.values() for f in fields}
_MACRO_BRACES = re.compile(r"\{[A-Za-z0-9_]+\}")


def prepare_destination(inp: DestinationInput) -> PreparedDestination:
    """Validate a new destination and mint what it needs. Raises ValueError (or pydantic's
    ValidationError, which is one) naming the field."""
    config = inp.config().model_dump()
    secret = shown = None
    if inp.kind is DestinationKind.FB_CAPI:
        if not inp.access_token or not inp.access_token.strip():
            raise ValueError("access_token: a fb_capi destination needs the pixel's access token")
        secret = inp.access_token.strip()
        default_name = f"pixel {config['pixel_id']}"
    elif inp.kind is DestinationKind.WEBHOOK:
        secret = shown = new_webhook_secret()
        default_name = f"webhook {urlsplit(config['url']).hostname}"
    else:
        default_name = f"postback {urlsplit(config['url_template']).hostname}"
    return PreparedDestination(
        kind=inp.kind,
        name=inp.name.strip() or default_name,
        enabled=inp.enabled,
        config=config,
        secret=secret,
        shown_secret=shown,
        event_map=inp.full_event_map(),
        proxy=inp.proxy,
    )
