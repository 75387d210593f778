from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.web import DbSession
from cockpit.membership import service as membership
from cockpit.users import service
from cockpit.users.models import UserRole, UserStatus
from cockpit.users.queries import SORT_PATTERN, UserFilters
from cockpit.users.schemas import (
    ReactivationOut,
    SeatLimits,
    SeatOut,
    SeatsOut,
    UserChange,
    UserOut,
    UserPage,
)
from cockpit.users.seats import SeatProduct

router = APIRouter(tags=["users"])

UserReader = Annotated[Actor, Depends(require(Permission.users_read))]
UserWriter = Annotated[Actor, Depends(require(Permission.users_write))]


@router.get("/users", response_model=UserPage)
async def list_users(
    session: DbSession,
    actor: UserReader,
    params: Annotated[PageParams, Depends(page_params)],
    q: Annotated[str | None, Query(max_length=200, description="Name or e-mail contains")] = None,
    role: UserRole | None = None,
    status: UserStatus | None = None,
    group_id: uuid.UUID | None = None,
    seat: SeatProduct | None = None,
    sort: Annotated[
        str,
        Query(
            pattern=SORT_PATTERN,
            description="email, name, role, status, created_at, last_login_at; '-' for descending",
        ),
    ] = "email",
) -> UserPage:
    filters = UserFilters(q=q or None, role=role, status=status, group_id=group_id, seat=seat, sort=sort)
    page = await service.search_users(session, actor, filters, params)
    return UserPage(items=[UserOut.of(u) for u in page.items], meta=PageMeta.of(page))


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: uuid.UUID, session: DbSession, actor: UserReader) -> UserOut:
    return UserOut.of(await service.access_user(session, actor, user_id))


@router.patch("/users/{user_id}", response_model=UserOut)
async def change_user(user_id: uuid.UUID, body: UserChange, session: DbSession, actor: UserWriter) -> UserOut:
    user = await membership.change_user(
        session, actor, user_id, role=body.role, group_id=body.group_id, name=body.name, seats=body.seats
    )
    return UserOut.of(user)


@router.post("/users/{user_id}/deactivate", response_model=UserOut)
async def deactivate_user(user_id: uuid.UUID, session: DbSession, actor: UserWriter) -> UserOut:
    """Sessions and API tokens stop working at once; seats are freed; the user's data stays."""
    return UserOut.of(await membership.deactivate_user(session, actor, user_id))


@router.post("/users/{user_id}/reactivate", response_model=ReactivationOut)
async def reactivate_user(user_id: uuid.UUID, session: DbSession, actor: UserWriter) -> ReactivationOut:
    """Access returns; seats are re-taken where free (``seats_not_available`` lists the others)."""
    result = await membership.reactivate_user(session, actor, user_id)
    return ReactivationOut(**UserOut.of(result.user).model_dump(), seats_not_available=result.seats_lost)


@router.get("/seats", response_model=SeatsOut, tags=["seats"])
async def get_seats(session: DbSession, actor: UserReader) -> SeatsOut:
    usage = await membership.seat_usage(session, actor)
    return SeatsOut(
        items=[
            SeatOut(product=u.product, limit=u.limit, used=u.used, reserved=u.reserved, available=u.available)
            for u in usage.values()
        ]
    )


@router.patch("/seats", response_model=SeatsOut, tags=["seats"])
async def set_seat_limits(body: SeatLimits, session: DbSession, actor: UserWriter) -> SeatsOut:
    limits = {SeatProduct(k): v for k, v in body.model_dump().items() if v is not None}
    await membership.set_seat_limits(session, actor, limits)
    return await get_seats(session, actor)
