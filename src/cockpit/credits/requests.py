"""Credit requests: a member asks for extra credits for the current cycle; an admin decides.

A request within the group's auto-approve limit that the group's available credits cover is
approved at once (``auto_approved``); any other stays ``pending`` until an administrator approves
it (the amount asked or less) or denies it (with a note). Approved credits become the member's
extra credits of the current cycle, so they count as distributed by the group.

Every check that compares against a group's available credits runs after the account row is
locked (``lock_account``): two requests (or an approval and an allocation edit) cannot both pass
on the same credits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits import figures as credit_figures
from cockpit.credits import ledger
from cockpit.credits.amounts import ZERO, check_credits, grouped, plain
from cockpit.credits.cycles import current_cycle, extra_now
from cockpit.credits.figures import GroupFigures
from cockpit.credits.models import (
    CreditCycle,
    CreditRequest,
    EntryKind,
    MemberAllocation,
    RequestStatus,
)
from cockpit.events.service import emit
from cockpit.groups import service as groups
from cockpit.kit.errors import Conflict, InvalidInput, NotFound, NotPermitted
from cockpit.kit.pagination import Page, PageParams
from cockpit.kit.time import utcnow
from cockpit.kit.validation import require_text
from cockpit.policies.service import require_feature
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from cockpit.users.names import actor_name, person_name


async def _group_figures(
    session: AsyncSession, account_id: uuid.UUID, user: User, cycle: CreditCycle
) -> GroupFigures:
    """The figures of the member's group (read under the account lock)."""
    group = await groups.get_group(session, account_id, user.group_id)
    assert group is not None  # users.group_id references groups
    return await credit_figures.group_figures(session, account_id, group, cycle)


async def _grant(
    session: AsyncSession,
    actor: Actor,
    request: CreditRequest,
    user: User,
    cycle: CreditCycle,
    amount: Decimal,
    *,
    auto: bool,
) -> tuple[Decimal, Decimal]:
    """Add ``amount`` to the member's extra credits of ``cycle``; returns (extra before, extra after)."""
    allocation = await session.scalar(
        select(MemberAllocation)
        .where(MemberAllocation.account_id == user.account_id, MemberAllocation.user_id == user.id)
        .execution_options(populate_existing=True)
    )
    if allocation is None:
        allocation = MemberAllocation(
            user_id=user.id, account_id=user.account_id, monthly=ZERO, extra=ZERO, signup_shortfall=ZERO
        )
        session.add(allocation)
    before = extra_now(allocation.extra, allocation.extra_cycle_id, cycle)
    # Extra credits of an earlier cycle have expired: start this cycle's extra from zero.
    allocation.extra = before + amount
    allocation.extra_cycle_id = cycle.id
    ledger.append(
        session,
        account_id=user.account_id,
        cycle=cycle,
        kind=EntryKind.request_approved,
        amount=amount,
        user_id=user.id,
        group_id=user.group_id,
        description=("Credit request auto-approved: " if auto else "Credit request approved: ")
        + request.reason,
        actor_label=actor.label,
        credit_request_id=request.id,
    )
    return before, allocation.extra


async def _announce(
    session: AsyncSession, actor: Actor, name: str, request: CreditRequest, user: User, **data: object
) -> None:
    """The platform event of a request (the member concerned; their group's admins hear of it)."""
    await emit(
        session,
        request.account_id,
        name,
        {"person_name": person_name(user), "person_email": user.email, **data},
        person_id=user.id,
        group_id=request.group_id,
        actor_id=actor.user_id,
    )


def _target(request: CreditRequest, user: User) -> Target:
    return Target("credit_request", request.id, f"{user.email}: {plain(request.amount_requested)} credits")


# ---- filing ----


