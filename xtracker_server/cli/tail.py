"""``xtracker tail``: the live stream on the command line (docs/reports.md#the-live-stream):
each click, event and delivery attempt of a space as it is committed, read from the file like
the server's stream reads it (GET /admin/spaces/{id}/stream)."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    SpaceOption,
    fail,
    out,
    print_json,
    run,
    runs_on,
)

if TYPE_CHECKING:
    from xtracker_server.domain.tail import Marks, TailItem
    from xtracker_server.services.context import Context


def _line(item: TailItem) -> str:
    d = item.data
    when = datetime.fromtimestamp(item.at_ms / 1000, timezone.utc).strftime("%H:%M:%S")
    if item.kind == "click":
        return f"{when} click    {d['uid']} link={d['link'] or '-'} source={d['source']}"
    if item.kind == "event":
        money = f" {d['value']} {d['currency']}" if d["value"] else ""
        who = d["uid"] or f"tg:{d['tg_id']} (unattributed)"
        return f"{when} event    {d['event']}{money} uid={who} source={d['source']}"
    status = d["status_code"] if d["status_code"] is not None else "-"
    error = f" error={d['error']}" if d["error"] else ""
    return (f"{when} delivery {d['event']} -> {d['destination']} ({d['destination_id']}):"
            f" {d['outcome']} HTTP {status} {d['latency_ms']} ms{error}")  # fmt: skip


def tail(
    space: SpaceOption,
    since: Annotated[
        str | None, typer.Option(help="Resume after this cursor (printed with --json).")
    ] = None,
    poll_s: Annotated[float, typer.Option(help="Seconds between looks at the file.")] = 0.2,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Print each click, event and delivery attempt of a space as it is committed (by the
    server, a worker or the CLI), one line each, until Ctrl-C. Reads the file like the
    server's live stream does (GET /admin/spaces/{id}/stream), gaps of ids included."""
    import asyncio
    import contextlib

    from xtracker_server.domain.tail import StreamCursor, Watermark
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.reports import stream_start

    runs_on()  # it runs until Ctrl-C

    async def follow(ctx: Context) -> None:
        cursor = await stream_start(OPERATOR, ctx, space, since)
        marks: Marks | None = None
        if cursor is not None:
            now = time.monotonic()
            a, b, c = (
                Watermark.resuming(low, seen, now)
                for low, seen in zip(cursor.lows, cursor.seen, strict=True)
            )
            marks = (a, b, c)
        while True:
            poll = await ctx.store.tail_poll(marks, {space}, time.monotonic())
            marks = poll.marks
            if space not in poll.spaces:
                fail(f"space {space} was deleted", 1)
            if cursor is None:  # the first poll: start at "now"
                cursor = StreamCursor(poll.lows)
            for item in poll.items.get(space, []):
                if not cursor.delivers(item.table, item.id, poll.lows[item.table]):
                    continue
                if json_:
                    print_json({"type": item.kind, **item.data, "cursor": cursor.text()})
                else:
                    out.print(_line(item), markup=False, highlight=False, soft_wrap=True)
            cursor.settle(poll.lows)
            sys.stdout.flush()
            if not poll.full:
                await asyncio.sleep(poll_s)

    # On a store of its own, like every command: the same reads as the server's stream.
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the store is closed, then it ends
        run(db, follow, flags={"since": "--since"}, loop=True)  # it sleeps between polls
