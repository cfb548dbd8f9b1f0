"""What the background sender sends, and what each answer means for each item (no I/O here:
the sync and the async client each run the requests their own way).

A round of the sender claims the due items of the spool, oldest first, and sends them in
*waves*, one after the other; the requests of a wave go out together, a few at a time
(``IN_FLIGHT``). The events of a wave go in batches (``POST /events/batch``, up to
``BATCH_EVENTS`` each), a bind alone (``POST /bind``). Order is kept where it matters: a bind
goes in a later wave than every earlier item of its uid or Telegram user, and an event in a
later wave than every earlier bind of its uid or user, so a bind reaches the server before the
events reported after it, and an event reported before a bind reaches it before the bind.
Events among themselves need no order (the server deduplicates them).

Against a server without the batch endpoint (404 or 405: older than it), events go one per
request to ``POST /events``, and the endpoint is tried again after ``RETRY_BATCH_S``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from xtracker_client._core import Judgement, Verdict, judge
from xtracker_client._retry import RETRYABLE
from xtracker_client._spool import SpooledItem
from xtracker_wire import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, EventBatchOut, EventResult

__all__ = [
    "BATCH_EVENTS",
    "IN_FLIGHT",
    "Answer",
    "Batching",
    "Fallback",
    "Judged",
    "Request",
    "claim_limit",
    "cut_round",
    "judge_batch",
    "judge_wave",
    "requests_for",
    "waves",
]

#: Events per batch request, and the requests a sender keeps in flight at once.
BATCH_EVENTS = MAX_BATCH_EVENTS
IN_FLIGHT = 4
#: Single requests (binds; events too, without batches) a round sends at most: a round ends
#: well within the lease of what it claimed, whatever the round trip to the server.
SINGLES_PER_ROUND = 32
#: A batch body is kept under the server's limit with room for the envelope.
_BATCH_BYTES = MAX_BATCH_BYTES - 1024
#: How long a server that has no batch endpoint is sent single requests before it is asked
#: again (it may have been upgraded meanwhile).
RETRY_BATCH_S = 600.0

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Request:
    """One HTTP request of a wave: ``POST path`` with ``body``, carrying ``items``."""

    path: str
    body: dict[str, Any]
    items: list[SpooledItem]

    @property
    def batch(self) -> bool:
        return self.path == "/events/batch"


class Batching:
    """Whether to send events in batches: yes, unless the server said it has no batch
    endpoint less than ``RETRY_BATCH_S`` ago."""

    def __init__(self) -> None:
        self._missing_until = 0.0

    @property
    def usable(self) -> bool:
        return time.monotonic() >= self._missing_until

    def missing(self) -> None:
        self._missing_until = time.monotonic() + RETRY_BATCH_S


def claim_limit(batching: Batching) -> int:
    """Items a round claims from the spool: enough to fill every request in flight."""
    return BATCH_EVENTS * IN_FLIGHT if batching.usable else SINGLES_PER_ROUND


def cut_round(
    items: list[SpooledItem], *, batch: bool
) -> tuple[list[SpooledItem], list[SpooledItem]]:
    """``items`` (oldest first) cut in what this round sends and what it gives back untried:
    the first items up to the ``SINGLES_PER_ROUND``-th item that needs a request of its own
    (a bind; any item without ``batch``)."""
    singles = 0
    for n, item in enumerate(items):
        if item.kind != "event" or not batch:
            singles += 1
            if singles > SINGLES_PER_ROUND:
                return items[:n], items[n:]
    return items, []


def waves(items: list[SpooledItem]) -> list[list[SpooledItem]]:
    """``items`` (oldest first) in waves to send one after the other (see the module's
    docstring); each wave keeps the items' order."""
    any_wave: dict[tuple[str, object], int] = {}  # key -> the last wave with an item of it
    bind_wave: dict[tuple[str, object], int] = {}  # key -> the last wave with a bind of it
    out: list[list[SpooledItem]] = []
    for item in items:
        keys = _keys(item)
        if item.kind == "bind":
            wave = max((any_wave[k] + 1 for k in keys if k in any_wave), default=0)
        else:
            wave = max((bind_wave[k] + 1 for k in keys if k in bind_wave), default=0)
        for k in keys:
            any_wave[k] = max(any_wave.get(k, 0), wave)
            if item.kind == "bind":
                bind_wave[k] = wave
        while len(out) <= wave:
            out.append([])
        out[wave].append(item)
    return out


