"""The independent oracle for CAPI payloads: the official ``facebook-business`` SDK builds the
same events, and its ``normalize()`` output is what ours must equal."""

from __future__ import annotations

from typing import Any


def sdk_event(
    *,
    event_name: str,
    event_time: int,
    event_id: str,
    event_source_url: str | None,
    user_data: dict[str, Any],
    custom_data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the official SDK's ``Event(...).normalize()`` makes of the same data."""
    from facebook_business.adobjects.serverside.action_source import ActionSource  # type: ignore[import-untyped]
    from facebook_business.adobjects.serverside.custom_data import CustomData  # type: ignore[import-untyped]
    from facebook_business.adobjects.serverside.event import Event  # type: ignore[import-untyped]
    from facebook_business.adobjects.serverside.user_data import UserData  # type: ignore[import-untyped]

    event = Event(
        event_name=event_name,
        event_time=event_time,
        event_id=event_id,
        action_source=ActionSource.WEBSITE,
        event_source_url=event_source_url,
        user_data=UserData(**user_data),
        custom_data=CustomData(**custom_data) if custom_data is not None else None,
    )
    normalized: dict[str, Any] = event.normalize()
    return normalized


def sdk_hash(field: str, value: str) -> str:
    """The SDK's own normalize-and-hash of one user field."""
    from facebook_business.adobjects.serverside.normalize import Normalize  # type: ignore[import-untyped]

    hashed: str = Normalize.normalize_field(field, value)
    return hashed
