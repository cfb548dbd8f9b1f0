"""The writer's operations: every write of the SQLite store, by name.

A write that goes to the writer process names one of these (``"inbox.insert_events"``) and
sends its arguments; the process looks the name up here (it imports this module when it
starts) and runs the function in its next batch. Nothing else runs there: no function travels
over the pipe, and a write that is not named here is refused at once (``TypeError``). A new
write of the store is added to ``OPERATIONS`` below.

The thread writer (``GroupCommitWriter``) runs functions as given; the store hands it the same
ones, so both writers run the same operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from xtracker_server.store.sqlite import (
    binds,
    clicks,
    costs,
    deletion,
    destinations,
    erasure,
    inbox,
    links,
    outbox,
    postbacks,
    probe,
    rollup_marks,
    spaces,
    stats,
    unrecorded,
)

__all__ = ["OPERATIONS", "Operations", "name_of", "named"]

#: name -> function of a connection (and its arguments).
Operations = Mapping[str, Callable[..., Any]]


def name_of(fn: Callable[..., Any]) -> str:
    """An operation's name: its module's last part and its own (``inbox.insert_events``)."""
    return f"{fn.__module__.rpartition('.')[2]}.{fn.__qualname__}"


def named(*fns: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
    """A registry of ``fns``, by ``name_of``."""
    found = {name_of(fn): fn for fn in fns}
    assert len(found) == len(fns), "two operations have the same name"
    return found


OPERATIONS: Operations = named(
    # ingress
    inbox.insert_events,
    inbox.insert_batch,
    clicks.insert_clicks,
    clicks.insert_kept_clicks,
    binds.bind,
    postbacks.record_postback,
    postbacks.log_postback,
    # spaces and credentials
    spaces.create_space,
    spaces.rotate_credential,
    spaces.revoke_previous,
    spaces.add_ingest_token,
    spaces.revoke_ingest_token,
    spaces.reset_admin_token,
    spaces.set_allowed_currencies,
    spaces.set_sub_id_params,
    binds.set_token_binds,
    postbacks.set_alias,
    postbacks.set_aliases,
    # costs and exchange rates
    costs.put_costs,
    costs.delete_costs,
    costs.set_rate,
    # links and destinations
    links.create_link,
    links.update_link,
    destinations.create_destination,
    destinations.update_destination,
    destinations.flag_unhealthy,
    # deliveries
    outbox.claim,
    outbox.finish,
    outbox.record_attempt,
    outbox.replay,
    outbox.release_leases,
    outbox.give_back,
    outbox.hasten_retries,
    outbox.settle,
    # deletion
    deletion.mark_space,
    deletion.delete_space_batch,
    deletion.mark_link,
    deletion.delete_link_batch,
    deletion.mark_destination,
    deletion.delete_destination_batch,
    erasure.erase_person,
    erasure.erase_events,
    erasure.delete_log_rows,
    deletion.prune_removals,
    # housekeeping
    postbacks.prune_log,
    outbox.prune_settled,
    rollup_marks.prune_backlog,
    stats.refresh_stats,
    unrecorded.add_unrecorded,
    probe.touch_probe,
)
