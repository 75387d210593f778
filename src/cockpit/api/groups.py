from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.groups import service
from cockpit.groups.schemas import (
    GroupChange,
    GroupCreate,
    GroupDeleted,
    GroupList,
    GroupMembersAdd,
    GroupOut,
)
from cockpit.kit.pagination import PageMeta, PageParams, catalog_page_params
from cockpit.kit.web import DbSession
from cockpit.membership import service as membership
from cockpit.users import service as users

router = APIRouter(prefix="/groups", tags=["groups"])

GroupReader = Annotated[Actor, Depends(require(Permission.users_read))]
GroupWriter = Annotated[Actor, Depends(require(Permission.users_write))]


async def _out(session: DbSession, actor: Actor, group_id: uuid.UUID) -> GroupOut:
    group = await service.access_group(session, actor, group_id)
    return GroupOut.of(group, await users.group_size(session, actor.account_id, group.id))


@router.get("", response_model=GroupList)
async def list_groups(
    session: DbSession, actor: GroupReader, paging: Annotated[PageParams, Depends(catalog_page_params)]
) -> GroupList:
    """The account's groups (the Default group first, then by name), a page at a time."""
    page = await users.page_groups_with_sizes(session, actor, paging)
    return GroupList(items=[GroupOut.of(g, n) for g, n in page.items], meta=PageMeta.of(page))


@router.post("", response_model=GroupOut, status_code=status.HTTP_201_CREATED)
async def create_group(body: GroupCreate, session: DbSession, actor: GroupWriter) -> GroupOut:
    group = await service.create_group(session, actor, name=body.name, description=body.description)
    return GroupOut.of(group, 0)


@router.get("/{group_id}", response_model=GroupOut)
async def get_group(group_id: uuid.UUID, session: DbSession, actor: GroupReader) -> GroupOut:
    return await _out(session, actor, group_id)


@router.patch("/{group_id}", response_model=GroupOut)
async def change_group(
    group_id: uuid.UUID, body: GroupChange, session: DbSession, actor: GroupWriter
) -> GroupOut:
    await service.edit_group(session, actor, group_id, name=body.name, description=body.description)
    return await _out(session, actor, group_id)


@router.delete("/{group_id}", response_model=GroupDeleted)
async def delete_group(group_id: uuid.UUID, session: DbSession, actor: GroupWriter) -> GroupDeleted:
    """Delete a group; its members move to Default."""
    moved = await membership.delete_group(session, actor, group_id)
    return GroupDeleted(id=group_id, members_moved_to_default=moved)


@router.post("/{group_id}/members", response_model=GroupOut)
async def add_members(
    group_id: uuid.UUID, body: GroupMembersAdd, session: DbSession, actor: GroupWriter
) -> GroupOut:
    """Move users into this group (each user is in exactly one group)."""
    await users.add_members(session, actor, group_id, body.user_ids)
    return await _out(session, actor, group_id)
