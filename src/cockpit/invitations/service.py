"""Invitations: a one-time, expiring link by e-mail; accepting it creates the user."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Collection, Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.auth.passwords import check_policy, hash_password_async
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.credits.allocations import grant_signup_credits
from cockpit.events.service import emit
from cockpit.groups.models import Group
from cockpit.groups.service import resolve_group
from cockpit.invitations import repository
from cockpit.invitations.models import Invitation
from cockpit.jobs import service as jobs
from cockpit.kit.db import read_only
from cockpit.kit.errors import Conflict, InvalidInput, NotFound
from cockpit.kit.mail import Email, deliver, mail_configured
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.secrets import encrypt
from cockpit.kit.time import day_text, utcnow
from cockpit.kit.validation import normalize_email, require_text
from cockpit.tenancy.lock import lock_account_chain
from cockpit.tenancy.models import Account
from cockpit.users import service as users
from cockpit.users.models import User, UserRole
from cockpit.users.names import actor_name, person_name
from cockpit.users.seats import SeatLedger, SeatProduct, parse_seats, require_available, set_user_seats

STATUSES = ("pending", "accepted", "revoked", "expired")


# The job that e-mails an invitation's link (registered in cockpit/invitations/tasks.py).
SEND_EMAIL = "invitations.send_email"


def status_of(invitation: Invitation) -> str:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= utcnow():
        return "expired"
    return "pending"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def accept_url(settings: Settings, raw: str) -> str:
    return f"{settings.base_url}/invite/{raw}"


def target(invitation: Invitation) -> Target:
    return Target("invitation", invitation.id, invitation.email)


def _invitation_email(settings: Settings, account: Account, invitation: Invitation, url: str) -> Email:
    days = max(1, round((invitation.expires_at - utcnow()).total_seconds() / 86400))
    greeting = f"Hello {invitation.name}," if invitation.name else "Hello,"
    text = (
        f"{greeting}\n\nYou are invited to join {account.name} on Cockpit.\n\n"
        f"Open this link to choose your password (it works once, for {days} days):\n{url}\n\n"
        "If you did not expect this invitation, you can ignore this message.\n"
    )
    return Email(to=invitation.email, subject=f"You are invited to {account.name} on Cockpit", text=text)


def _issue_link(settings: Settings, invitation: Invitation) -> str:
    raw = secrets.token_urlsafe(32)
    invitation.token_hash = hash_token(raw)
    invitation.expires_at = utcnow() + timedelta(days=settings.invitation_days)
    invitation.sent_count += 1
    invitation.last_sent_at = utcnow()
    return raw


async def _queue_email(session: AsyncSession, settings: Settings, invitation: Invitation, url: str) -> None:
    """The e-mail goes out from the job queue once this transaction commits (retried with backoff
    while the mail server is unreachable). The link is a secret: the job keeps it encrypted."""
    if not mail_configured(settings):
        return
    await jobs.enqueue(
        session,
        SEND_EMAIL,
        {"invitation_id": str(invitation.id), "link": encrypt(url, settings.resolved_secret_key())},
        account_id=invitation.account_id,
        dedupe_key=f"{SEND_EMAIL}:{invitation.id}:{invitation.sent_count}",
    )


async def send_invitation_email(
    session: AsyncSession, settings: Settings, invitation_id: uuid.UUID, url: str
) -> bool:
    """Send the e-mail of a queued invitation link, unless the link is no longer the one to send
    (resent since, revoked, accepted or expired): then nothing is sent (False)."""
    invitation = await session.get(Invitation, invitation_id)
    raw = url.rsplit("/", 1)[-1]
    if invitation is None or status_of(invitation) != "pending" or invitation.token_hash != hash_token(raw):
        return False
    account = await session.get(Account, invitation.account_id)
    assert account is not None
    await deliver(settings, _invitation_email(settings, account, invitation, url))
    return True


async def invite(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    *,
    email: str,
    name: str = "",
    role: UserRole = UserRole.member,
    group_id: uuid.UUID | None = None,
    seats: Sequence[str] = (),
    send: bool = True,
    ledger: SeatLedger | None = None,
    group: Group | None = None,
) -> tuple[Invitation, str]:
    """Invite one person; returns the invitation and its accept URL (the link is also e-mailed)."""
    actor.require(Permission.users_write)
    email = normalize_email(email)
    name = require_text(name, field="name", label="The name", max_length=200, min_length=0)
    users.check_role_grant(actor, role)
    products = parse_seats(list(seats))
    if await users.email_taken(session, email):
        raise Conflict("email_taken", f"{email} already has a Cockpit account.")
    if await repository.pending_for_email(session, actor.account_id, email) is not None:
        raise Conflict("already_invited", f"{email} already has a pending invitation: resend it instead.")
    if group is None or group.account_id != actor.account_id:  # bulk callers pass the group resolved
        group = await resolve_group(session, actor.account_id, group_id)
    account = await session.get(Account, actor.account_id)
    assert account is not None
    if ledger is not None:
        ledger.take(products)
    else:
        await require_available(session, account, products, reserved=repository.reserved_seats)
    invitation = Invitation(
        id=uuid.uuid4(),
        account_id=account.id,
        email=email,
        name=name,
        role=role,
        group_id=group.id,
        invited_by_id=actor.user_id,
        created_at=utcnow(),
        sent_count=0,
    )
    set_user_seats(invitation, products)
    raw = _issue_link(settings, invitation)
    session.add(invitation)
    await audit.record(
        session,
        actor,
        "invitation.created",
        target=target(invitation),
        after={"email": email, "role": role, "group": group.name, "seats": invitation.seats},
    )
    # Whether or not the link is e-mailed (it may be handed over), the person is invited; a resend
    # is the same invitation and is not announced again.
    await emit(
        session,
        account.id,
        "invitation.sent",
        {
            "person_name": name or email,
            "person_email": email,
            "invited_by": await actor_name(session, actor),
            "expires_at": day_text(invitation.expires_at, account.timezone),
        },
        group_id=group.id,
        actor_id=actor.user_id,
    )
    url = accept_url(settings, raw)
    if send:
        await _queue_email(session, settings, invitation, url)
    return invitation, url


async def reserved_seats(session: AsyncSession, account_id: uuid.UUID) -> dict[SeatProduct, int]:
    """The seats the account's pending invitations reserve (``users.seats.Reservations``)."""
    return await repository.reserved_seats(session, account_id)


