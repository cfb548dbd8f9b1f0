"""The JSON shapes shared by the admin API and the CLI's ``--json`` output (scripts depend on
them: keep them stable)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # types only: a CLI command that prints one shape imports no more than it needs
    from xtracker_server.delivery.probe import ProbeResult
    from xtracker_server.domain.dedup import AmountConflict
    from xtracker_server.domain.entities import (
        DeliveryRow,
        Destination,
        IngestToken,
        Link,
        LoggedEntry,
        NewSpace,
        NewToken,
        Revocation,
        Rotation,
        Space,
    )
    from xtracker_server.domain.postback_urls import NetworkUrls
    from xtracker_server.domain.postbacks import Aliases


def space_json(space: Space) -> dict[str, Any]:
    return {"id": space.id, "name": space.name, "created_ms": space.created_ms}


def token_binds_json(space_id: int, allowed: bool) -> dict[str, Any]:
    """Whether the space takes binds made with its ingest token (``GET /bind``)."""
    return {"space_id": space_id, "token_binds": allowed}


def new_space_json(new: NewSpace) -> dict[str, Any]:
    return {
        "id": new.space.id,
        "name": new.space.name,
        "bearer": new.bearer,
        "ingest_token": new.ingest_token,
    }


def rotation_json(rotation: Rotation) -> dict[str, Any]:
    key = "bearer" if rotation.kind.value == "bearer" else "ingest_token"
    named = {} if rotation.name is None else {"name": rotation.name}
    return {
        "space_id": rotation.space_id,
        **named,
        key: rotation.secret,
        "previous_valid_until_ms": rotation.previous_valid_until_ms,
    }


def revocation_json(revocation: Revocation) -> dict[str, Any]:
    """``revoked``: how many secrets stopped working (0: there was nothing to end)."""
    named = {} if revocation.name is None else {"name": revocation.name}
    return {
        "space_id": revocation.space_id,
        "kind": revocation.kind.value,
        **named,
        "revoked": revocation.revoked,
    }


def new_token_json(token: NewToken) -> dict[str, Any]:
    return {"space_id": token.space_id, "name": token.name, "ingest_token": token.secret}


def ingest_token_json(token: IngestToken) -> dict[str, Any]:
    """Never the secret: its hint (prefix and last four characters)."""
    return {
        "name": token.name,
        "hint": token.hint,
        "created_ms": token.created_ms,
        "expires_ms": token.expires_ms,
        "last_postback_ms": token.last_postback_ms,
    }


def link_urls(slug: str, base_url: str) -> dict[str, str]:
    return {"landing_url": f"{base_url}/l/{slug}", "redirect_url": f"{base_url}/r/{slug}"}


def link_created_json(link: Link, base_url: str) -> dict[str, Any]:
    return {"slug": link.slug, "kind": link.kind.value, **link_urls(link.slug, base_url)}


def link_json(link: Link, base_url: str) -> dict[str, Any]:
    return {
        "slug": link.slug,
        "space_id": link.space_id,
        **link.spec.as_json(),
        **link_urls(link.slug, base_url),
        "created_ms": link.created_ms,
        "updated_ms": link.updated_ms,
    }


def destination_json(d: Destination) -> dict[str, Any]:
    """Never includes the secret or the access token."""
    return {
        "id": d.id,
        "space_id": d.space_id,
        "kind": d.kind.value,
        "name": d.name,
        "enabled": d.enabled,
        "healthy": d.health_reason is None,
        "health_reason": d.health_reason,
        "config": _masked_config(d.config),
        "event_map": d.event_map,
        "proxy": _masked_url(d.proxy),
        "has_secret": d.secret is not None,
        "created_ms": d.created_ms,
        "updated_ms": d.updated_ms,
    }


def delivery_json(row: DeliveryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "destination_id": row.destination_id,
        "inbox_id": str(row.inbox_id),
        "event_id": row.event_id,
        "event": row.event_name,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_ms": row.next_attempt_ms,
        "created_ms": row.created_ms,
        "sent_ms": row.sent_ms,
        "last_status": row.last_status,
        "last_error": row.last_error,
    }


def probe_json(result: ProbeResult) -> dict[str, Any]:
    return {
        "ok": result.verdict.outcome.value == "sent",
        "outcome": result.verdict.outcome.value,
        "reason": result.verdict.reason,
        "status_code": result.answer.status,
        "latency_ms": result.answer.latency_ms,
        "response": result.answer.excerpt,
        "event_id": result.event_id,
    }


def conflict_json(conflict: AmountConflict | None) -> dict[str, Any] | None:
    """A duplicate's disagreement with the stored event: the stored amount and currency."""
    if conflict is None:
        return None
    return {"value": conflict.value, "currency": conflict.currency}


