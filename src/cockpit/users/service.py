"""Users: search, names, role changes, renames, group moves and group sizes, deactivation.

What reaches beyond the users' table lives above it, in ``membership``: seats (pending invitations
reserve them), a deactivation's end of sessions, reactivation, the PATCH of a user.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.groups import service as groups
from cockpit.groups.models import Group
from cockpit.kit.errors import Conflict, InvalidInput, NotFound, NotPermitted
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.time import utcnow
from cockpit.kit.validation import require_text
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account
from cockpit.tenancy.service import account_by_id
from cockpit.users import repository
from cockpit.users.models import User, UserRole, UserStatus
from cockpit.users.queries import UserFilters
from cockpit.users.seats import SeatProduct, set_user_seats, user_seats


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
    before = (await groups.names_of(session, user.account_id, [user.group_id])).get(user.group_id)
    user.group_id = group.id
    await audit.record(
        session,
        actor,
        "user.group_changed",
        target=target(user),
        before={"group": before},
        after={"group": group.name},
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


async def mark_deactivated(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    """The users' side of a deactivation: the status (their sessions and tokens are refused from now
    on), the seats freed, the audit entry. ``membership.deactivate_user`` also ends their sessions."""
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
    await audit.record(
        session,
        actor,
        "user.deactivated",
        target=target(user),
        before={"status": UserStatus.active},
        after={"status": UserStatus.deactivated, "seats_freed": user_seats(user)},
    )
    return user


async def mark_reactivated(
    session: AsyncSession, actor: Actor, user: User, kept: Sequence[SeatProduct]
) -> None:
    """The users' side of a reactivation (``membership.reactivate_user`` decides which seats are kept)."""
    lost = [seat for seat in user_seats(user) if seat not in kept]
    set_user_seats(user, kept)
    user.status = UserStatus.active
    user.deactivated_at = None
    await audit.record(
        session,
        actor,
        "user.reactivated",
        target=target(user),
        before={"status": UserStatus.deactivated},
        after={"status": UserStatus.active, "seats": list(kept), "seats_not_available": lost},
    )


async def set_seats(session: AsyncSession, actor: Actor, user: User, seats: Sequence[SeatProduct]) -> None:
    """Record the user's seats (``membership.assign_seats`` checks that they are free first)."""
    before = user_seats(user)
    set_user_seats(user, seats)
    await audit.record(
        session,
        actor,
        "user.seats_changed",
        target=target(user),
        before={"seats": before},
        after={"seats": user_seats(user)},
    )


# ---- groups: who is in which (a column of this domain's table) ----


async def add_members(
    session: AsyncSession, actor: Actor, group_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> list[User]:
    """Move one or many users into this group (each leaves their previous group); returns who moved."""
    actor.require(Permission.users_write)
    group = await groups.access_group(session, actor, group_id)
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


async def move_everyone(
    session: AsyncSession, account_id: uuid.UUID, source: uuid.UUID, destination: uuid.UUID
) -> None:
    """Everyone in ``source``, active or not, moves to ``destination`` (a group is being deleted:
    ``membership.delete_group`` records it)."""
    await repository.move_group(session, account_id, source, destination)


async def group_size(
    session: AsyncSession, account_id: uuid.UUID, group_id: uuid.UUID, *, active_only: bool = True
) -> int:
    """How many people the group has: its active members (what every page shows), or everyone."""
    return await repository.group_size(session, account_id, group_id, active_only=active_only)


async def group_sizes(session: AsyncSession, account_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """How many active people each group of the account has (groups with nobody are left out)."""
    return await repository.group_sizes(session, account_id)


async def groups_with_sizes(session: AsyncSession, actor: Actor) -> list[tuple[Group, int]]:
    """The account's groups (Default first, then by name), each with its number of active people."""
    rows = await groups.list_groups(session, actor)
    sizes = await repository.group_sizes(session, actor.account_id)
    return [(group, sizes.get(group.id, 0)) for group in rows]


async def page_groups_with_sizes(
    session: AsyncSession, actor: Actor, params: PageParams
) -> Page[tuple[Group, int]]:
    page = await groups.page_groups(session, actor, params)
    sizes = await repository.group_sizes(session, actor.account_id, [g.id for g in page.items])
    return page.with_items([(group, sizes.get(group.id, 0)) for group in page.items])


async def names_of(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The names (or e-mails) of these users of the account; other accounts' ids are left out."""
    return {
        user.id: user.display_name for user in (await repository.by_ids(session, account_id, ids)).values()
    }


async def account_of(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """The users' account (it exists: users are deleted with it)."""
    account = await account_by_id(session, account_id)
    assert account is not None
    return account


async def add_user(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    email: str,
    name: str,
    role: UserRole,
    group_id: uuid.UUID,
    password_hash: str,
    seats: Sequence[SeatProduct] = (),
) -> User:
    """A new active user, written at once (rows that point at it may follow). The caller has checked
    the e-mail, the group and the seats, and records the audit entry of what made the user."""
    user = User(
        id=uuid.uuid4(),
        account_id=account_id,
        email=email,
        name=name,
        role=role,
        status=UserStatus.active,
        password_hash=password_hash,
        group_id=group_id,
    )
    set_user_seats(user, seats)
    session.add(user)
    await session.flush()
    return user


async def get_user(session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
    """A user of this account, for code acting on the account's behalf (no permission check)."""
    return await repository.get_in_account(session, account_id, user_id)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this e-mail, in any account (e-mail is the login name, unique installation-wide)."""
    return await repository.get_by_email(session, email)


async def email_taken(session: AsyncSession, email: str) -> bool:
    return await repository.get_by_email(session, email) is not None


async def list_all(
    session: AsyncSession, account_id: uuid.UUID, *, by_name: bool = False, limit: int | None = None
) -> list[User]:
    """Everyone in the account by e-mail (or by name), the first ``limit`` (pickers and filters)."""
    return await repository.list_in_account(session, account_id, by_name=by_name, limit=limit)


async def users_by_id(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, User]:
    """These users of the account by id (other accounts' ids are left out)."""
    return await repository.by_ids(session, account_id, ids)


async def count_users(
    session: AsyncSession, account_id: uuid.UUID, *, status: UserStatus | None = None
) -> int:
    return await repository.count_in_account(session, account_id, status=status)
