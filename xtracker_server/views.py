"""The JSON shapes shared by the admin API and the CLI's ``--json`` output (scripts depend on
them: keep them stable)."""

from __future__ import annotations

from typing import Any

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
