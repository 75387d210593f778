"""Users: search, role changes, group moves, seats, deactivation and reactivation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.groups import repository as groups_repo
from cockpit.groups.models import Group
from cockpit.kit.errors import Conflict, InvalidInput, NotFound, NotPermitted
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.time import utcnow
from cockpit.kit.validation import require_text
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account
from cockpit.users import repository
from cockpit.users import seats as seats_mod
from cockpit.users.models import User, UserRole, UserStatus
from cockpit.users.repository import UserFilters
from cockpit.users.seats import SeatProduct, SeatUsage, require_available, set_user_seats, user_seats


def target(user: User) -> Target:
    return Target("user", user.id, user.email)


async def access_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    """A user of the caller's account (needs users:read); anything else is NotFound."""
    actor.require(Permission.users_read)
    user = await repository.get_in_account(session, actor.account_id, user_id)
    if user is None:
        raise NotFound("user_not_found", "No such user.")
    return user


async def search_users(
    session: AsyncSession, actor: Actor, filters: UserFilters, params: PageParams
) -> Page[User]:
    actor.require(Permission.users_read)
    return await paginate(session, repository.search_stmt(actor.account_id, filters), params)


async def resolve_group(session: AsyncSession, account_id: uuid.UUID, group_id: uuid.UUID | None) -> Group:
    """The group a body refers to, or the account's Default group when none is given."""
    if group_id is None:
        return await groups_repo.default_group(session, account_id)
    group = await groups_repo.get_in_account(session, account_id, group_id)
    if group is None:
        raise InvalidInput(
            "unknown_group", "Unknown group.", details=[{"field": "group_id", "message": "unknown group"}]
        )
    return group


def check_role_grant(actor: Actor, role: UserRole) -> None:
    if role is UserRole.owner and not actor.can(Permission.owners_manage):
        raise NotPermitted("owner_role_restricted", "Only an owner can grant the owner role.")


async def _guard_last_owner(session: AsyncSession, user: User, message: str) -> None:
    await lock_account(session, user.account_id)
    if (
        user.role is UserRole.owner
        and user.status is UserStatus.active
        and await repository.count_active_owners(session, user.account_id) <= 1
    ):
        raise Conflict("last_owner", message)


async def change_role(session: AsyncSession, actor: Actor, user: User, role: UserRole) -> None:
    if user.role is role:
        return
    if user.id == actor.user_id:
        raise NotPermitted("own_role", "You cannot change your own role.")
    if UserRole.owner in (user.role, role):
        check_role_grant(actor, UserRole.owner)
    await _guard_last_owner(
        session, user, "The last owner keeps the owner role: make someone else owner first."
    )
    before = user.role
    user.role = role
    await audit.record(
        session,
        actor,
        "user.role_changed",
        target=target(user),
        before={"role": before},
        after={"role": role},
    )


async def move_to_group(session: AsyncSession, actor: Actor, user: User, group: Group) -> None:
    if user.group_id == group.id:
        return
    before = await groups_repo.get_in_account(session, user.account_id, user.group_id)
    user.group_id = group.id
    await audit.record(
        session,
        actor,
        "user.group_changed",
        target=target(user),
        before={"group": before.name if before else None},
        after={"group": group.name},
    )


async def assign_seats(session: AsyncSession, actor: Actor, user: User, seats: Sequence[SeatProduct]) -> None:
    before = user_seats(user)
    if set(before) == set(seats):
        return
    if user.status is UserStatus.active:
        account = await _account(session, user.account_id)
        await require_available(session, account, seats, already_held=before)
    set_user_seats(user, seats)
    await audit.record(
        session,
        actor,
        "user.seats_changed",
        target=target(user),
        before={"seats": before},
        after={"seats": user_seats(user)},
    )


async def rename_user(session: AsyncSession, actor: Actor, user: User, name: str) -> None:
    name = require_text(name, field="name", label="The name", max_length=200, min_length=0)
    if name == user.name:
        return
    before = user.name
    user.name = name
    await audit.record(
        session, actor, "user.renamed", target=target(user), before={"name": before}, after={"name": name}
    )


