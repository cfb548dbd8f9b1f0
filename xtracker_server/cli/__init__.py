"""The ``xtracker`` command. Scripts depend on these forms and on the ``--json`` shapes.

Every command that touches data takes ``--db`` (or ``XTRACKER_DB``) and works on the file
directly, also while a server runs on it: the server sees a new or rotated key within seconds.

One module per command group (``cli/spaces.py`` is ``xtracker space …``). A command's module is
imported, and its click command built, only when it runs (``xtracker --help`` imports those of
the top-level commands for their docstrings, and none of the groups): a command costs its own
imports, not the whole program's (tests/server/test_cli_imports.py).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup


class Entry(NamedTuple):
    """A top-level command or group: the module under xtracker_server/cli/ and the function (a
    command) or ``typer.Typer`` (a group) in it."""

    module: str
    attribute: str
    #: A group's help, here so that ``xtracker --help`` imports none of the groups (a command's
    #: help is its docstring).
    help: str | None = None


#: In the order ``xtracker --help`` lists them.
COMMANDS: dict[str, Entry] = {
    "tail": Entry("tail", "tail"),
    "erase": Entry("deletion", "erase"),
    "worker": Entry("serve", "worker"),
    "serve": Entry("serve", "serve"),
    "backup": Entry("backup", "backup"),
    "restore": Entry("backup", "restore"),
    "postback": Entry(
        "postbacks", "postback_app", "Partner postbacks: URLs to paste, aliases and the log."
    ),
    "destination": Entry("destinations", "dest_app", "Destinations: where events are delivered."),
    "eventmap": Entry(
        "destinations", "eventmap_app", "Which events a destination gets, and by what name."
    ),
    "outbox": Entry("outbox", "outbox_app", "Deliveries: what was sent where, and what failed."),
    "space": Entry("spaces", "space_app", "Spaces (tenants)."),
    "link": Entry("links", "link_app", "Links: landing pages and redirects that mint clicks."),
    "key": Entry("credentials", "key_app", "Space credentials."),
    "token": Entry(
        "credentials", "token_app", "Named ingest tokens: one per partner network, each revocable."
    ),
    "admin": Entry("credentials", "admin_app", "The operator's admin token."),
    "cost": Entry("costs", "cost_app", "Ad costs: add one, import an Ads Manager export, list."),
    "rate": Entry(
        "costs", "rate_app", "Exchange rates the reports convert costs and revenue with."
    ),
    "report": Entry(
        "reports",
        "report_app",
        "Reports: funnel, per link, grouped, time series, delivery health, costs.",
    ),
}


class _Root(TyperGroup):
    """``xtracker``: builds a command when it is asked for, not all of them at start."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if self._listing and entry.help is not None:  # --help: a name and the first lines
            return TyperGroup(name=cmd_name, help=entry.help)
        target = getattr(importlib.import_module(f"{__name__}.{entry.module}"), entry.attribute)
        if self._listing:
            return TyperCommand(name=cmd_name, help=inspect.getdoc(target))
        if isinstance(target, typer.Typer):
            command: Any = _Group.of(target)  # a group, even of one command
            command.help = entry.help
        else:
            one = typer.Typer(add_completion=False, rich_markup_mode=None)
            one.command(cmd_name)(target)
            command = typer.main.get_command(one)
        command.name = cmd_name
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


class _Group(TyperGroup):
    """A command group (``xtracker link …``) that builds a command when it is asked for: typer
    builds every command of a group, about 3 ms each (inspecting its parameters), 20 ms of
    ``xtracker link list``. Its sub-groups (``postback alias``) are built with it."""

    app: typer.Typer

    @classmethod
    def of(cls, app: typer.Typer) -> _Group:
        shell = typer.Typer(
            cls=cls,
            no_args_is_help=app.info.no_args_is_help,
            add_completion=False,
            rich_markup_mode=app.rich_markup_mode,
            pretty_exceptions_short=app.pretty_exceptions_short,
        )
        shell.registered_groups = app.registered_groups  # the commands: ``get_command``
        group: _Group = typer.main.get_group(shell)  # type: ignore[assignment]
        group.app = app
        return group

    def _commands(self) -> dict[str, Any]:
        # Each command's typer.models.CommandInfo, by its name (as typer names it).
        return {info.name or typer.main.get_command_name(info.callback.__name__): info
                for info in self.app.registered_commands if info.callback is not None}  # fmt: skip

    def list_commands(self, ctx: Any) -> list[str]:
        return list(dict.fromkeys([*self._commands(), *super().list_commands(ctx)]))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        commands = self._commands()
        if cmd_name in commands:
            return self._build(commands[cmd_name])
        found = super().get_command(ctx, cmd_name)  # a sub-group
        if found is None:  # a typo: typer suggests the closest of ``self.commands``
            self.commands.update({name: self._build(info) for name, info in commands.items()})
        return found

    def _build(self, info: Any) -> Any:
        one = typer.Typer(add_completion=False, rich_markup_mode=self.app.rich_markup_mode,
                          pretty_exceptions_short=self.app.pretty_exceptions_short)  # fmt: skip
        one.registered_commands.append(info)
        return typer.main.get_command(one)


app = typer.Typer(
    cls=_Root,
    help="XTRACKER: conversion tracking for Telegram funnels and affiliate offers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help and usage errors, as git's: Rich's boxes import rich.markdown and more, about
    # 0.2 s of every --help and every mistyped option (bench/cli.py). Tables stay Rich's.
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    # A callback makes ``app`` a group although it registers no command itself (_Root does).
    pass


def main() -> None:
    from xtracker_server._gc import for_a_moment

    for_a_moment()  # done already when started by xtracker_server/__main__.py (see _gc.py)
    app(prog_name="xtracker")
