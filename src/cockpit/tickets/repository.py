"""All SQL of support tickets. Every query is scoped to one account."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cockpit.authz.roles import UserRole
from cockpit.kit.pagination import Page, PageParams
from cockpit.tickets.models import SupportTicket, TicketComment, TicketPriority, TicketStatus
from cockpit.users.models import User, UserStatus

Requester = aliased(User, name="requester")
Assignee = aliased(User, name="assignee")
Author = aliased(User, name="author")

UNASSIGNED = "none"  # the assignee filter's value for tickets nobody has taken


@dataclass(frozen=True)
class TicketFilters:
    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    category: str | None = None
    assignee: uuid.UUID | str | None = None  # a user's id, or UNASSIGNED
    requester_id: uuid.UUID | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    search: str = ""  # in the subject (or "#12": the ticket's number)


@dataclass(frozen=True)
class TicketRow:
    ticket: SupportTicket
    requester: User | None  # None once the user is gone
    assignee: User | None


@dataclass(frozen=True)
class CommentRow:
    comment: TicketComment
    author: User | None


# Urgent first: the queue's "Priority" order.
_PRIORITY_RANK = case(
    {TicketPriority.urgent.value: 0, TicketPriority.high.value: 1, TicketPriority.normal.value: 2},
    value=SupportTicket.priority,
    else_=3,
)
SORTS: dict[str, tuple[Any, ...]] = {
    "newest": (SupportTicket.created_at.desc(), SupportTicket.number.desc()),
    "oldest": (SupportTicket.created_at.asc(), SupportTicket.number.asc()),
    "updated": (SupportTicket.updated_at.desc(), SupportTicket.number.desc()),
    "priority": (_PRIORITY_RANK.asc(), SupportTicket.created_at.asc(), SupportTicket.number.asc()),
    "number": (SupportTicket.number.desc(),),
}


def _rows() -> Select[SupportTicket, User, User]:
    return (
        select(SupportTicket, Requester, Assignee)
        .outerjoin(
            Requester,
            and_(
                Requester.id == SupportTicket.requester_id, Requester.account_id == SupportTicket.account_id
            ),
        )
        .outerjoin(
            Assignee,
            and_(Assignee.id == SupportTicket.assignee_id, Assignee.account_id == SupportTicket.account_id),
        )
    )


def _conditions(
    account_id: uuid.UUID, filters: TicketFilters, *, only_requester: uuid.UUID | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [SupportTicket.account_id == account_id]
    if only_requester is not None:
        conditions.append(SupportTicket.requester_id == only_requester)
    if filters.requester_id is not None:
        conditions.append(SupportTicket.requester_id == filters.requester_id)
    if filters.status is not None:
        conditions.append(SupportTicket.status == filters.status)
    if filters.priority is not None:
        conditions.append(SupportTicket.priority == filters.priority)
    if filters.category is not None:
        conditions.append(SupportTicket.category == filters.category)
    if filters.assignee == UNASSIGNED:
        conditions.append(SupportTicket.assignee_id.is_(None))
    elif isinstance(filters.assignee, uuid.UUID):
        conditions.append(SupportTicket.assignee_id == filters.assignee)
    if filters.created_from is not None:
        conditions.append(SupportTicket.created_at >= filters.created_from)
    if filters.created_to is not None:
        conditions.append(SupportTicket.created_at < filters.created_to)
    text = filters.search.strip()
    if text:
        by_subject = SupportTicket.subject.icontains(text, autoescape=True)
        digits = text.removeprefix("#")
        if digits.isdigit() and len(digits) < 10:
            conditions.append(or_(by_subject, SupportTicket.number == int(digits)))
        else:
            conditions.append(by_subject)
    return conditions


async def search(
    session: AsyncSession,
    account_id: uuid.UUID,
    filters: TicketFilters,
    params: PageParams,
    *,
    only_requester: uuid.UUID | None = None,
    sort: str = "newest",
) -> Page[TicketRow]:
    conditions = _conditions(account_id, filters, only_requester=only_requester)
    total = await session.scalar(select(func.count()).select_from(SupportTicket).where(*conditions))
    stmt = (
        _rows()
        .where(*conditions)
        .order_by(*SORTS.get(sort, SORTS["newest"]))
        .limit(params.per_page)
        .offset(params.offset)
    )
    items = [TicketRow(t, r, a) for t, r, a in (await session.execute(stmt)).all()]
    return Page(items=items, total=total or 0, page=params.page, per_page=params.per_page)


async def status_counts(
    session: AsyncSession, account_id: uuid.UUID, *, only_requester: uuid.UUID | None = None
) -> dict[TicketStatus, int]:
    conditions = _conditions(account_id, TicketFilters(), only_requester=only_requester)
    rows = await session.execute(
        select(SupportTicket.status, func.count()).where(*conditions).group_by(SupportTicket.status)
    )
    found = {TicketStatus(status): count for status, count in rows.all()}
    return {status: found.get(status, 0) for status in TicketStatus}


async def get_row(
    session: AsyncSession,
    account_id: uuid.UUID,
    ticket_id: uuid.UUID,
    *,
    only_requester: uuid.UUID | None = None,
    for_update: bool = False,
) -> TicketRow | None:
    stmt = _rows().where(*_conditions(account_id, TicketFilters(), only_requester=only_requester))
    stmt = stmt.where(SupportTicket.id == ticket_id)
    if for_update:
        stmt = stmt.with_for_update(of=SupportTicket).execution_options(populate_existing=True)
    row = (await session.execute(stmt)).first()
    return None if row is None else TicketRow(row[0], row[1], row[2])


async def number_of(session: AsyncSession, account_id: uuid.UUID, ticket_id: uuid.UUID) -> int | None:
    return await session.scalar(
        select(SupportTicket.number).where(
            SupportTicket.account_id == account_id, SupportTicket.id == ticket_id
        )
    )


async def next_number(session: AsyncSession, account_id: uuid.UUID) -> int:
    """The account's next ticket number. Only correct under the account lock (the caller's)."""
    last = await session.scalar(
        select(func.max(SupportTicket.number)).where(SupportTicket.account_id == account_id)
    )
    return (last or 0) + 1


async def comments(
    session: AsyncSession, account_id: uuid.UUID, ticket_id: uuid.UUID, *, internal: bool
) -> list[CommentRow]:
    """The thread, oldest first; internal notes only when ``internal``."""
    stmt = (
        select(TicketComment, Author)
        .outerjoin(Author, and_(Author.id == TicketComment.author_id, Author.account_id == account_id))
        .where(TicketComment.account_id == account_id, TicketComment.ticket_id == ticket_id)
        .order_by(TicketComment.created_at.asc(), TicketComment.id.asc())
    )
    if not internal:
        stmt = stmt.where(TicketComment.internal.is_(False))
    return [CommentRow(c, a) for c, a in (await session.execute(stmt)).all()]


async def admins(session: AsyncSession, account_id: uuid.UUID) -> Sequence[User]:
    """The account's active owners and administrators (who may be assigned a ticket)."""
    rows = await session.scalars(
        select(User)
        .where(
            User.account_id == account_id,
            User.role.in_([UserRole.owner, UserRole.admin]),
            User.status == UserStatus.active,
        )
        .order_by(User.name, User.email)
    )
    return rows.all()


async def requesters(session: AsyncSession, account_id: uuid.UUID) -> Sequence[User]:
    """Everyone who has filed a ticket in the account (the queue's requester filter)."""
    ids = select(SupportTicket.requester_id).where(SupportTicket.account_id == account_id).distinct()
    rows = await session.scalars(
        select(User).where(User.account_id == account_id, User.id.in_(ids)).order_by(User.name, User.email)
    )
    return rows.all()
