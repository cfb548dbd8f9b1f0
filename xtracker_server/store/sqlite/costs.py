"""``costs`` and ``exchange_rates``: a space's ad spend by day and object, and the rates its
reports convert money with (domain/costs.py)."""

from __future__ import annotations

import sqlite3
from datetime import date
from decimal import Decimal

from xtracker_server.domain.costs import CostEntry, CostLevel, Rate

__all__ = ["delete_costs", "list_costs", "list_rates", "put_costs", "set_rate"]


def _space_live(conn: sqlite3.Connection, space_id: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM spaces WHERE id = ? AND deleted_ms IS NULL", (space_id,)
    ).fetchone()
    return row is not None


def put_costs(
    conn: sqlite3.Connection, space_id: int, entries: list[CostEntry], now_ms: int
) -> tuple[int, int] | None:
    """Set each entry's cost (replacing the one of its day, level and object), all in one
    transaction; ``(new, replaced)``, or None if there is no such space."""
    if not _space_live(conn, space_id):
        return None
    new = 0
    for e in entries:
        key = (space_id, e.day.isoformat(), e.level.value, e.object_id)
        found = conn.execute(
            "SELECT 1 FROM costs WHERE space_id = ? AND day = ? AND level = ? AND object_id = ?",
            key,
        ).fetchone()
        new += found is None
        conn.execute(
            "INSERT INTO costs (space_id, day, level, object_id, name, amount, currency,"
            " updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (space_id, day, level, object_id) DO UPDATE SET"
            " name = COALESCE(excluded.name, name), amount = excluded.amount,"
            " currency = excluded.currency, updated_ms = excluded.updated_ms",
            (*key, e.name, format(e.amount, "f"), e.currency, now_ms),
        )
    return new, len(entries) - new


def delete_costs(
    conn: sqlite3.Connection, space_id: int, day: date, level: CostLevel, object_id: str
) -> bool:
    """Delete one cost; False if there was none."""
    cur = conn.execute(
        "DELETE FROM costs WHERE space_id = ? AND day = ? AND level = ? AND object_id = ?",
        (space_id, day.isoformat(), level.value, object_id),
    )
    return cur.rowcount == 1


def list_costs(
    conn: sqlite3.Connection,
    space_id: int,
    from_day: date,
    to_day: date,
    level: CostLevel | None = None,
) -> list[CostEntry]:
    """The space's costs of the days ``[from_day, to_day)``, by day, level and object."""
    sql = (
        "SELECT day, level, object_id, name, amount, currency FROM costs"
        " WHERE space_id = ? AND day >= ? AND day < ?"
    )
    args: list[object] = [space_id, from_day.isoformat(), to_day.isoformat()]
    if level is not None:
        sql += " AND level = ?"
        args.append(level.value)
    rows = conn.execute(sql + " ORDER BY day, level, object_id", args).fetchall()
    return [
        CostEntry(
            day=date.fromisoformat(r["day"]),
            level=CostLevel(r["level"]),
            object_id=r["object_id"],
            amount=Decimal(r["amount"]),
            currency=r["currency"],
            name=r["name"],
        )
        for r in rows
    ]


def set_rate(conn: sqlite3.Connection, space_id: int, rate: Rate, now_ms: int) -> bool:
    """Set the rate of a pair on a day (replacing that day's); False if there is no space."""
    if not _space_live(conn, space_id):
        return False
    conn.execute(
        "INSERT INTO exchange_rates (space_id, base, quote, day, rate, updated_ms)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (space_id, base, quote, day) DO UPDATE SET"
        " rate = excluded.rate, updated_ms = excluded.updated_ms",
        (space_id, rate.base, rate.quote, rate.day.isoformat(), format(rate.rate, "f"), now_ms),
    )
    return True


def list_rates(conn: sqlite3.Connection, space_id: int) -> list[Rate]:
    """Every rate of the space, by pair and day."""
    rows = conn.execute(
        "SELECT base, quote, day, rate FROM exchange_rates WHERE space_id = ?"
        " ORDER BY base, quote, day",
        (space_id,),
    ).fetchall()
    return [
        Rate(r["base"], r["quote"], date.fromisoformat(r["day"]), Decimal(r["rate"])) for r in rows
    ]
