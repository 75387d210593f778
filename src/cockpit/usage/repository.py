"""All SQL of the request log. Every query is scoped to one account (and, for members, one user)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.kit.pagination import Page, PageParams
from cockpit.projects.models import Project
from cockpit.usage.models import UsageRecord
from cockpit.usage.queries import RequestFilters, RequestRow
from cockpit.users.models import User


def _conditions(account_id: uuid.UUID, filters: RequestFilters) -> list[ColumnElement[bool]]:
    # account_id first, then user_id / project_id, then created_at: the shape of the three
    # (account_id, [user_id | project_id,] created_at) indexes.
    conditions: list[ColumnElement[bool]] = [UsageRecord.account_id == account_id]
    if filters.user_id is not None:
        conditions.append(UsageRecord.user_id == filters.user_id)
    if filters.project_id is not None:
        conditions.append(UsageRecord.project_id == filters.project_id)
    if filters.since is not None:
        conditions.append(UsageRecord.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(UsageRecord.created_at < filters.until)
    if filters.model is not None:
        conditions.append(UsageRecord.model == filters.model)
    if filters.agent_id is not None:
        conditions.append(
            UsageRecord.agent_id.is_(None)
            if filters.agent_id == ""
            else UsageRecord.agent_id == filters.agent_id
        )
    if filters.group_id is not None:
        conditions.append(UsageRecord.group_id == filters.group_id)
    if filters.operation is not None:
        conditions.append(UsageRecord.operation == filters.operation)
    if filters.api_token_id is not None:
        conditions.append(UsageRecord.api_token_id == filters.api_token_id)
    if filters.status is not None:
        conditions.append(UsageRecord.status == filters.status.value)
    return conditions


def _with_names() -> Select[UsageRecord, str, str]:
    """Records with the user's e-mail and the project's name, joined in the same query (no N+1).

    Outer joins: the e-mail or name is None once the user or project is gone. The joins also
    match the account, so a stale id can never pick up another tenant's name.
    """
    return (
        select(UsageRecord, User.email, Project.name)
        .outerjoin(User, and_(User.id == UsageRecord.user_id, User.account_id == UsageRecord.account_id))
        .outerjoin(
            Project, and_(Project.id == UsageRecord.project_id, Project.account_id == UsageRecord.account_id)
        )
    )


async def _count(
    session: AsyncSession, conditions: list[ColumnElement[bool]], cap: int | None
) -> tuple[int, bool]:
    """The matches, counted up to ``cap`` when given; and whether there are more than that."""
    if cap is None:
        every = await session.scalar(select(func.count()).select_from(UsageRecord).where(*conditions))
        return int(every or 0), False
    capped = select(UsageRecord.id).where(*conditions).limit(cap + 1).subquery()
    found = int(await session.scalar(select(func.count()).select_from(capped)) or 0)
    return min(found, cap), found > cap


async def search(
    session: AsyncSession,
    account_id: uuid.UUID,
    filters: RequestFilters,
    params: PageParams,
    *,
    counted: bool = True,
    count_cap: int | None = None,
) -> Page[RequestRow]:
    """One page of matching records, newest first (created_at desc, id desc); ``counted=False``: without
    counting every match (the page's total is then its own length: counting all of an account's
    calls took ~0.4 s at 10M calls); ``count_cap``: counted up to that many (the page says "more")."""
    conditions = _conditions(account_id, filters)
    # The count needs no joins: they are outer joins on unique keys and never change it.
    total, more = await _count(session, conditions, count_cap) if counted else (None, False)
    stmt = (
        _with_names()
        .where(*conditions)
        .order_by(UsageRecord.created_at.desc(), UsageRecord.id.desc())
        .limit(params.per_page)
        .offset(params.offset)
    )
    rows = await session.execute(stmt)
    items = [RequestRow(record, email, name) for record, email, name in rows.all()]
    total = len(items) if total is None else total
    if more:  # a page past the cap counts its own rows; a page that is not full is the last one
        total = max(total, params.offset + len(items))
        more = len(items) == params.per_page or not items
    return Page(items=items, total=total, page=params.page, per_page=params.per_page, more=more)


async def get_record(
    session: AsyncSession, account_id: uuid.UUID, record_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> RequestRow | None:
    """One record of the account; with ``user_id``, only if it is that user's call."""
    stmt = _with_names().where(UsageRecord.account_id == account_id, UsageRecord.id == record_id)
    if user_id is not None:
        stmt = stmt.where(UsageRecord.user_id == user_id)
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    record, email, name = row
    return RequestRow(record, email, name)


async def has_any(session: AsyncSession, account_id: uuid.UUID, *, user_id: uuid.UUID | None = None) -> bool:
    """Whether any call was ever recorded (for the account, or for one user of it)."""
    conditions = _conditions(account_id, RequestFilters(user_id=user_id))
    return bool(await session.scalar(select(exists().where(*conditions))))


async def agent_ids(
    session: AsyncSession,
    account_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    user_id: uuid.UUID | None,
    limit: int,
) -> list[str]:
    """The agents that made calls in a period (the request log's agent picker), by name."""
    conditions = _conditions(account_id, RequestFilters(since=since, until=until, user_id=user_id))
    stmt = (
        select(UsageRecord.agent_id)
        .where(*conditions, UsageRecord.agent_id.is_not(None))
        .distinct()
        .order_by(UsageRecord.agent_id)
        .limit(limit)
    )
    return [agent for agent in await session.scalars(stmt) if agent]
