"""What changes several domains at once when people, groups or projects change (see the package)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.auth import service as auth
from cockpit.auth import tokens
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.events.service import emit
from cockpit.groups import service as groups
from cockpit.invitations import service as invitations
from cockpit.kit.errors import Conflict, NotPermitted
from cockpit.policies import service as policies
from cockpit.policies.models import Scope
from cockpit.projects import service as projects
from cockpit.tenancy.lock import lock_account_chain
from cockpit.users import service as users
from cockpit.users.models import User, UserRole, UserStatus
from cockpit.users.names import actor_name, person_name
from cockpit.users.seats import SeatProduct, SeatUsage, require_available, user_seats
from cockpit.users.seats import usage as seats_usage

# ---- people ----


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
    user = await users.access_user(session, actor, user_id)
    if name is not None:
        await users.rename_user(session, actor, user, name)
    if role is not None:
        await users.change_role(session, actor, user, role)
    if group_id is not None:
        group = await groups.resolve_group(session, actor.account_id, group_id)
        await users.move_to_group(session, actor, user, group)
    if seats is not None:
        await assign_seats(session, actor, user, seats)
    return user


async def assign_seats(session: AsyncSession, actor: Actor, user: User, seats: Sequence[SeatProduct]) -> None:
    """Give the user these seats (and only these); an active user's new seats must be free."""
    before = user_seats(user)
    if set(before) == set(seats):
        return
    if user.status is UserStatus.active:
        account = await users.account_of(session, user.account_id)
        await require_available(
            session, account, seats, reserved=invitations.reserved_seats, already_held=before
        )
    await users.set_seats(session, actor, user, seats)


async def deactivate_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    """From now on the user's sessions and tokens are refused; their seats are freed; data stays."""
    user = await users.mark_deactivated(session, actor, user_id)
    await auth.end_sessions(session, user.id)
    data = {"person_name": person_name(user), "person_email": user.email}
    data["deactivated_by"] = await actor_name(session, actor)
    await emit(
        session,
        user.account_id,
        "user.deactivated",
        data,
        person_id=user.id,
        group_id=user.group_id,
        actor_id=actor.user_id,
    )
    return user


@dataclass
class Reactivation:
    user: User
    seats_lost: list[SeatProduct] = field(default_factory=list)


async def reactivate_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> Reactivation:
    """Access returns (tokens that were not revoked work again); seats are re-taken where free."""
    actor.require(Permission.users_write)
    user = await users.access_user(session, actor, user_id)
    if user.status is UserStatus.active:
        raise Conflict("already_active", "This user is already active.")
    if user.role is UserRole.owner:
        users.check_role_grant(actor, UserRole.owner)
    account = await users.account_of(session, user.account_id)
    kept: list[SeatProduct] = []
    lost: list[SeatProduct] = []
    for seat in user_seats(user):
        try:
            await require_available(session, account, [seat], reserved=invitations.reserved_seats)
        except Conflict:
            lost.append(seat)
        else:
            kept.append(seat)
    await users.mark_reactivated(session, actor, user, kept)
    return Reactivation(user, lost)


# ---- seats ----


async def seat_usage(session: AsyncSession, actor: Actor) -> dict[SeatProduct, SeatUsage]:
    actor.require(Permission.users_read)
    account = await users.account_of(session, actor.account_id)
    return await seats_usage(session, account, invitations.reserved_seats)


async def set_seat_limits(session: AsyncSession, actor: Actor, limits: dict[SeatProduct, int]) -> None:
    """Change seat limits; a limit below the seats in use (or reserved by invitations) is refused."""
    actor.require(Permission.users_write)
    account = await users.account_of(session, actor.account_id)
    current = await seats_usage(session, account, invitations.reserved_seats)
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


# ---- groups and projects ----


async def delete_group(session: AsyncSession, actor: Actor, group_id: uuid.UUID) -> int:
    """Delete a group; its members (and pending invitations) move to Default. Returns how many moved."""
    actor.require(Permission.users_write)
    group = await groups.access_group(session, actor, group_id)
    if group.is_default:
        raise NotPermitted("default_group", "The Default group cannot be deleted.")
    default = await groups.default_group(session, actor.account_id)
    moved = await users.group_size(session, actor.account_id, group.id, active_only=False)
    await lock_account_chain(session, actor.account_id)  # before the bulk writes: one lock order
    await users.move_everyone(session, actor.account_id, group.id, default.id)
    await invitations.move_to_group(session, actor.account_id, group.id, default.id)
    await policies.delete_scope_policies(session, actor, Scope.group, group.id)  # its access rules go
    await audit.record(
        session,
        actor,
        "group.deleted",
        target=groups.target(group),
        before={"name": group.name, "members": moved},
        after={"members_moved_to": default.name},
    )
    await groups.remove_group(session, group)
    return moved


async def delete_project(session: AsyncSession, actor: Actor, project_id: uuid.UUID) -> None:
    """Delete a project; its tokens stop working first (their usage stays attributed to it)."""
    actor.require(Permission.projects_manage)
    project = await projects.access_project(session, actor, project_id)
    await lock_account_chain(session, actor.account_id)  # before the tokens' rows: one lock order
    await tokens.revoke_project_tokens(session, project.account_id, project.id)
    await projects.remove_project(session, actor, project)
