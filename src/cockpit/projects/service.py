"""Projects and their members. Account admins manage every project; a project admin manages theirs."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission, permissions_of
from cockpit.kit.errors import Conflict, InvalidInput, NotFound, NotPermitted
from cockpit.kit.naming import (
    FindByName,
    checked_description,
    checked_name,
    named_state,
    rename_and_describe,
    set_name,
)
from cockpit.kit.pagination import Page, PageParams, paginate_rows
from cockpit.projects import repository
from cockpit.projects.models import DESCRIPTION_MAX, Project, ProjectMember, ProjectRole
from cockpit.users import service as users
from cockpit.users.models import User, UserStatus


def target(project: Project) -> Target:
    return Target("project", project.id, project.name)


async def access_project(
    session: AsyncSession, actor: Actor, project_id: uuid.UUID, *, manage: bool = False
) -> Project:
    """A project of the caller's account that the caller belongs to (or any, for account admins).

    With ``manage``, the caller must be an account admin or this project's admin. Projects the
    caller may not see are NotFound; ones they may see but not manage are NotPermitted.
    """
    project = await repository.get_in_account(session, actor.account_id, project_id)
    if project is None:
        raise NotFound("project_not_found", "No such project.")
    if actor.can(Permission.projects_manage):
        return project
    member = await repository.membership(session, project.id, actor.user_id) if actor.user_id else None
    if member is None:
        raise NotFound("project_not_found", "No such project.")
    if manage and member.role is not ProjectRole.project_admin:
        raise NotPermitted("not_project_admin", "Only this project's admins can do this.")
    return project


async def list_projects(session: AsyncSession, actor: Actor) -> list[tuple[Project, int]]:
    if actor.can(Permission.projects_manage):
        return await repository.list_projects(session, actor.account_id)
    if actor.user_id is None:
        return []
    return await repository.list_projects(session, actor.account_id, member_id=actor.user_id)


async def page_projects(session: AsyncSession, actor: Actor, params: PageParams) -> Page[tuple[Project, int]]:
    """Every project for account admins, the projects one belongs to otherwise; a page at a time."""
    if actor.can(Permission.projects_manage):
        return await paginate_rows(session, repository.projects_stmt(actor.account_id), params)
    if actor.user_id is None:
        return Page(items=[], total=0, page=params.page, per_page=params.per_page)
    stmt = repository.projects_stmt(actor.account_id, member_id=actor.user_id)
    return await paginate_rows(session, stmt, params)


def _find(session: AsyncSession, account_id: uuid.UUID) -> FindByName:
    """How ``kit.naming`` finds the account's project of a name."""
    return partial(repository.get_by_name, session, account_id)


async def create_project(session: AsyncSession, actor: Actor, *, name: str, description: str = "") -> Project:
    actor.require(Permission.projects_manage)
    name = await checked_name(name, kind="project", find=_find(session, actor.account_id))
    description = checked_description(description, max_length=DESCRIPTION_MAX)
    project = Project(id=uuid.uuid4(), account_id=actor.account_id, description=description)
    set_name(project, name)
    session.add(project)
    await session.flush()
    await audit.record(session, actor, "project.created", target=target(project), after=named_state(project))
    return project


