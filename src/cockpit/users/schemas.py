from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.users.models import User, UserRole, UserStatus
from cockpit.users.seats import SeatProduct, user_seats


class UserOut(OutputSchema):
    id: uuid.UUID
    email: str
    name: str
    role: UserRole
    status: UserStatus
    group_id: uuid.UUID
    seats: list[SeatProduct]
    created_at: datetime
    last_login_at: datetime | None
    deactivated_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            status=user.status,
            group_id=user.group_id,
            seats=user_seats(user),
            created_at=user.created_at,
            last_login_at=user.last_login_at,
            deactivated_at=user.deactivated_at,
        )


class UserPage(OutputSchema):
    items: list[UserOut]
    meta: PageMeta


class UserChange(InputSchema):
    role: UserRole | None = None
    group_id: uuid.UUID | None = None
    name: str | None = Field(default=None, max_length=200)
    seats: list[SeatProduct] | None = Field(default=None, max_length=3)


class ReactivationOut(UserOut):
    seats_not_available: list[SeatProduct] = []


class SeatOut(OutputSchema):
    product: SeatProduct
    limit: int
    used: int
    reserved: int
    available: int


class SeatsOut(OutputSchema):
    items: list[SeatOut]


class SeatLimits(InputSchema):
    copilot: int | None = Field(default=None, ge=0, le=1_000_000)
    console: int | None = Field(default=None, ge=0, le=1_000_000)
    compute: int | None = Field(default=None, ge=0, le=1_000_000)
