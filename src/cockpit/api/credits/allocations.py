"""Credits API: group budgets and member allocations (/api/v1/groups/{id}/allocation,
/api/v1/users/{id}/allocation)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query

from cockpit.api.credits import router
from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits import allocations as service
from cockpit.credits.schemas.allocations import (
    GroupAllocationChange,
    GroupAllocationOut,
    GroupMemberList,
    MemberAllocationChange,
    MemberAllocationOut,
)
from cockpit.kit.pagination import PageParams, page_params
from cockpit.kit.web import DbSession

Member = Annotated[Actor, Depends(require(Permission.credits_own))]
Manager = Annotated[Actor, Depends(require(Permission.credits_manage))]


@router.get("/groups/{group_id}/allocation", response_model=GroupAllocationOut)
async def get_group_allocation(group_id: uuid.UUID, session: DbSession, actor: Manager) -> GroupAllocationOut:
    """A group's budget (monthly + this cycle's extra), what it distributed to members, and its usage."""
    return GroupAllocationOut.of(await service.group_allocation(session, actor, group_id))


@router.put("/groups/{group_id}/allocation", response_model=GroupAllocationOut)
async def set_group_allocation(
    group_id: uuid.UUID, body: GroupAllocationChange, session: DbSession, actor: Manager
) -> GroupAllocationOut:
    """Set `monthly`, `extra` (this cycle) and `auto_approve_limit`; fields left out stay as they are."""
    figures = await service.set_group_allocation(
        session,
        actor,
        group_id,
        monthly=body.monthly,
        extra=body.extra,
        auto_approve_limit=body.auto_approve_limit,
    )
    return GroupAllocationOut.of(figures)


@router.get("/groups/{group_id}/allocation/members", response_model=GroupMemberList)
async def list_group_members(
    group_id: uuid.UUID,
    session: DbSession,
    actor: Manager,
    paging: Annotated[PageParams, Depends(page_params)],
    q: Annotated[str, Query(max_length=200, description="Search name and e-mail")] = "",
) -> GroupMemberList:
    """The group's members with their monthly, extra, used and remaining credits, by name."""
    return GroupMemberList.of(await service.group_members(session, actor, group_id, paging, q=q))


@router.get("/users/{user_id}/allocation", response_model=MemberAllocationOut)
async def get_member_allocation(user_id: uuid.UUID, session: DbSession, actor: Member) -> MemberAllocationOut:
    """A member's allowance and usage this cycle (administrators: anyone's; members: their own)."""
    return MemberAllocationOut.of(await service.member_allocation(session, actor, user_id))


@router.put("/users/{user_id}/allocation", response_model=MemberAllocationOut)
async def set_member_allocation(
    user_id: uuid.UUID, body: MemberAllocationChange, session: DbSession, actor: Manager
) -> MemberAllocationOut:
    """Set `monthly` and `extra` (this cycle); drawn from the member's group budget."""
    figures = await service.set_member_allocation(
        session, actor, user_id, monthly=body.monthly, extra=body.extra
    )
    return MemberAllocationOut.of(figures)