async def edit_project(
    session: AsyncSession,
    actor: Actor,
    project_id: uuid.UUID,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Project:
    project = await access_project(session, actor, project_id, manage=True)
    before = named_state(project)
    await rename_and_describe(
        project, kind="project", find=_find(session, actor.account_id), name=name,
        description=description, description_max=DESCRIPTION_MAX,
    )  # fmt: skip
    await audit.record_changes(
        session, actor, "project.updated", target=target(project), before=before, after=named_state(project)
    )
    return project


async def remove_project(session: AsyncSession, actor: Actor, project: Project) -> None:
    """Delete the project (audited); its members go with it. Its tokens must be revoked first:
    ``membership.delete_project`` does both, in that order."""
    actor.require(Permission.projects_manage)
    members = len(await repository.members_of(session, project.id))
    await audit.record(
        session,
        actor,
        "project.deleted",
        target=target(project),
        before={"name": project.name, "members": members},
    )
    await session.delete(project)
    await session.flush()


async def project_for_token(session: AsyncSession, user: User, project_id: uuid.UUID) -> Project:
    """The project a new API token of ``user`` is for: it must exist in their account, and they must
    belong to it (account admins may create one for any project)."""
    project = await repository.get_in_account(session, user.account_id, project_id)
    if project is None:
        raise InvalidInput("unknown_project", "Unknown project.",
                           details=[{"field": "project_id", "message": "unknown project"}])  # fmt: skip
    is_admin = Permission.projects_manage in permissions_of(user.role)
    if not is_admin and await repository.membership(session, project.id, user.id) is None:
        raise InvalidInput(
            "not_project_member",
            f"You are not a member of the project '{project.name}'.",
            details=[{"field": "project_id", "message": "not a member"}],
        )
    return project


async def _keep_a_project_admin(
    session: AsyncSession, actor: Actor, project: Project, member: ProjectMember
) -> None:
    """A project admin cannot leave their project without one (account admins still can)."""
    if member.role is not ProjectRole.project_admin or actor.can(Permission.projects_manage):
        return
    admins = [
        m for m, _ in await repository.members_of(session, project.id) if m.role is ProjectRole.project_admin
    ]
    if len(admins) <= 1:
        raise Conflict(
            "last_project_admin", "A project keeps at least one project admin: make someone else admin first."
        )


async def list_members(
    session: AsyncSession, actor: Actor, project_id: uuid.UUID
) -> list[tuple[ProjectMember, User]]:
    project = await access_project(session, actor, project_id)
    return await repository.members_of(session, project.id)


async def get_member(
    session: AsyncSession, actor: Actor, project_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[ProjectMember, User]:
    project = await access_project(session, actor, project_id)
    member = await repository.membership(session, project.id, user_id)
    user = await users.get_user(session, actor.account_id, user_id)
    if member is None or user is None:
        raise NotFound("project_member_not_found", "This user is not a member of the project.")
    return member, user


async def set_member(
    session: AsyncSession,
    actor: Actor,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    role: ProjectRole,
    all_assistants: bool = False,
) -> tuple[ProjectMember, User, bool]:
    """Add a member or change their project role; returns (member, user, created)."""
    project = await access_project(session, actor, project_id, manage=True)
    user = await users.get_user(session, actor.account_id, user_id)
    if user is None:
        raise NotFound("user_not_found", "No such user.")
    member = await repository.membership(session, project.id, user.id)
    user_target = Target("project_member", user.id, f"{user.email} in {project.name}")
    if member is None and user.status is not UserStatus.active:
        raise Conflict("user_deactivated", f"{user.email} is deactivated and cannot join projects.")
    if member is not None and role is not ProjectRole.project_admin:
        await _keep_a_project_admin(session, actor, project, member)
    if member is None:
        member = ProjectMember(
            project_id=project.id,
            user_id=user.id,
            account_id=actor.account_id,
            role=role,
            all_assistants=all_assistants,
        )
        session.add(member)
        await session.flush()
        await audit.record(
            session,
            actor,
            "project.member_added",
            target=user_target,
            after={"project": project.name, "role": role, "all_assistants": all_assistants},
        )
        return member, user, True
    before = {"role": member.role, "all_assistants": member.all_assistants}
    member.role, member.all_assistants = role, all_assistants
    after = {"role": member.role, "all_assistants": member.all_assistants}
    await audit.record_changes(
        session, actor, "project.member_changed", target=user_target, before=before, after=after
    )
    return member, user, False


async def remove_member(
    session: AsyncSession, actor: Actor, project_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    project = await access_project(session, actor, project_id, manage=True)
    member = await repository.membership(session, project.id, user_id)
    user = await users.get_user(session, actor.account_id, user_id)
    if member is None or user is None:
        raise NotFound("project_member_not_found", "This user is not a member of the project.")
    await _keep_a_project_admin(session, actor, project, member)
    await audit.record(
        session,
        actor,
        "project.member_removed",
        target=Target("project_member", user.id, f"{user.email} in {project.name}"),
        before={"project": project.name, "role": member.role},
    )
    await session.delete(member)
    await session.flush()


async def names_of(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The names of these projects of the account (others' and deleted ids are left out)."""
    return await repository.names(session, account_id, ids)