def postback_log_json(e: LoggedEntry) -> dict[str, Any]:
    """One received postback. ``query`` and ``body`` have the token masked (``xt_it_…abcd``);
    ``click_known`` says whether the uid belongs to a click of the space (None: not known).
    ``attributed`` is its old name, kept for existing scripts (docs/postbacks.md): everywhere
    else "attributed" means "the event has a uid". ``conflict``: see ``conflict_json``."""
    return {
        "id": e.id,
        "at_ms": e.at_ms,
        "ip": e.ip,
        "token_name": e.token_name,
        "test": e.test,
        "method": e.method,
        "query": e.query,
        "body": e.body,
        "outcome": e.outcome,
        "status": e.status,
        "event": e.event,
        "uid": e.uid,
        "click_known": e.click_known,
        "attributed": e.click_known,  # deprecated alias of click_known
        "value": e.value,
        "currency": e.currency,
        "eid": e.eid,
        "inbox_id": None if e.inbox_id is None else str(e.inbox_id),
        "conflict": conflict_json(e.conflict),
        "error": e.error,
        "detail": e.detail,
    }


def postback_aliases_json(aliases: Aliases) -> dict[str, Any]:
    """Every alias in effect, with its origin (default, custom); removed defaults are listed
    with ``origin`` "removed" and no target."""
    statuses: dict[str, str | None] = dict(aliases.statuses)
    params: dict[str, str | None] = dict(aliases.params)
    for (kind, alias), origin in aliases.origins.items():
        if origin == "removed":
            (statuses if kind == "status" else params).setdefault(alias, None)
    return {
        "statuses": [
            {"alias": k, "maps_to": statuses[k], "origin": aliases.origins[("status", k)]}
            for k in sorted(statuses)
        ],
        "params": [
            {"name": k, "field": params[k], "origin": aliases.origins[("param", k)]}
            for k in sorted(params)
        ],
    }


def postback_urls_json(space_id: int, urls: NetworkUrls, token: str) -> dict[str, Any]:
    """``token`` says where the token in the URLs came from: given, rotated or placeholder."""
    return {
        "space_id": space_id,
        "network": urls.network,
        "token": token,
        "offer_param": urls.offer_param,
        "urls": [{"event": u.event, "field": u.field, "url": u.url} for u in urls.urls],
        "notes": list(urls.notes),
    }


def _masked_url(url: str | None) -> str | None:
    """A proxy URL without its password."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:…@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _masked_config(config: dict[str, Any]) -> dict[str, Any]:
    """Extra webhook headers often carry credentials: their values are not shown."""
    if "headers" not in config:
        return config
    return {**config, "headers": {name: "…" for name in config["headers"]}}


def currencies_json(space_id: int, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A space's own currency codes, and the crypto tickers every space accepts."""
    from xtracker_server.domain.currencies import CRYPTO_TICKERS

    return {"space_id": space_id, "allowed": list(allowed), "crypto": list(CRYPTO_TICKERS)}


def sub_ids_json(space_id: int, names: tuple[str, ...]) -> dict[str, Any]:
    """The query parameters a space declares as sub-ids, in the order declared."""
    return {"space_id": space_id, "params": list(names)}


def deletion_json(head: dict[str, Any], removed: dict[str, int], dry_run: bool) -> dict[str, Any]:
    """A deletion or an erasure: what it names (``head``: space_id, link, destination_id or
    person), whether it only counted (``dry_run``), and what it removed or would remove."""
    return {**head, "dry_run": dry_run, "removed": removed}
