"""Ready-to-paste postback URLs per partner network (facts: REFERENCE.md, "Affiliate networks").

Each recipe says which URL goes into which field of the partner cabinet, with the network's
macros in braces (the network fills them), and which parameter carries our click uid on the
offer link. The URLs use our own parameter names wherever the network lets us choose, so they
work whatever aliases a space has.

    >>> urls = postback_urls("pocketoption", "https://t.example", "xt_it_X", "registration")
    >>> urls.urls[0].url
    'https://t.example/e?token=xt_it_X&event=registration&uid={click_id}&eid=reg-{trader_id}'
"""

from __future__ import annotations

from dataclasses import dataclass

#: Shown instead of the token when none was given; the user replaces it.
TOKEN_PLACEHOLDER = "<INGEST_TOKEN>"

NETWORKS: tuple[str, ...] = ("pocketoption", "quotex", "1win", "keitaro", "generic")
EVENT_CHOICES: tuple[str, ...] = ("registration", "deposit", "all")


@dataclass(frozen=True)
class PostbackUrl:
    event: str  # "registration", "deposit" or "all" (one URL for every status)
    field: str  # where it goes in the partner cabinet
    url: str


@dataclass(frozen=True)
class NetworkUrls:
    network: str
    offer_param: str  # what to add to the offer link (the web link's target)
    urls: tuple[PostbackUrl, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Recipe:
    offer_param: str
    urls: tuple[tuple[str, str, str], ...]  # (event, cabinet field, query after the token)
    notes: tuple[str, ...]


_RECIPES: dict[str, _Recipe] = {
    "pocketoption": _Recipe(
        offer_param="click_id={uid}",
        urls=(
            (
                "registration",
                "Registration",
                "event=registration&uid={click_id}&eid=reg-{trader_id}",
            ),
            (
                "deposit",
                "First deposit",
                "event=deposit&uid={click_id}&value={sumdep}&currency=USD&eid=ftd-{trader_id}",
            ),
            (
                "deposit",
                "Repeat deposit",
                "event=deposit&uid={click_id}&value={sumdep}&currency=USD"
                "&eid=dep-{trader_id}-{totaldep}",
            ),
        ),
        notes=(
            "Pocket Option sends no transaction id: the eid is built from {trader_id} (one"
            " registration and one first deposit per trader) and, for repeat deposits, from"
            " {totaldep}, the running total, which differs for every deposit and repeats when"
            " the network re-fires one.",
            "Leave the other events (e-mail confirmation, commission, withdrawal) empty.",
            "{sumdep} is in USD.",
        ),
    ),
    "quotex": _Recipe(
        offer_param="cid={uid}",
        urls=(
            (
                "all",
                "Postback URL (one for every status)",
                "event={status}&uid={click_id}&value={sumdep}&currency=USD&eid={event_id}",
            ),
        ),
        notes=(
            "One URL for every status: reg -> registration, ftd and dep -> deposit, conf and"
            " withdrawal -> answered 'ignored' (see xtracker postback alias list).",
            "Check the click-id parameter name in your cabinet's link builder; the postback"
            " reads it back with {click_id}.",
        ),
    ),
    "1win": _Recipe(
        offer_param="sub1={uid}",
        urls=(
            ("registration", "Registration", "event=registration&uid={sub1}&eid=reg-{sub1}"),
            (
                "deposit",
                "Deposit",
                "event=deposit&uid={sub1}&value={amount}&currency={currency}&eid={transaction_id}",
            ),
        ),
        notes=(
            "Our uid travels as sub1. The amount, currency and transaction-id macro names differ"
            " between cabinets: compare {amount}, {currency} and {transaction_id} with the macro"
            " list next to the postback field and replace any that differ.",
            "Without a transaction id, use eid=ftd-{sub1} for a first-deposit postback.",
        ),
    ),
    "keitaro": _Recipe(
        offer_param="subid={uid}",
        urls=(
            (
                "all",
                "S2S postback (one for every status)",
                "uid={subid}&event={status}&value={payout}&currency={currency}&eid={tid}",
            ),
        ),
        notes=(
            "Keitaro statuses: lead -> registration, sale and rebill -> deposit, rejected ->"
            " ignored. A repeat of a tid is a duplicate here (Keitaro would update the"
            " conversion): nothing is counted twice.",
            "{subid} must carry our uid: pass {uid} into Keitaro (e.g. as a sub id of the"
            " campaign link) and put that sub id's macro in place of {subid}. Senders that"
            " already speak Keitaro's format (subid, status, payout, tid) are understood as"
            " they are: those names are default aliases.",
        ),
    ),
    "generic": _Recipe(
        offer_param="click_id={uid}",
        urls=(
            (
                "registration",
                "Registration",
                "event=registration&uid={CLICK_ID}&eid=reg-{CLICK_ID}",
            ),
            (
                "deposit",
                "Deposit",
                "event=deposit&uid={CLICK_ID}&value={AMOUNT}&currency={CURRENCY}"
                "&eid={TRANSACTION_ID}",
            ),
        ),
        notes=(
            "Replace {CLICK_ID}, {AMOUNT}, {CURRENCY} and {TRANSACTION_ID} with the network's"
            " own macros. Put the click id on the offer link under the name the network"
            " returns it with.",
            "Without a transaction id, build the eid from what identifies the event once"
            " (e.g. dep-{USER_ID}-{TOTAL}); without any eid each call counts as a new event.",
        ),
    ),
}


def postback_urls(network: str, base_url: str, token: str, event: str = "all") -> NetworkUrls:
    """The URLs for ``network`` (one of ``NETWORKS``), for ``event`` (registration, deposit or
    all). A network with one URL for every status always gets that URL."""
    if network not in _RECIPES:
        raise ValueError(f"unknown network {network!r}: use one of {', '.join(NETWORKS)}")
    if event not in EVENT_CHOICES:
        raise ValueError(f"unknown event {event!r}: use one of {', '.join(EVENT_CHOICES)}")
    recipe = _RECIPES[network]
    prefix = f"{base_url.rstrip('/')}/e?token={token}&"
    urls = tuple(
        PostbackUrl(event=ev, field=field, url=prefix + query)
        for ev, field, query in recipe.urls
        if event == "all" or ev in (event, "all")
    )
    return NetworkUrls(
        network=network, offer_param=recipe.offer_param, urls=urls, notes=recipe.notes
    )
