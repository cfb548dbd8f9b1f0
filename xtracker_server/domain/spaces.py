"""Spaces (tenants): what a space's name may be."""

from __future__ import annotations

#: The longest space name, in characters.
MAX_SPACE_NAME = 100


def check_space_name(raw: str) -> str:
    """The name trimmed; ValueError unless it is 1 to ``MAX_SPACE_NAME`` characters."""
    name = raw.strip()
    if not 0 < len(name) <= MAX_SPACE_NAME:
        raise ValueError(f"must be 1 to {MAX_SPACE_NAME} characters")
    return name
