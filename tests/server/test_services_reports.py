"""The report services (services/reports.py): what was committed before the call is counted,
a report's bad parameter is an Invalid naming it, and the live stream starts where a cursor
says, if it is one this store could have sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.services_env import Env, bearer, services
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.services import OPERATOR, Invalid, links, reports
from xtracker_server.services.report_query import ReportQuery
from xtracker_server.store.sqlite.clicks import insert_click


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with services(tmp_path) as found:
        yield found


def _click(env: Env, space_id: int, uid: str) -> None:
    draft = ClickDraft(space_id=space_id, uid=uid, created_ms=env.ctx.clock(), source="api")
    env.run(env.ctx.store.write(insert_click, draft))


def test_a_report_counts_what_was_committed_before_it(env: Env) -> None:
    space = env.space()
    space_id = space.space.id
    _click(env, space_id, "u1")
    first = env.run(reports.funnel(bearer(space), env.ctx, space_id, query=ReportQuery(days=1)))
    assert first["steps"][0] == {"step": "click", "uids": 1, "from_previous": None,
                                 "from_click": 1.0}  # fmt: skip
    _click(env, space_id, "u2")
    links_report = env.run(reports.links(OPERATOR, env.ctx, space_id, query=ReportQuery(days=1)))
    assert [(r["link"], r["clicks"]) for r in links_report["links"]] == [(None, 2)]


#: A report call with one bad parameter, and the parameter.
BAD: dict[str, tuple[Callable[[Env, int], Awaitable[Any]], str]] = {
    "unknown link": (lambda env, s: reports.funnel(OPERATOR, env.ctx, s, link="nope"), "link"),
    "unknown zone": (
        lambda env, s: reports.funnel(OPERATOR, env.ctx, s, query=ReportQuery(tz="Mars/Olympus")),
        "tz",
    ),
    "sort": (lambda env, s: reports.links(OPERATOR, env.ctx, s, sort="vibes"), "sort"),
    "currency": (lambda env, s: reports.links(OPERATOR, env.ctx, s, currency="$5"), "currency"),
    "metric": (lambda env, s: reports.series(OPERATOR, env.ctx, s, metric="likes"), "metric"),
    "bucket": (
        lambda env, s: reports.series(OPERATOR, env.ctx, s, metric="click", bucket="week"),
        "bucket",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_report_parameter_is_named(env: Env, case: str) -> None:
    call, field = BAD[case]
    space_id = env.space().space.id
    with pytest.raises(Invalid) as refused:
        env.run(call(env, space_id))
    assert refused.value.field == field


def test_a_link_filter_names_a_link_of_the_space(env: Env) -> None:
    mine, theirs = env.space("mine").space.id, env.space("theirs").space.id
    env.run(
        links.create_link(
            OPERATOR, env.ctx, theirs, {"slug": "promo", "kind": "bot", "target": "a_bot"}
        )
    )
    with pytest.raises(Invalid, match=f"no link 'promo' in space {mine}"):
        env.run(reports.funnel(OPERATOR, env.ctx, mine, link="promo"))
    found = env.run(reports.funnel(OPERATOR, env.ctx, theirs, link="promo"))
    assert found["link"] == "promo"


def test_the_stream_starts_now_or_after_a_cursor_it_could_have_sent(env: Env) -> None:
    space = env.space()
    space_id = space.space.id
    assert env.run(reports.stream_start(bearer(space), env.ctx, space_id)) is None
    _click(env, space_id, "u1")
    cursor = env.run(reports.stream_start(bearer(space), env.ctx, space_id, "1-0-0"))
    assert cursor is not None and cursor.text() == "1-0-0"
    for since, problem in (("soon", "must be an id"), ("2-0-0", "is ahead")):
        with pytest.raises(Invalid, match=problem) as refused:
            env.run(reports.stream_start(OPERATOR, env.ctx, space_id, since))
        assert refused.value.field == "since"
