"""All SQL of the agents catalogue, scoped by account (and a small read of the integrations table:
which of the account's integrations exist and the tools they listed)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import ColumnElement, Select, String, and_, cast, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent, AgentStatus, Visibility
from cockpit.integrations.models import Integration
from cockpit.kit.sql import LIKE_ESCAPE, contains_pattern


async def get_in_account(session: AsyncSession, account_id: uuid.UUID, agent_id: uuid.UUID) -> Agent | None:
    return await session.scalar(select(Agent).where(Agent.account_id == account_id, Agent.id == agent_id))


async def by_slug(session: AsyncSession, account_id: uuid.UUID, slug: str) -> Agent | None:
    return await session.scalar(select(Agent).where(Agent.account_id == account_id, Agent.slug == slug))


async def slugs_like(session: AsyncSession, account_id: uuid.UUID, prefix: str) -> set[str]:
    """The account's slugs that are ``prefix`` or start with ``prefix-`` (to pick a free one)."""
    rows = await session.scalars(
        select(Agent.slug).where(
            Agent.account_id == account_id,
            # "%prefix-%" without its leading "%": slugs that start with "prefix-".
            or_(
                Agent.slug == prefix, Agent.slug.like(contains_pattern(prefix + "-")[1:], escape=LIKE_ESCAPE)
            ),
        )
    )
    return set(rows)


def visible_to(user_group_id: uuid.UUID | None, project_ids: Collection[uuid.UUID]) -> ColumnElement[bool]:
    """The agents a member may see: for everyone in the account, for their group, or of (or for)
    one of their projects."""
    clauses: list[ColumnElement[bool]] = [Agent.visibility == Visibility.account]
    if user_group_id is not None:
        # group_ids is a JSON list of id strings; its text holds each id in quotes.
        needle = f'%"{user_group_id}"%'
        clauses.append(
            and_(Agent.visibility == Visibility.groups, cast(Agent.group_ids, String).like(needle))
        )
    if project_ids:
        clauses.append(Agent.project_id.in_(list(project_ids)))
    return or_(*clauses)


def agents_stmt(
    account_id: uuid.UUID,
    *,
    visible: ColumnElement[bool] | None = None,
    search: str | None = None,
    status: AgentStatus | None = None,
    project_id: uuid.UUID | None = None,
) -> Select[Agent]:
    """The account's agents (those ``visible``), filtered, defaults first, then by name."""
    stmt = select(Agent).where(Agent.account_id == account_id)
    if visible is not None:
        stmt = stmt.where(visible)
    if search:
        pattern = contains_pattern(search.lower())
        stmt = stmt.where(
            or_(
                func.lower(Agent.name).like(pattern, escape=LIKE_ESCAPE),
                Agent.slug.like(pattern, escape=LIKE_ESCAPE),
                func.lower(Agent.description).like(pattern, escape=LIKE_ESCAPE),
            )
        )
    if status is not None:
        stmt = stmt.where(Agent.status == status)
    if project_id is not None:
        stmt = stmt.where(Agent.project_id == project_id)
    return stmt.order_by(Agent.is_default.desc(), func.lower(Agent.name), Agent.id)


async def clear_default(
    session: AsyncSession, account_id: uuid.UUID, project_id: uuid.UUID | None, *, keep: uuid.UUID
) -> list[uuid.UUID]:
    """Unset the default of the account-wide agents (``project_id`` None) or of one project's agents,
    except ``keep``; the ids that were default."""
    scope = Agent.project_id.is_(None) if project_id is None else Agent.project_id == project_id
    where = (Agent.account_id == account_id, scope, Agent.is_default.is_(True), Agent.id != keep)
    previous = list(await session.scalars(select(Agent.id).where(*where)))
    if previous:
        await session.execute(
            update(Agent).where(Agent.id.in_(previous)).values(is_default=false()),
            execution_options={"synchronize_session": "fetch"},
        )
    return previous


async def names(session: AsyncSession, account_id: uuid.UUID, ids: Collection[str]) -> dict[str, str]:
    wanted: list[uuid.UUID] = []
    for value in ids:
        try:
            wanted.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    if not wanted:
        return {}
    rows = await session.execute(
        select(Agent.id, Agent.name).where(Agent.account_id == account_id, Agent.id.in_(wanted))
    )
    return {str(agent_id): name for agent_id, name in rows.all()}


# ---- the integrations an agent may name ----


async def integrations(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID] | None = None
) -> list[Integration]:
    """The account's integrations (among ``ids`` when given), by name."""
    stmt = select(Integration).where(Integration.account_id == account_id)
    if ids is not None:
        if not ids:
            return []
        stmt = stmt.where(Integration.id.in_(list(ids)))
    return list(await session.scalars(stmt.order_by(func.lower(Integration.name))))


async def integration_names(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(Integration.id, Integration.name).where(
            Integration.account_id == account_id, Integration.id.in_(list(ids))
        )
    )
    return {row_id: name for row_id, name in rows.all()}
