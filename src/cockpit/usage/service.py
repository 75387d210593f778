"""The request log: who may read which gateway calls.

Account administrators (``usage:read_all``) read every call of their account; everyone else
reads only their own calls. Another account's calls are never visible (NotFound, not 403).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.errors import NotFound
from cockpit.kit.pagination import Page, PageParams
from cockpit.providers import service as providers
from cockpit.usage import repository
from cockpit.usage.queries import RequestFilters, RequestRow


def _own_user(actor: Actor) -> uuid.UUID | None:
    """None when the actor reads the whole account; else the only user whose calls they may read."""
    if actor.can(Permission.usage_read_all):
        return None
    if actor.user_id is None:
        # An actor with neither the permission nor a user sees nothing; the nil UUID matches no call.
        return uuid.UUID(int=0)
    return actor.user_id


async def search_requests(
    session: AsyncSession,
    actor: Actor,
    filters: RequestFilters,
    params: PageParams,
    *,
    count_cap: int | None = None,
) -> Page[RequestRow]:
    """Calls matching ``filters``, newest first. A member asking for someone else's calls gets none.
    ``count_cap``: count the matches only up to that many (the page then says there are more)."""
    own = _own_user(actor)
    if own is not None:
        if filters.user_id is not None and filters.user_id != own:
            return Page(items=[], total=0, page=params.page, per_page=params.per_page)
        filters = replace(filters, user_id=own)
    return await repository.search(session, actor.account_id, filters, params, count_cap=count_cap)


async def latest_requests(session: AsyncSession, actor: Actor, limit: int) -> list[RequestRow]:
    """The latest calls the actor may read, newest first (without counting them all)."""
    page = await repository.search(
        session,
        actor.account_id,
        RequestFilters(user_id=_own_user(actor)),
        PageParams(1, limit),
        counted=False,
    )
    return list(page.items)


async def access_request(session: AsyncSession, actor: Actor, record_id: uuid.UUID) -> RequestRow:
    """One call the actor may read; NotFound for another account's or (members) another user's call."""
    row = await repository.get_record(session, actor.account_id, record_id, user_id=_own_user(actor))
    if row is None:
        raise NotFound("request_not_found", "No such request.")
    return row


async def has_calls(session: AsyncSession, actor: Actor) -> bool:
    """Whether the actor can see any call at all (to tell "no calls yet" from "nothing matches")."""
    return await repository.has_any(session, actor.account_id, user_id=_own_user(actor))


async def model_names(session: AsyncSession, actor: Actor) -> list[str]:
    """The account's model names, for the filter (disabled ones too: their calls stay in the log)."""
    return await providers.model_names(session, actor.account_id)


async def agent_choices(
    session: AsyncSession, actor: Actor, *, since: datetime | None, until: datetime | None
) -> list[str]:
    """The agents the caller's visible calls came from in a period (at most 200), for the filter."""
    return await repository.agent_ids(
        session, actor.account_id, since=since, until=until, user_id=_own_user(actor), limit=200
    )