async def move_to_group(
    session: AsyncSession, account_id: uuid.UUID, source: uuid.UUID, destination: uuid.UUID
) -> None:
    """Every invitation of the account into ``source`` now invites into ``destination`` (a group is
    being deleted: ``membership.delete_group`` records it)."""
    await repository.move_group(session, account_id, source, destination)


async def names_of(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The e-mails of these invitations of the account (others' and deleted ids are left out)."""
    return await repository.emails(session, account_id, ids)


async def access_invitation(session: AsyncSession, actor: Actor, invitation_id: uuid.UUID) -> Invitation:
    actor.require(Permission.users_read)
    invitation = await repository.get_in_account(session, actor.account_id, invitation_id)
    if invitation is None:
        raise NotFound("invitation_not_found", "No such invitation.")
    return invitation


async def list_invitations(
    session: AsyncSession, actor: Actor, *, status: str | None, params: PageParams
) -> Page[Invitation]:
    actor.require(Permission.users_read)
    if status is not None and status not in STATUSES:
        raise InvalidInput(
            "invalid_input",
            f"status must be one of {', '.join(STATUSES)}.",
            details=[{"field": "status", "message": "unknown status"}],
        )
    return await paginate(session, repository.list_stmt(actor.account_id, status), params)


async def resend(
    session: AsyncSession, actor: Actor, settings: Settings, invitation_id: uuid.UUID
) -> tuple[Invitation, str]:
    """A new link (the previous one stops working) with a fresh expiry, sent again."""
    actor.require(Permission.users_write)
    invitation = await access_invitation(session, actor, invitation_id)
    if status_of(invitation) in ("accepted", "revoked"):
        raise Conflict(
            "invitation_closed", f"This invitation was {status_of(invitation)}; it cannot be resent."
        )
    if await users.email_taken(session, invitation.email):
        raise Conflict("email_taken", f"{invitation.email} already has a Cockpit account.")
    other = await repository.pending_for_email(session, actor.account_id, invitation.email)
    if other is not None and other.id != invitation.id:
        raise Conflict(
            "already_invited", f"{invitation.email} has a newer pending invitation: resend that one."
        )
    if status_of(invitation) == "expired":  # an expired invitation no longer holds its seats
        account = await session.get(Account, actor.account_id)
        assert account is not None
        await require_available(
            session, account, [SeatProduct(p) for p in invitation.seats], reserved=repository.reserved_seats
        )
    raw = _issue_link(settings, invitation)
    await audit.record(
        session,
        actor,
        "invitation.resent",
        target=target(invitation),
        after={"expires_at": invitation.expires_at, "sent_count": invitation.sent_count},
    )
    url = accept_url(settings, raw)
    await _queue_email(session, settings, invitation, url)
    return invitation, url


async def revoke(session: AsyncSession, actor: Actor, invitation_id: uuid.UUID) -> Invitation:
    actor.require(Permission.users_write)
    invitation = await access_invitation(session, actor, invitation_id)
    if status_of(invitation) in ("accepted", "revoked"):
        raise Conflict("invitation_closed", f"This invitation was already {status_of(invitation)}.")
    invitation.revoked_at = utcnow()
    await audit.record(
        session,
        actor,
        "invitation.revoked",
        target=target(invitation),
        before={"status": "pending"},
        after={"status": "revoked"},
    )
    return invitation


async def find_open(session: AsyncSession, raw: str) -> Invitation:
    """The invitation behind a link, if it can still be accepted; otherwise a clear error."""
    invitation = await repository.by_token_hash(session, hash_token(raw[:200])) if raw else None
    if invitation is None or invitation.revoked_at is not None:
        raise NotFound(
            "invitation_invalid", "This invitation link is not valid. Ask your administrator for a new one."
        )
    if invitation.accepted_at is not None:
        raise Conflict(
            "invitation_used", "This invitation was already used. Sign in with your e-mail and password."
        )
    if invitation.expires_at <= utcnow():
        raise Conflict(
            "invitation_expired", "This invitation link has expired. Ask your administrator to resend it."
        )
    return invitation


async def _acceptable(session: AsyncSession, token: str) -> Invitation:
    invitation = await find_open(session, token)
    if await users.email_taken(session, invitation.email):
        raise Conflict("email_taken", f"{invitation.email} already has a Cockpit account.")
    return invitation


async def accept(session: AsyncSession, *, token: str, name: str, password: str) -> User:
    # Checked in a read-only transaction first, so that no lock or connection is held while the
    # password is hashed; then again under the account's lock (the link may have been used
    # meanwhile: a second acceptance of one link gets 409, not a duplicate user).
    async with read_only(session):
        invitation = await _acceptable(session, token)
        name = require_text(name, field="name", label="Your name", max_length=200)
        check_policy(password)
    password_hash = await hash_password_async(password)
    await lock_account_chain(session, invitation.account_id)
    session.expire(invitation)
    invitation = await _acceptable(session, token)
    account = await session.get(Account, invitation.account_id)
    assert account is not None
    group = await resolve_group(session, account.id, invitation.group_id)
    seats = [SeatProduct(s) for s in invitation.seats]
    # The invitation's reservation becomes the user's seat.
    for seat in seats:
        await require_available(
            session, account, [seat], reserved=repository.reserved_seats, releasing_reservation=[seat]
        )
    # Written at once: the user row must exist before the invitation points at it.
    user = await users.add_user(
        session, account_id=account.id, email=invitation.email, name=name, role=invitation.role,
        group_id=group.id, password_hash=password_hash, seats=seats,
    )  # fmt: skip
    invitation.accepted_at = utcnow()
    invitation.accepted_user_id = user.id
    await session.flush()
    actor = Actor.for_user(user)
    await audit.record(
        session,
        actor,
        "invitation.accepted",
        target=target(invitation),
        before={"status": "pending"},
        after={"status": "accepted"},
    )
    await audit.record(
        session,
        actor,
        "user.created",
        target=Target("user", user.id, user.email),
        after={"email": user.email, "role": user.role, "group": group.name, "seats": invitation.seats},
    )
    await grant_signup_credits(session, user)
    await emit(
        session,
        account.id,
        "invitation.accepted",
        {"person_name": person_name(user), "person_email": user.email},
        person_id=user.id,
        group_id=group.id,
        actor_id=user.id,
    )
    return user