async def file_request(session: AsyncSession, actor: Actor, *, amount: Decimal, reason: str) -> CreditRequest:
    """A member asks for ``amount`` extra credits; approved at once within the group's auto-approve limit."""
    actor.require(Permission.credits_own)
    if actor.user_id is None:
        raise NotPermitted("user_required", "Only a user can ask for credits.")
    await require_feature(session, actor, "credit_requests.create")
    amount = check_amount(amount)
    reason = require_text(reason, field="reason", label="The reason", max_length=1000)
    account = await lock_account(session, actor.account_id)
    user = await session.scalar(select(User).where(User.id == actor.user_id, User.account_id == account.id))
    if user is None:
        raise NotFound("user_not_found", "No such user.")
    cycle = await current_cycle(session, account)
    figures = await _group_figures(session, account.id, user, cycle)
    request = CreditRequest(
        id=uuid.uuid4(),
        account_id=account.id,
        user_id=user.id,
        group_id=user.group_id,
        cycle_id=cycle.id,
        amount_requested=amount,
        reason=reason,
        status=RequestStatus.pending,
        note="",
    )
    session.add(request)
    auto = figures.auto_approve_limit > ZERO and amount <= figures.auto_approve_limit
    if auto and figures.available >= amount:
        request.status = RequestStatus.auto_approved
        request.amount_approved = amount
        request.decided_at = utcnow()
        before, after = await _grant(session, actor, request, user, cycle, amount, auto=True)
        await audit.record(
            session,
            actor,
            "credit_request.auto_approved",
            target=_target(request, user),
            before={"extra": before},
            after={"status": request.status.value, "amount": amount, "reason": reason, "extra": after},
        )
        await _announce(session, actor, "credit_request.auto_approved", request, user, amount=grouped(amount))
    else:
        await audit.record(
            session,
            actor,
            "credit_request.created",
            target=_target(request, user),
            after={"status": request.status.value, "amount": amount, "reason": reason},
        )
        data = {"amount": grouped(amount), "reason": reason}
        await _announce(session, actor, "credit_request.created", request, user, **data)
    await session.flush()
    return request


# ---- reading ----


@dataclass(frozen=True)
class RequestRow:
    request: CreditRequest
    user: User


def _scoped(actor: Actor) -> Select[CreditRequest, User]:
    stmt = (
        select(CreditRequest, User)
        .join(User, User.id == CreditRequest.user_id)
        .where(CreditRequest.account_id == actor.account_id)
    )
    if not actor.can(Permission.credits_manage):
        # Members see their own requests only; anyone else's is "not found".
        actor.require(Permission.credits_own)
        if actor.user_id is None:
            raise NotPermitted("not_permitted", "You do not have permission to do this.")
        stmt = stmt.where(CreditRequest.user_id == actor.user_id)
    return stmt


async def list_requests(
    session: AsyncSession,
    actor: Actor,
    params: PageParams,
    *,
    status: RequestStatus | None = None,
    user_id: uuid.UUID | None = None,
) -> Page[RequestRow]:
    """Newest first: an administrator sees the account's requests, a member their own."""
    stmt = _scoped(actor)
    if status is not None:
        stmt = stmt.where(CreditRequest.status == status)
    if user_id is not None:
        stmt = stmt.where(CreditRequest.user_id == user_id)
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = await session.execute(
        stmt.order_by(CreditRequest.created_at.desc(), CreditRequest.id.desc())
        .limit(params.per_page)
        .offset(params.offset)
    )
    items = [RequestRow(request, user) for request, user in rows]
    return Page(items=items, total=total or 0, page=params.page, per_page=params.per_page)


async def access_request(
    session: AsyncSession, actor: Actor, request_id: uuid.UUID, *, for_update: bool = False
) -> RequestRow:
    """One request within the caller's account (a member: only their own); otherwise NotFound.

    ``for_update`` re-reads the row under a lock, so a decision sees the latest status.
    """
    stmt = _scoped(actor).where(CreditRequest.id == request_id)
    if for_update:
        stmt = stmt.with_for_update(of=CreditRequest).execution_options(populate_existing=True)
    row = (await session.execute(stmt)).first()
    if row is None:
        raise NotFound("credit_request_not_found", "No such credit request.")
    return RequestRow(*row)


# ---- deciding ----


