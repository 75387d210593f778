"""Groups: every user belongs to exactly one; the system Default group always exists."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.groups import repository
from cockpit.groups.models import DEFAULT_GROUP_NAME, Group
from cockpit.kit.errors import Conflict, InvalidInput, NotFound, NotPermitted
from cockpit.kit.pagination import Page, PageParams, paginate_rows
from cockpit.kit.validation import require_text
from cockpit.tenancy.lock import lock_account_chain
from cockpit.users.models import User


def target(group: Group) -> Target:
    return Target("group", group.id, group.name)


async def create_default_group(session: AsyncSession, account_id: uuid.UUID) -> Group:
    group = Group(
        id=uuid.uuid4(),
        account_id=account_id,
        name=DEFAULT_GROUP_NAME,
        name_key=DEFAULT_GROUP_NAME.lower(),
        description="Everyone who is not in another group.",
        is_default=True,
    )
    session.add(group)
    await session.flush()
    return group


async def access_group(session: AsyncSession, actor: Actor, group_id: uuid.UUID) -> Group:
    actor.require(Permission.users_read)
    group = await repository.get_in_account(session, actor.account_id, group_id)
    if group is None:
        raise NotFound("group_not_found", "No such group.")
    return group


async def list_groups(session: AsyncSession, actor: Actor) -> list[tuple[Group, int]]:
    actor.require(Permission.users_read)
    return await repository.list_with_counts(session, actor.account_id)


async def page_groups(session: AsyncSession, actor: Actor, params: PageParams) -> Page[tuple[Group, int]]:
    actor.require(Permission.users_read)
    return await paginate_rows(session, repository.with_counts_stmt(actor.account_id), params)


async def _check_name(
    session: AsyncSession, account_id: uuid.UUID, name: str, *, current: Group | None
) -> str:
    name = require_text(name, field="name", label="The group name", max_length=100)
    existing = await repository.get_by_name(session, account_id, name)
    if existing is not None and (current is None or existing.id != current.id):
        raise Conflict("group_name_taken", f"A group named '{existing.name}' already exists.")
    return name


async def create_group(session: AsyncSession, actor: Actor, *, name: str, description: str = "") -> Group:
    actor.require(Permission.users_write)
    name = await _check_name(session, actor.account_id, name, current=None)
    description = require_text(
        description, field="description", label="The description", max_length=500, min_length=0
    )
    group = Group(
        id=uuid.uuid4(),
        account_id=actor.account_id,
        name=name,
        name_key=name.lower(),
        description=description,
    )
    session.add(group)
    await session.flush()
    await audit.record(
        session,
        actor,
        "group.created",
        target=target(group),
        after={"name": name, "description": description},
    )
    return group


async def edit_group(
    session: AsyncSession,
    actor: Actor,
    group_id: uuid.UUID,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Group:
    actor.require(Permission.users_write)
    group = await access_group(session, actor, group_id)
    before = {"name": group.name, "description": group.description}
    if name is not None and name.strip() != group.name:
        if group.is_default:
            raise NotPermitted("default_group", "The Default group cannot be renamed.")
        group.name = await _check_name(session, actor.account_id, name, current=group)
        group.name_key = group.name.lower()
    if description is not None:
        group.description = require_text(
            description, field="description", label="The description", max_length=500, min_length=0
        )
    after = {"name": group.name, "description": group.description}
    await audit.record_changes(
        session, actor, "group.updated", target=target(group), before=before, after=after
    )
    return group


async def delete_group(session: AsyncSession, actor: Actor, group_id: uuid.UUID) -> int:
    """Delete a group; its members (and pending invitations) move to Default. Returns how many moved."""
    actor.require(Permission.users_write)
    group = await access_group(session, actor, group_id)
    if group.is_default:
        raise NotPermitted("default_group", "The Default group cannot be deleted.")
    default = await repository.default_group(session, actor.account_id)
    moved = await repository.member_count(session, actor.account_id, group.id, active_only=False)
    await lock_account_chain(session, actor.account_id)  # before the bulk writes: one lock order
    await repository.move_all_members(session, actor.account_id, group.id, default.id)
    from cockpit.policies.models import Scope
    from cockpit.policies.service import delete_scope_policies

    await delete_scope_policies(session, actor, Scope.group, group.id)  # its access rules go with it
    await audit.record(
        session,
        actor,
        "group.deleted",
        target=target(group),
        before={"name": group.name, "members": moved},
        after={"members_moved_to": default.name},
    )
    await session.delete(group)
    await session.flush()
    return moved


async def add_members(
    session: AsyncSession, actor: Actor, group_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> list[User]:
    """Move one or many users into this group (each leaves their previous group); returns who moved."""
    from cockpit.users.service import move_to_group

    actor.require(Permission.users_write)
    group = await access_group(session, actor, group_id)
    wanted = list(dict.fromkeys(user_ids))
    if not wanted:
        raise InvalidInput(
            "invalid_input",
            "Choose at least one user.",
            details=[{"field": "user_ids", "message": "at least one user"}],
        )
    users = await repository.users_in_account(session, actor.account_id, wanted)
    if len(users) != len(wanted):
        raise NotFound("user_not_found", "One or more of these users do not exist.")
    moved = [user for user in users if user.group_id != group.id]
    for user in moved:
        await move_to_group(session, actor, user, group)
    return moved
