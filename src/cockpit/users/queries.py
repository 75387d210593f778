"""The shape of a search of users: its filters and sort orders (what ``repository`` turns into SQL)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from cockpit.users.models import UserRole, UserStatus
from cockpit.users.seats import SeatProduct

SORTS = ("email", "name", "role", "status", "created_at", "last_login_at")
SORT_PATTERN = r"^-?(email|name|role|status|created_at|last_login_at)$"


@dataclass(frozen=True)
class UserFilters:
    q: str | None = None
    role: UserRole | None = None
    status: UserStatus | None = None
    group_id: uuid.UUID | None = None
    seat: SeatProduct | None = None
    sort: str = "email"