async def _pending_for_decision(
    session: AsyncSession, actor: Actor, request_id: uuid.UUID, verb: str
) -> tuple[Account, RequestRow]:
    actor.require(Permission.credits_manage)
    account = await lock_account(session, actor.account_id)
    row = await access_request(session, actor, request_id, for_update=True)
    if row.request.status is not RequestStatus.pending:
        raise Conflict(
            "credit_request_not_pending",
            f"Only pending requests can be {verb}; this one is {row.request.status.value.replace('_', '-')}.",
        )
    return account, row


async def approve_request(
    session: AsyncSession, actor: Actor, request_id: uuid.UUID, *, amount: Decimal | None = None
) -> RequestRow:
    """Approve a pending request (the amount asked, or less): the credits become the member's extra
    credits of the current cycle, drawn from their group's available credits."""
    account, row = await _pending_for_decision(session, actor, request_id, "approved")
    request, user = row.request, row.user
    granted = request.amount_requested if amount is None else check_amount(amount)
    if granted > request.amount_requested:
        message = f"at most the {plain(request.amount_requested)} credits requested"
        raise InvalidInput(
            "amount_above_requested",
            f"The amount may be {message}.",
            details=[{"field": "amount", "message": message}],
        )
    cycle = await current_cycle(session, account)
    figures = await _group_figures(session, account.id, user, cycle)
    if figures.available < granted:
        short = granted - max(figures.available, ZERO)
        raise Conflict(
            "group_budget_exceeded",
            f"The group has {plain(figures.available)} credits available; approving {plain(granted)} "
            f"would exceed its budget by {plain(short)} credits.",
        )
    request.group_id = user.group_id  # the group that pays (the member may have moved since asking)
    request.status = RequestStatus.approved
    request.amount_approved = granted
    request.decided_by = actor.user_id
    request.decided_at = utcnow()
    before, after = await _grant(session, actor, request, user, cycle, granted, auto=False)
    await audit.record(
        session,
        actor,
        "credit_request.approved",
        target=_target(request, user),
        before={"status": RequestStatus.pending.value, "extra": before},
        after={"status": request.status.value, "amount_approved": granted, "extra": after},
    )
    decided_by = await actor_name(session, actor)
    await _announce(
        session,
        actor,
        "credit_request.approved",
        request,
        user,
        amount=grouped(granted),
        decided_by=decided_by,
        note="",
    )
    await session.flush()
    return row


async def deny_request(
    session: AsyncSession, actor: Actor, request_id: uuid.UUID, *, note: str = ""
) -> RequestRow:
    """Deny a pending request, optionally with a note for the member."""
    _, row = await _pending_for_decision(session, actor, request_id, "denied")
    request = row.request
    note = require_text(note, field="note", label="The note", max_length=1000, min_length=0)
    request.status = RequestStatus.denied
    request.note = note
    request.decided_by = actor.user_id
    request.decided_at = utcnow()
    await audit.record(
        session,
        actor,
        "credit_request.denied",
        target=_target(request, row.user),
        before={"status": RequestStatus.pending.value},
        after={"status": request.status.value, "note": note},
    )
    decided_by = await actor_name(session, actor)
    amount = grouped(request.amount_requested)
    await _announce(
        session,
        actor,
        "credit_request.denied",
        request,
        row.user,
        amount=amount,
        decided_by=decided_by,
        note=note,
    )
    await session.flush()
    return row


def check_amount(amount: Decimal, *, field: str = "amount") -> Decimal:
    """A positive amount of credits with at most 6 decimal places (raises InvalidInput naming ``field``)."""
    return check_credits(amount, field=field, positive=True)


async def pending_count(session: AsyncSession, actor: Actor) -> int:
    """How many credit requests of the caller's account wait for an administrator (0 for anyone who
    cannot decide them). One indexed count: it is shown in the navigation of every page."""
    if not actor.can(Permission.credits_manage):
        return 0
    stmt = select(func.count()).select_from(CreditRequest)
    stmt = stmt.where(
        CreditRequest.account_id == actor.account_id, CreditRequest.status == RequestStatus.pending
    )
    return await session.scalar(stmt) or 0
