"""The flags of ``xtracker serve`` and ``xtracker worker``, made from the fields of ``Settings``.

Nothing here names a setting: a field added to ``Settings`` (config.py) is a flag of ``serve``,
with its variable, default and help, without a change here (``worker=True``: of ``worker`` too).
A flag beats its variable; ``worker`` takes the settings it has no flag for from the environment
(``Settings.from_env``), as ``serve`` has a flag for every one.
"""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import Field, fields
from typing import Annotated, Any

from xtracker_server.cli._common import fail, setting_option
from xtracker_server.config import Settings, env_values, env_var, parse_setting, setting_info


def _cli_type(f: Field[Any], hints: Mapping[str, Any]) -> Any:
    """The flag's type: the field's, or text when config.py parses it (a list, a word in any
    case); then None means "not given"."""
    return str | None if setting_info(f).parse is not None else hints[f.name]


def _cli_default(f: Field[Any]) -> Any:
    """The flag's default: the field's, written as text when config.py parses it (None: the
    default has no text, such as no trusted proxies)."""
    if setting_info(f).parse is None:
        return f.default
    return None if f.default in (None, ()) else str(f.default)


def _value(f: Field[Any], given: Any) -> Any:
    if setting_info(f).parse is not None:
        return parse_setting(f, given)
    if given == "" and f.default is None:  # an empty --public-url (or variable): none
        return None
    return given


def settings_command(
    run: Callable[[Settings], None],
    *,
    worker_only: bool = False,
    more_flags: Mapping[str, Sequence[str]] | None = None,
) -> Callable[..., None]:
    """A command that takes one flag per setting (or per setting the worker reads) and calls
    ``run`` with the ``Settings`` they make. ``more_flags``: other names a flag keeps working
    under. A value ``Settings`` refuses stops the command with its message (exit status 2)."""
    hints = typing.get_type_hints(Settings)
    chosen = [f for f in fields(Settings) if not worker_only or setting_info(f).worker]
    flagged = {env_var(f.name) for f in chosen}
    parameters = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                _cli_type(f, hints), setting_option(f.name, *(more_flags or {}).get(f.name, ()))
            ],
            default=_cli_default(f),
        )
        for f in chosen
    ]

    def command(**given: Any) -> None:
        rest = {k: v for k, v in os.environ.items() if k not in flagged}
        values = {
            f.name: _value(f, given[f.name])
            for f in chosen
            if not (given[f.name] is None and setting_info(f).parse is not None)
        }
        try:
            settings = Settings(**{**env_values(rest), **values})
        except ValueError as exc:
            fail(str(exc))  # one line: scripts and tests read it whole
        run(settings)

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__name__ = run.__name__.lstrip("_")
    command.__qualname__ = command.__name__
    command.__doc__ = run.__doc__
    command.__module__ = run.__module__
    return command
