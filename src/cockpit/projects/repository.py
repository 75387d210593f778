from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.kit.sql import names_in_account
from cockpit.projects.models import Project, ProjectMember
from cockpit.users.models import User


async def get_in_account(
    session: AsyncSession, account_id: uuid.UUID, project_id: uuid.UUID
) -> Project | None:
    return await session.scalar(
        select(Project).where(Project.account_id == account_id, Project.id == project_id)
    )


async def get_by_name(session: AsyncSession, account_id: uuid.UUID, name: str) -> Project | None:
    return await session.scalar(
        select(Project).where(Project.account_id == account_id, Project.name_key == name.strip().lower())
    )


async def membership(
    session: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID
) -> ProjectMember | None:
    return await session.get(ProjectMember, (project_id, user_id))


async def list_projects(
    session: AsyncSession, account_id: uuid.UUID, *, member_id: uuid.UUID | None = None
) -> list[tuple[Project, int]]:
    rows = await session.execute(projects_stmt(account_id, member_id=member_id))
    return [(project, int(count)) for project, count in rows.all()]


def projects_stmt(account_id: uuid.UUID, *, member_id: uuid.UUID | None = None) -> Select[Project, Any]:
    """The account's projects (those ``member_id`` belongs to) with their member counts, by name."""
    counts = (
        select(ProjectMember.project_id, func.count().label("members"))
        .where(ProjectMember.account_id == account_id)
        .group_by(ProjectMember.project_id)
        .subquery()
    )
    stmt = (
        select(Project, func.coalesce(counts.c.members, 0))
        .outerjoin(counts, counts.c.project_id == Project.id)
        .where(Project.account_id == account_id)
        .order_by(Project.name_key)
    )
    if member_id is not None:
        mine = select(ProjectMember.project_id).where(ProjectMember.user_id == member_id)
        stmt = stmt.where(Project.id.in_(mine))
    return stmt


async def members_of(session: AsyncSession, project_id: uuid.UUID) -> list[tuple[ProjectMember, User]]:
    rows = await session.execute(
        select(ProjectMember, User)
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == project_id)
        .order_by(User.email)
    )
    return [(member, user) for member, user in rows.all()]


async def names(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    return await names_in_account(session, Project, Project.name, account_id, ids)