async def change_user(
    session: AsyncSession,
    actor: Actor,
    user_id: uuid.UUID,
    *,
    role: UserRole | None = None,
    group_id: uuid.UUID | None = None,
    name: str | None = None,
    seats: Sequence[SeatProduct] | None = None,
) -> User:
    """The PATCH of a user: each field given is changed (and audited) on its own rules."""
    actor.require(Permission.users_write)
    user = await access_user(session, actor, user_id)
    if name is not None:
        await rename_user(session, actor, user, name)
    if role is not None:
        await change_role(session, actor, user, role)
    if group_id is not None:
        await move_to_group(session, actor, user, await resolve_group(session, actor.account_id, group_id))
    if seats is not None:
        await assign_seats(session, actor, user, seats)
    return user


async def deactivate_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    """From now on the user's sessions and tokens are refused; their seats are freed; data stays."""
    actor.require(Permission.users_write)
    user = await access_user(session, actor, user_id)
    if user.id == actor.user_id:
        raise NotPermitted("own_account", "You cannot deactivate yourself.")
    if user.status is UserStatus.deactivated:
        raise Conflict("already_deactivated", "This user is already deactivated.")
    if user.role is UserRole.owner:
        check_role_grant(actor, UserRole.owner)
    await _guard_last_owner(session, user, "The last owner cannot be deactivated.")
    user.status = UserStatus.deactivated
    user.deactivated_at = utcnow()
    await repository.revoke_sessions(session, user)
    await audit.record(
        session,
        actor,
        "user.deactivated",
        target=target(user),
        before={"status": UserStatus.active},
        after={"status": UserStatus.deactivated, "seats_freed": user_seats(user)},
    )
    return user


@dataclass
class Reactivation:
    user: User
    seats_lost: list[SeatProduct] = field(default_factory=list)


async def reactivate_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> Reactivation:
    """Access returns (tokens that were not revoked work again); seats are re-taken where free."""
    actor.require(Permission.users_write)
    user = await access_user(session, actor, user_id)
    if user.status is UserStatus.active:
        raise Conflict("already_active", "This user is already active.")
    if user.role is UserRole.owner:
        check_role_grant(actor, UserRole.owner)
    account = await _account(session, user.account_id)
    kept: list[SeatProduct] = []
    lost: list[SeatProduct] = []
    for seat in user_seats(user):
        try:
            await require_available(session, account, [seat])
        except Conflict:
            lost.append(seat)
        else:
            kept.append(seat)
    set_user_seats(user, kept)
    user.status = UserStatus.active
    user.deactivated_at = None
    await audit.record(
        session,
        actor,
        "user.reactivated",
        target=target(user),
        before={"status": UserStatus.deactivated},
        after={"status": UserStatus.active, "seats": kept, "seats_not_available": lost},
    )
    return Reactivation(user, lost)


async def _account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    account = await session.get(Account, account_id)
    assert account is not None
    return account


async def seat_usage(session: AsyncSession, actor: Actor) -> dict[SeatProduct, SeatUsage]:
    actor.require(Permission.users_read)
    return await seats_mod.usage(session, await _account(session, actor.account_id))


async def set_seat_limits(session: AsyncSession, actor: Actor, limits: dict[SeatProduct, int]) -> None:
    """Change seat limits; a limit below the seats in use (or reserved by invitations) is refused."""
    actor.require(Permission.users_write)
    account = await _account(session, actor.account_id)
    current = await seats_mod.usage(session, account)
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    for product, limit in limits.items():
        seat = current[product]
        if limit < seat.used + seat.reserved:
            raise Conflict(
                "seat_limit_below_usage",
                f"The {product.value} limit cannot be {limit}: {seat.used} seats are in use and "
                f"{seat.reserved} reserved by invitations. Free seats first.",
            )
        if limit != seat.limit:
            before[product.value], after[product.value] = seat.limit, limit
            setattr(account, f"seat_limit_{product.value}", limit)
    if after:
        await audit.record(
            session,
            actor,
            "seats.limits_changed",
            target=Target("account", account.id, account.name),
            before=before,
            after=after,
        )
