"""The names of the values the analytics group calls by: each domain names its own objects (its
``names_of``), scoped to the caller's account; a value it does not know (deleted, or another
account's) gets no name here ("Deleted user" in the views, never a raw id)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents import service as agents
from cockpit.analytics.filters import Dimension
from cockpit.analytics.queries import Key
from cockpit.auth import tokens
from cockpit.groups import service as groups
from cockpit.integrations import service as integrations
from cockpit.projects import service as projects
from cockpit.providers import service as providers
from cockpit.users import service as users

Lookup = Callable[[AsyncSession, uuid.UUID, Collection[uuid.UUID]], Awaitable[dict[uuid.UUID, str]]]
LOOKUPS: dict[Dimension, Lookup] = {
    Dimension.user: users.names_of,
    Dimension.group: groups.names_of,
    Dimension.project: projects.names_of,
    Dimension.token: tokens.names_of,
    Dimension.provider: providers.provider_names_of,
    Dimension.integration: integrations.names_of,
}
OPERATIONS = {"chat": "Chat", "embedding": "Embeddings", "tool_call": "Tool calls"}
STATUSES = {"success": "Success", "error": "Error", "client_disconnected": "Caller went away"}


async def names(
    session: AsyncSession, account_id: uuid.UUID, dim: Dimension, keys: Collection[Key]
) -> dict[Key, str]:
    lookup = LOOKUPS.get(dim)
    if lookup is not None:
        ids = [k for k in keys if isinstance(k, uuid.UUID)]
        found = await lookup(session, account_id, ids) if ids else {}
        return {k: v for k, v in found.items()}
    if dim is Dimension.agent:
        return await _agent_names(session, account_id, [str(k) for k in keys])
    if dim is Dimension.operation:
        return {k: OPERATIONS.get(str(k), str(k)) for k in keys}
    if dim is Dimension.status:
        return {k: STATUSES.get(str(k), str(k)) for k in keys}
    return {k: str(k) for k in keys}  # models are named by what callers call them


async def _agent_names(session: AsyncSession, account_id: uuid.UUID, keys: list[str]) -> dict[Key, str]:
    """An agent run records the agent's id: its name, or "Deleted agent" once it is gone; any other
    value is a label a caller sent (``X-Cockpit-Agent``) and is shown as sent."""
    found = await agents.names_of(session, account_id, keys) if keys else {}
    out: dict[Key, str] = {}
    for key in keys:
        try:
            uuid.UUID(key)
        except ValueError:
            out[key] = key
            continue
        out[key] = found.get(key, "Deleted agent")
    return out