def _keys(item: SpooledItem) -> list[tuple[str, object]]:
    body = item.body
    return [(name, body[name]) for name in ("uid", "tg_id") if body.get(name) is not None]


def requests_for(items: Iterable[SpooledItem], *, batch: bool) -> list[Request]:
    """The requests that carry ``items`` (one wave): binds alone; events in batches of up to
    ``BATCH_EVENTS`` and under the server's body limit (``batch``), or alone."""
    requests: list[Request] = []
    events: list[SpooledItem] = []
    size = 0
    for item in items:
        if item.kind != "event" or not batch:
            requests.append(
                Request("/events" if item.kind == "event" else "/bind", item.body, [item])
            )
            continue
        item_size = len(_ENCODER.encode(item.body)) + 1
        if events and (len(events) == BATCH_EVENTS or size + item_size > _BATCH_BYTES):
            requests.append(_batch(events))
            events, size = [], 0
        events.append(item)
        size += item_size
    if events:
        requests.append(_batch(events))
    return requests


def _batch(events: list[SpooledItem]) -> Request:
    return Request("/events/batch", {"events": [item.body for item in events]}, events)


class Fallback:
    """What ``judge_batch`` returns when the batch should go again as single requests:
    ``missing`` when the server has no batch endpoint at all."""

    def __init__(self, missing: bool) -> None:
        self.missing = missing


def judge_batch(
    request: Request,
    response: httpx.Response | None,
    error: Exception | None,
    *,
    read_answer: bool = False,
) -> list[Judgement] | Fallback:
    """One judgement per item of a batch request, in order; or ``Fallback``: send its items
    one by one (the server has no batch endpoint, 404 or 405, or refused the batch as a whole
    for a reason that is not transient, which single requests then show item by item).
    ``read_answer``: keep each accepted event's result as its judgement's ``answer``."""
    if (
        response is None
        or response.status_code in RETRYABLE
        or response.status_code
        in (
            401,
            403,
        )
    ):
        whole = judge(response, error)  # retried: nothing of the batch was stored
        return [whole] * len(request.items)
    status = response.status_code
    if status in (404, 405):
        return Fallback(missing=True)
    if not 200 <= status < 300:
        return Fallback(missing=False)
    try:
        answer = EventBatchOut.model_validate_json(response.content)
    except ValidationError:
        answer = None
    if answer is None or len(answer.results) != len(request.items):
        # Which events were stored cannot be told: all are sent again (a stored one is then
        # a duplicate), later, as after a 5xx.
        unreadable = Judgement(Verdict.RETRY, f"HTTP {status}: an answer that is not a batch's")
        return [unreadable] * len(request.items)
    return [_judge_result(result, read_answer) for result in answer.results]


def _judge_result(result: EventResult, read_answer: bool = False) -> Judgement:
    if result.ok:
        answer = result.model_dump(exclude_none=True) if read_answer else None
        return Judgement(Verdict.ACK, status=200, answer=answer)
    status = result.http_status or 400
    code, detail = result.error or "refused", result.detail or ""
    verdict = Verdict.RETRY if status in RETRYABLE or status in (401, 403) else Verdict.DEAD
    shown = detail if verdict is Verdict.DEAD else f"HTTP {status} {code}: {detail}"[:300]
    return Judgement(verdict, shown or f"HTTP {status}", status, code)


#: Each item of a wave with its judgement, and the items left untried (the server would not
#: take their batch as a whole: they go one by one from the next round).
Judged = tuple[list[tuple[SpooledItem, Judgement]], list[SpooledItem]]
Answer = tuple[httpx.Response | None, Exception | None]


def judge_wave(
    requests: list[Request],
    answers: list[Answer],
    batching: Batching,
    *,
    read_answer: bool = False,
) -> Judged:
    """What the ``answers`` (the response, or the transport error) to the ``requests`` of a
    wave mean for each item; a batch refused as a whole leaves its items untried, and a
    server without the batch endpoint is remembered in ``batching``. ``read_answer``: parse
    what the server answered each accepted item (``on_answer``)."""
    settled: list[tuple[SpooledItem, Judgement]] = []
    untried: list[SpooledItem] = []
    for request, (response, error) in zip(requests, answers, strict=True):
        if not request.batch:
            settled.append((request.items[0], judge(response, error, read_answer=read_answer)))
            continue
        judged = judge_batch(request, response, error, read_answer=read_answer)
        if isinstance(judged, Fallback):
            if judged.missing:
                batching.missing()
            untried += request.items
        else:
            settled += zip(request.items, judged, strict=True)
    return settled, untried
