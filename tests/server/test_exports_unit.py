"""The CSV writer's cells and the end of an export that breaks after its first byte, with a
row source that fails (the e2e tests break a real server's store: tests/e2e/test_exports.py)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from xtracker_server.services.exports import Export, ExportBroken, cell, csv_chunks, json_chunks
from xtracker_server.store.errors import FaultReason, StoreUnavailable


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+33 6 12", "'+33 6 12"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=cmd", "'\t=cmd"),
        ("\r=cmd", "'\r=cmd"),
        ("-12.50", "-12.50"),
        ("-3", "-3"),
        ("summer = sale", "summer = sale"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (0.1234, "0.1234"),
        (-2.5, "-2.5"),
        (7, "7"),
    ],
)
def test_a_cell_is_never_a_formula_and_a_number_stays_one(value: object, written: str) -> None:
    assert cell(value) == written


def _export(fail_after: int) -> Export:
    async def rows() -> AsyncIterator[dict[str, Any]]:
        for i in range(fail_after):
            yield {"n": i, "name": f'a "quoted", name {i}'}
        raise StoreUnavailable(FaultReason.DISK_FULL, "database or disk is full")

    return Export("test", {"title": "t"}, "rows", rows(), ["n", "name"],
                  lambda r: [r["n"], r["name"]])  # fmt: skip


async def _collect(chunks: AsyncIterator[str]) -> tuple[str, BaseException | None]:
    out: list[str] = []
    try:
        async for text in chunks:
            out.append(text)
    except Exception as exc:  # the test looks at it
        return "".join(out), exc
    return "".join(out), None


def test_a_fault_after_the_first_byte_ends_the_csv_with_an_error_line() -> None:
    text, exc = asyncio.run(_collect(csv_chunks(_export(450))))
    assert isinstance(exc, ExportBroken)
    lines = list(csv.reader(io.StringIO(text, newline="")))
    assert lines[0] == ["n", "name"] and len(lines) == 1 + 450 + 1
    assert lines[1] == ["0", 'a "quoted", name 0']
    assert lines[-1] == [
        "#error",
        "storage_unavailable",
        "storage unavailable (disk_full): this export is incomplete",
    ]


def test_a_fault_after_the_first_byte_leaves_the_json_open() -> None:
    text, exc = asyncio.run(_collect(json_chunks(_export(450), ok=True)))
    assert isinstance(exc, ExportBroken)
    assert text.startswith('{"ok":true,"title":"t","rows":[{"n":0,')
    assert text.endswith('name 449"}')  # every row written, the array and object not closed
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_json_chunks_close_the_document_when_nothing_fails() -> None:
    async def rows() -> AsyncIterator[dict[str, Any]]:
        for i in range(3):
            yield {"n": i}

    export = Export("t", {"a": 1}, "rows", rows(), ["n"], lambda r: [r["n"]])
    text, exc = asyncio.run(_collect(json_chunks(export, ok=False)))
    assert (text, exc) == ('{"a":1,"rows":[{"n":0},{"n":1},{"n":2}]}\n', None)
