"""What the commands share: the ``--db``/``--json``/``--space`` options, the consoles, the one
way to fail, running a service as the operator on the database file (``run``) and saying what
it refused (``refused``).

Imported by every command, so it imports little: rich, the store and the domain are imported by
the functions that use them (a command costs only what it needs; tests/server/test_cli_imports.py).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from xtracker_server._gc import for_a_moment as for_a_moment  # cli/__init__.py's main
from xtracker_server._gc import runs_on as runs_on  # serve, worker, tail
from xtracker_server.config import Settings, env_var, flag, setting_info
from xtracker_server.domain.query import MAX_WHOLE

if TYPE_CHECKING:
    from rich.console import Console

    from xtracker_server.services import ServiceError
    from xtracker_server.services.context import Context

T = TypeVar("T")


class _Console:
    """A rich ``Console`` made on first use: ``--json`` output needs none, and importing rich
    is a good part of a command's start-up."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def print(self, *objects: Any, **options: Any) -> None:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        self._console.print(*objects, **options)


out = _Console(stderr=False)
err = _Console(stderr=True)


def group(help: str | None = None) -> typer.Typer:
    """A command group. A top-level one (``xtracker space …``) has its help in cli/__init__.py,
    and is built on its own when run: it must not add the shell-completion options of an app."""
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, rich_markup_mode=None)


def setting_option(name: str, *more_flags: str, help: str | None = None) -> Any:
    """The option of the setting ``name`` of ``Settings``: its flag (``--name``, or
    ``--name/--no-name`` for on/off), its variable and its help, as config.py defines them."""
    (f,) = (f for f in fields(Settings) if f.name == name)
    info = setting_info(f)
    decl = flag(name)
    if isinstance(f.default, bool):
        decl = f"{decl}/--no-{decl[2:]}"
    return typer.Option(
        decl,
        *more_flags,
        envvar=env_var(name),
        help=help or info.help,
        show_default=f.default not in (None, ()),
    )


#: ``./xtracker.db``, the default of ``--db`` (and of XTRACKER_DB) in every command.
DEFAULT_DB: str = Settings.db

DbOption = Annotated[str, setting_option("db")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable, for scripts).")]
SpaceOption = Annotated[int, typer.Option("--space", min=1, max=MAX_WHOLE, help="The space id.")]
SlugOption = Annotated[str, typer.Option("--slug", help="The link's slug (its URL path).")]
DestinationOption = Annotated[
    int, typer.Option("--id", "--destination", min=1, max=MAX_WHOLE, help="Destination id.")
]
PublicUrlOption = Annotated[
    str | None,
    setting_option("public_url", help="Base of the printed URLs (default http://HOST:PORT)."),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Say what is wrong (and what to do) on stderr, one line, and exit with ``code``: 2 for a
    wrong argument, 1 for what the database says (no such space, a name taken …)."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def no_space(space: int) -> NoReturn:
    fail(f"no space {space} (see `xtracker space list`)", 1)


def run(
    db: str,
    call: Callable[[Context], Awaitable[T]],
    *,
    create: bool = False,
    settings: Settings | None = None,
    flags: Mapping[str, str] | Callable[[str], str] | None = None,
    hints: Mapping[str, str] | None = None,
    loop: bool = False,
) -> T:
    """Run ``call`` (a service, as ``OPERATOR``) on a Context of its own on the file ``db``
    (``settings``, if given, must have ``db``); a refusal ends the command (``refused``, with
    ``flags`` naming the options of the service's fields and ``hints`` its next steps). Only
    commands that start a database (``space create``) may create the file: a mistyped --db
    must not look empty.

    The store is inline (store/sqlite/inline.py) and the service runs without an event loop,
    which a command would otherwise import and start for nothing; ``loop``: the service needs
    one (it resolves names, sends requests or runs tasks), ``asyncio.run`` it."""
    from contextlib import AsyncExitStack

    from xtracker_server.services import ServiceError
    from xtracker_server.services.context import opened
    from xtracker_server.store.api import RestoreInProgress

    if not create and db != ":memory:" and not Path(db).expanduser().exists():
        fail(f"no database at {db}: pass --db (or XTRACKER_DB), or start with `xtracker serve`", 1)

    async def main() -> T:
        async with AsyncExitStack() as stack:
            try:
                ctx = await stack.enter_async_context(
                    opened(settings or Settings(db=db), inline=not loop)
                )
            except (RuntimeError, RestoreInProgress) as exc:  # StoreUnavailable is one
                fail(f"cannot open {db}: {exc}", 1)
            return await call(ctx)

    try:
        if loop:
            import asyncio

            return asyncio.run(main())
        return to_the_end(main())
    except ServiceError as exc:
        refused(exc, flags or {}, hints or {})


def to_the_end(coro: Coroutine[Any, Any, T]) -> T:
    """The result of ``coro``, run without an event loop: it must never wait for anything (a
    service on an inline store: ``run``). One that does is a bug of the command: it needs
    ``run(..., loop=True)``."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("the command's service waited for an event loop: run it with loop=True")


def refused(
    exc: ServiceError,
    flags: Mapping[str, str] | Callable[[str], str],
    hints: Mapping[str, str],
) -> NoReturn:
    """Say what a service refused, with the command that helps, and exit: 1 for what the
    database says (no such space, a name taken, no such alias), 2 for a wrong argument.
    ``flags``: the option of each of the service's fields (``{"name": "--name"}``, or a
    function of the field); ``hints``: what to add to the refusal of a ``rule``."""
    from xtracker_server.services import Conflict, Invalid, NotFound
    from xtracker_server.services.errors import NAME_NEEDS_INGEST, NOT_A_LIVE_TOKEN, NOT_AN_ALIAS

    if isinstance(exc, NotFound):
        if exc.key is None:
            no_space(exc.space_id or 0)
        listed = {"token": "token", "link": "link", "destination": "destination"}
        group = listed.get(exc.what)
        known = group and exc.space_id is not None
        hint = f" (see `xtracker {group} list --space {exc.space_id}`)" if known else ""
        fail(f"{exc.detail}{hint}", 1)
    if isinstance(exc, Conflict):
        if exc.code == "token_name_taken":
            fail(f"{exc.detail} (xtracker token revoke --space {exc.space_id} --name {exc.key})", 1)
        fail(exc.detail, 1)
    if isinstance(exc, Invalid):
        if exc.rule == NAME_NEEDS_INGEST:
            fail("--name names an ingest token: add --ingest")
        option = flags if callable(flags) else lambda f: flags.get(f, f)
        said = "; ".join(f"{option(f)}: {p}" for f, p in exc.problems)
        hint = hints.get(exc.rule, "") if exc.rule else ""
        fail(said + hint, 1 if exc.rule in (NOT_AN_ALIAS, NOT_A_LIVE_TOKEN) else 2)
    fail(exc.detail, 1)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


def base_url(public_url: str | None) -> str:
    """The base of the URLs a command prints: --public-url, else XTRACKER_HOST and _PORT."""
    if public_url:
        return public_url.rstrip("/")
    host = os.environ.get(env_var("host")) or Settings.host
    return f"http://{host}:{os.environ.get(env_var('port')) or Settings.port}"
