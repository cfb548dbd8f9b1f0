"""What a bot imports: the pinned public surface, one exception tree, and the old import path of
the names that moved to ``xtracker_wire``."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import re
from pathlib import Path

import pytest
import respx

import xtracker_client
import xtracker_wire
from xtracker_client import (
    AsyncXTracker,
    ClientClosedError,
    ConfigurationError,
    DeeplinkError,
    XTracker,
    XTrackerError,
    deeplink,
)
from xtracker_client import _exceptions as exceptions_module

URL = "http://xt.test"
ROOT = Path(__file__).resolve().parents[2]
MOVED = [
    "CANONICAL_EVENTS",
    "BindIn",
    "ClickIn",
    "EventIn",
    "check_currency",
    "check_occurred_at_ms",
    "check_plain_text",
    "decimal_text",
    "parse_value",
]


def test_the_public_surface_is_what_a_bot_uses() -> None:
    assert sorted(xtracker_client.__all__) == sorted(
        [
            "APIError",
            "Answer",
            "AsyncRecordingXTracker",
            "AsyncXTracker",
            "Backoff",
            "CanonicalEvent",
            "ClientClosedError",
            "ConfigurationError",
            "DeadLetter",
            "DeeplinkError",
            "DeliveryError",
            "FlushResult",
            "InvalidEventError",
            "Receipt",
            "RecordedCall",
            "RecordingXTracker",
            "SpoolFullError",
            "Stats",
            "TransportError",
            "XTracker",
            "XTrackerError",
            "__version__",
            "deeplink",
            "parse_start_payload",
            "set_exit_timeout",
        ]
    )
    for name in xtracker_client.__all__:
        assert hasattr(xtracker_client, name)
    assert xtracker_client.CanonicalEvent is xtracker_wire.CanonicalEvent
    assert xtracker_client.__version__ == xtracker_wire.__version__


@pytest.mark.parametrize("name", MOVED)
def test_a_name_moved_to_the_wire_package_still_imports_with_a_warning(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"xtracker_client.{name} .*xtracker_wire"):
        moved = getattr(xtracker_client, name)
    assert moved is getattr(xtracker_wire, name)


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'EventOut'"):
        xtracker_client.EventOut  # noqa: B018


def _exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in a module of the package."""
    found = []
    for info in pkgutil.iter_modules(xtracker_client.__path__, "xtracker_client."):
        module = importlib.import_module(info.name)
        found += [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, BaseException)
            and value.__module__ == info.name
        ]
    return found


def test_every_exception_the_client_defines_is_an_xtracker_error() -> None:
    classes = _exception_classes()
    assert len(classes) >= 8
    assert [c.__qualname__ for c in classes if not issubclass(c, XTrackerError)] == []


def _drawn(text: str) -> set[str]:
    """The class names of an error tree drawn with ├── and └──."""
    return set(re.findall(r"[├└]── (\w+)", text))


def test_the_drawn_trees_name_every_public_exception() -> None:
    public = {
        name
        for name in xtracker_client.__all__
        if isinstance(getattr(xtracker_client, name), type)
        and issubclass(getattr(xtracker_client, name), BaseException)
    }
    docs = (ROOT / "docs" / "client.md").read_text(encoding="utf-8")
    errors_section = docs.split("## Errors", 1)[1].split("\n## ", 1)[0]
    assert {"XTrackerError", *_drawn(exceptions_module.__doc__ or "")} == public
    assert {"XTrackerError", *_drawn(errors_section)} == public


def test_bad_bounds_are_a_configuration_error_and_still_a_value_error() -> None:
    for bad in ({"max_rows": 0}, {"max_bytes": 10}, {"drop_policy": "drop_all"}):
        with pytest.raises(ConfigurationError):
            XTracker(URL, "xt_sk_test", in_memory=True, **bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            AsyncXTracker(URL, "xt_sk_test", in_memory=True, **bad)  # type: ignore[arg-type]


def test_a_call_on_a_closed_client_is_client_closed_and_still_a_runtime_error() -> None:
    with respx.mock(base_url=URL):  # nothing may reach the network
        xt = XTracker(URL, "xt_sk_test", in_memory=True)
        xt.close(0)
        with pytest.raises(ClientClosedError, match="closed"):
            xt.contact("u1")
        with pytest.raises(RuntimeError):
            xt.bind("u1", tg_id=42)

        async def closed_async() -> None:
            axt = AsyncXTracker(URL, "xt_sk_test", in_memory=True)
            await axt.close(0)
            with pytest.raises(ClientClosedError, match="closed"):
                await axt.deposit("u1", "10.00")
            with pytest.raises(RuntimeError):
                await axt.contact("u1")

        asyncio.run(closed_async())


@pytest.mark.parametrize(
    ("bot", "uid", "prefix"),
    [("x", "u", "fb"), ("offer_bot", "u", "f_b"), ("offer_bot", "x" * 62, "fb")],
)
def test_what_telegram_refuses_in_a_deeplink_is_a_deeplink_error_and_still_a_value_error(
    bot: str, uid: str, prefix: str
) -> None:
    with pytest.raises(DeeplinkError) as refused:
        deeplink(bot, uid, prefix)
    assert isinstance(refused.value, ValueError)
    assert isinstance(refused.value, XTrackerError)
