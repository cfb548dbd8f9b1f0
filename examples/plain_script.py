"""XTRACKER from a plain script, with the synchronous client.

A whole funnel for one user, without a bot framework: mint a click (as your own landing page
would), bind a Telegram user to it, report the contact and a deposit, then flush and print what
the client did.

    pip install -e .    # from a checkout of XTRACKER (it is not on PyPI), or a built wheel:
                        # python -m build --wheel && pip install dist/xtracker-*.whl
    export XTRACKER_URL=https://track.example.com XTRACKER_BEARER=xt_sk_...
    python examples/plain_script.py 123456789 tx-42    # Telegram user id, deposit's transaction id

Events are written to a local SQLite spool before each call returns (the file ``XTRACKER_SPOOL``
names, else one in the user's cache directory), and a background thread sends them. Whatever
can't be sent before the script ends stays in the spool and goes out with the next run against
the same server and key.

Importing this module has no side effects; ``run`` does the work.
"""

from __future__ import annotations

import os
import sys
import time

from xtracker_client import XTracker


def run(tracker: XTracker, tg_id: int, tx_id: str, *, campaign: str = "plain-script") -> str:
    """One user's funnel; returns the click's uid."""
    # A click that didn't come through an XTRACKER landing page. This call waits for the
    # server's answer (the uid), so unlike the events below it raises if the server is away.
    uid = tracker.new_click(campaign_name=campaign, raw_query="utm_source=script")
    tracker.bind(uid, tg_id=tg_id)  # buffered, and sent before the events that follow it
    tracker.contact(uid, tg_id=tg_id, eid=f"start-{tg_id}")
    # The transaction id as eid: any resend of this deposit is a duplicate, never a second one.
    tracker.deposit(uid, "25.00", "USD", tg_id=tg_id, eid=tx_id)
    return uid


def main(argv: list[str]) -> int:
    tg_id = int(argv[0]) if argv else 123456789
    tx_id = argv[1] if len(argv) > 1 else f"tx-demo-{int(time.time())}"
    # XTRACKER_URL and XTRACKER_BEARER: read by the client from the environment.
    with XTracker(spool=os.environ.get("XTRACKER_SPOOL") or None) as tracker:
        uid = run(tracker, tg_id, tx_id)
        # True when everything reached the server and nothing was refused (dead-lettered).
        delivered = bool(tracker.flush(timeout=10))
        stats = tracker.stats()
    # Leaving the block closed the client (another bounded flush).
    print(f"uid={uid}")
    print(f"delivered={delivered}")
    print(
        f"sent={stats.sent} queued={stats.queued} retried={stats.retried} dead={stats.dead} "
        f"dropped={stats.dropped} last_error={stats.last_error}"
    )
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
