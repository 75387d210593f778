"""What an account names: a group or a project has a name, unique in the account whatever its case
(``name_key`` keeps it lower-cased for the unique index), and a description. One set of rules for both."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from cockpit.kit.errors import Conflict
from cockpit.kit.validation import require_text

NAME_MAX = 100


class Named(Protocol):
    id: uuid.UUID
    name: str
    name_key: str
    description: str


# How a domain finds its object of a name in the account (case does not matter), if any.
FindByName = Callable[[str], Awaitable[Named | None]]


async def checked_name(name: str, *, kind: str, find: FindByName, current: Named | None = None) -> str:
    """``name`` cleaned up, refused when empty, too long or taken by another object of the kind."""
    name = require_text(name, field="name", label=f"The {kind} name", max_length=NAME_MAX)
    existing = await find(name)
    if existing is not None and (current is None or existing.id != current.id):
        raise Conflict(f"{kind}_name_taken", f"A {kind} named '{existing.name}' already exists.")
    return name


def checked_description(description: str, *, max_length: int) -> str:
    return require_text(
        description, field="description", label="The description", max_length=max_length, min_length=0
    )


def set_name(named: Named, name: str) -> None:
    named.name, named.name_key = name, name.lower()


def named_state(named: Named) -> dict[str, object]:
    """What the audit log records of a name and description (``record_changes`` keeps what changed)."""
    return {"name": named.name, "description": named.description}


async def rename_and_describe(
    named: Named,
    *,
    kind: str,
    find: FindByName,
    name: str | None,
    description: str | None,
    description_max: int,
) -> None:
    """Apply an edit: a name given and different is checked (and taken), a description replaces."""
    if name is not None and name.strip() != named.name:
        set_name(named, await checked_name(name, kind=kind, find=find, current=named))
    if description is not None:
        named.description = checked_description(description, max_length=description_max)
