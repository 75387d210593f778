"""Names for the ids that records keep (audit targets and changes, a call's group, token, model…):
pages show these names, or "deleted <kind>" when the object is gone, never a raw id.

Each domain names its own objects (its ``names_of``); every look-up is scoped to the caller's account:
another account's object has no name here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.auth import tokens
from cockpit.groups import service as groups
from cockpit.invitations import service as invitations
from cockpit.policies import service as policies
from cockpit.projects import service as projects
from cockpit.providers import service as providers
from cockpit.users import service as users

# A domain's ``names_of``: the names of those of these ids that are its objects in the account.
Lookup = Callable[[AsyncSession, uuid.UUID, Collection[uuid.UUID]], Awaitable[dict[uuid.UUID, str]]]

UUID_TEXT = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


class Name(NamedTuple):
    kind: str  # "user", "group", "API token", …
    name: str

    def __str__(self) -> str:
        """In a sentence: "Ada Lovelace", "group Engineering"."""
        return self.name if self.kind == "user" else f"{self.kind} {self.name}"


def ids_in(*values: Any) -> set[uuid.UUID]:
    """Every id written in these values (strings, UUIDs, and lists or dicts of them)."""
    found: set[uuid.UUID] = set()
    for value in values:
        if isinstance(value, uuid.UUID):
            found.add(value)
        elif isinstance(value, str):
            found.update(uuid.UUID(match) for match in UUID_TEXT.findall(value))
        elif isinstance(value, dict):
            found |= ids_in(*value.keys(), *value.values())
        elif isinstance(value, list | tuple | set):
            found |= ids_in(*value)
    return found


# Each domain names its own objects; an id is looked up in the next domain only while unnamed.
_LOOKUPS: tuple[tuple[str, Lookup], ...] = (
    ("user", users.names_of),
    ("group", groups.names_of),
    ("project", projects.names_of),
    ("API token", tokens.names_of),
    ("model", providers.model_names_of),
    ("provider", providers.provider_names_of),
    ("invitation", invitations.names_of),
    ("access rule", policies.names_of),
)


async def names_of(
    session: AsyncSession, account_id: uuid.UUID, ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, Name]:
    """The kind and name of each id that is an object of this account. Ids not found (deleted, or
    another account's) are left out."""
    wanted = {i for i in ids if i is not None}
    names: dict[uuid.UUID, Name] = {}
    for kind, lookup in _LOOKUPS:
        left = wanted - names.keys()
        if not left:
            break
        names.update(
            {found: Name(kind, name) for found, name in (await lookup(session, account_id, left)).items()}
        )
    return names


def named(text: str, names: dict[uuid.UUID, Name], *, missing: str = "deleted object") -> str:
    """``text`` with every id in it replaced by its kind and name (or ``missing``)."""

    def name(match: re.Match[str]) -> str:
        found = names.get(uuid.UUID(match.group(0)))
        return missing if found is None else str(found)

    return UUID_TEXT.sub(name, text)


def target_name(
    kind: str | None, target_id: str | None, label: str | None, names: dict[uuid.UUID, Name]
) -> str:
    """An audit entry's target as people read it: its label, its current name, or "deleted <kind>"."""
    if label:
        return named(label, names)
    if target_id and UUID_TEXT.fullmatch(target_id):
        found = names.get(uuid.UUID(target_id))
        if found is not None:
            return found.name
        return f"deleted {kind or 'object'}"
    return target_id or "—"


async def audit_names(
    session: AsyncSession, account_id: uuid.UUID, entries: Sequence[AuditEntry]
) -> dict[uuid.UUID, Name]:
    """The names of the objects audit entries name by id (targets, ids in labels and changes)."""
    ids = ids_in(*[(e.target_label or e.target_id, e.before, e.after) for e in entries])
    return await names_of(session, account_id, ids)
