"""The JSON shapes shared by the admin API and the CLI's ``--json`` output (scripts depend on
them: keep them stable)."""

from __future__ import annotations

from typing import Any

from xtracker_server.store.links import Link
from xtracker_server.store.spaces import NewSpace, Rotation, Space


def space_json(space: Space) -> dict[str, Any]:
    return {"id": space.id, "name": space.name, "created_ms": space.created_ms}


def new_space_json(new: NewSpace) -> dict[str, Any]:
    return {
        "id": new.space.id,
        "name": new.space.name,
        "bearer": new.bearer,
        "ingest_token": new.ingest_token,
    }


def rotation_json(rotation: Rotation) -> dict[str, Any]:
    key = "bearer" if rotation.kind.value == "bearer" else "ingest_token"
    return {
        "space_id": rotation.space_id,
        key: rotation.secret,
        "previous_valid_until_ms": rotation.previous_valid_until_ms,
    }


def link_urls(slug: str, base_url: str) -> dict[str, str]:
    return {"landing_url": f"{base_url}/l/{slug}", "redirect_url": f"{base_url}/r/{slug}"}


def link_created_json(link: Link, base_url: str) -> dict[str, Any]:
    return {"slug": link.slug, "kind": link.kind.value, **link_urls(link.slug, base_url)}


def link_json(link: Link, base_url: str) -> dict[str, Any]:
    return {
        "slug": link.slug,
        "space_id": link.space_id,
        **link.spec.model_dump(mode="json"),
        **link_urls(link.slug, base_url),
        "created_ms": link.created_ms,
        "updated_ms": link.updated_ms,
    }
