"""Groups: every user belongs to exactly one; the system Default group always exists.

The groups themselves (names, the Default group). Who is in a group is a column of the users' table:
``users.service`` moves people and counts them; deleting a group, which moves its people and its
invitations and drops its access rules, is ``membership.delete_group``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.groups import repository
from cockpit.groups.models import DEFAULT_GROUP_NAME, DESCRIPTION_MAX, Group
from cockpit.kit.errors import InvalidInput, NotFound, NotPermitted
from cockpit.kit.naming import (
    FindByName,
    checked_description,
    checked_name,
    named_state,
    rename_and_describe,
    set_name,
)
from cockpit.kit.pagination import Page, PageParams, paginate


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


async def list_groups(session: AsyncSession, actor: Actor) -> list[Group]:
    """The account's groups, the Default group first, then by name."""
    actor.require(Permission.users_read)
    return await repository.list_in_account(session, actor.account_id)


async def groups_of(session: AsyncSession, account_id: uuid.UUID) -> list[Group]:
    """The account's groups (Default first, then by name), for code acting on the account's behalf."""
    return await repository.list_in_account(session, account_id)


async def page_groups(session: AsyncSession, actor: Actor, params: PageParams) -> Page[Group]:
    actor.require(Permission.users_read)
    return await paginate(session, repository.list_stmt(actor.account_id), params)


async def get_group(session: AsyncSession, account_id: uuid.UUID, group_id: uuid.UUID) -> Group | None:
    """A group of the account, for code acting on the account's behalf (no permission check)."""
    return await repository.get_in_account(session, account_id, group_id)


async def default_group(session: AsyncSession, account_id: uuid.UUID) -> Group:
    """The account's Default group (every account has one)."""
    return await repository.default_group(session, account_id)


async def group_named(session: AsyncSession, account_id: uuid.UUID, name: str) -> Group | None:
    """The account's group of this name (case does not matter), if any."""
    return await repository.get_by_name(session, account_id, name)


async def resolve_group(session: AsyncSession, account_id: uuid.UUID, group_id: uuid.UUID | None) -> Group:
    """The group a body refers to, or the account's Default group when none is given."""
    if group_id is None:
        return await repository.default_group(session, account_id)
    group = await repository.get_in_account(session, account_id, group_id)
    if group is None:
        raise InvalidInput(
            "unknown_group", "Unknown group.", details=[{"field": "group_id", "message": "unknown group"}]
        )
    return group


async def names_of(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The names of these groups of the account (ids of other accounts or of deleted groups: left out)."""
    return await repository.names(session, account_id, ids)


def _find(session: AsyncSession, account_id: uuid.UUID) -> FindByName:
    """How ``kit.naming`` finds the account's group of a name."""
    return partial(repository.get_by_name, session, account_id)


async def create_group(session: AsyncSession, actor: Actor, *, name: str, description: str = "") -> Group:
    actor.require(Permission.users_write)
    name = await checked_name(name, kind="group", find=_find(session, actor.account_id))
    description = checked_description(description, max_length=DESCRIPTION_MAX)
    group = Group(id=uuid.uuid4(), account_id=actor.account_id, description=description)
    set_name(group, name)
    session.add(group)
    await session.flush()
    await audit.record(session, actor, "group.created", target=target(group), after=named_state(group))
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
    before = named_state(group)
    if group.is_default and name is not None and name.strip() != group.name:
        raise NotPermitted("default_group", "The Default group cannot be renamed.")
    await rename_and_describe(
        group, kind="group", find=_find(session, actor.account_id), name=name, description=description,
        description_max=DESCRIPTION_MAX,
    )  # fmt: skip
    await audit.record_changes(
        session, actor, "group.updated", target=target(group), before=before, after=named_state(group)
    )
    return group


async def remove_group(session: AsyncSession, group: Group) -> None:
    """Delete the group's row; its people, invitations and access rules must have left it first
    (``membership.delete_group`` does all of it, audited)."""
    if group.is_default:
        raise NotPermitted("default_group", "The Default group cannot be deleted.")
    await session.delete(group)
    await session.flush()
