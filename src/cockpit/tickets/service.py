"""Support tickets: members file them and follow the replies; support administrators
(``support:manage``) work the account's queue — reply, add internal notes, assign, change status,
priority and category, merge duplicates — with the requester's context beside the ticket.

Rules
- A member sees their own tickets only (anyone else's is "not found", like another account's) and
  never an internal note.
- Every write takes the account lock first (``tenancy.lock``), then the ticket's row: ticket numbers
  are the account's maximum + 1 read under that lock, so they are unique and without gaps however
  many members file at once (a filing that rolls back frees its number for the next one).
- Every write is audited in its transaction; the requester hears of a public reply
  (``ticket.replied``) and of an explicit status change (``ticket.status_changed``) through platform
  events. Internal notes never emit an event. The status a reply sets on its way (a requester's reply
  reopens a ticket waiting on them; an administrator's first public reply opens a new one) is part of
  that reply and is not announced separately.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits import figures as credit_figures
from cockpit.credits.cycles import current_cycle
from cockpit.credits.figures import MemberFigures
from cockpit.events import service as events
from cockpit.groups import service as groups
from cockpit.kit.errors import Conflict, InvalidInput, NotFound, NotPermitted
from cockpit.kit.pagination import Page, PageParams
from cockpit.kit.text import is_storable
from cockpit.kit.time import utcnow
from cockpit.kit.validation import require_text
from cockpit.policies.service import require_feature
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.service import account_by_id
from cockpit.tickets import repository
from cockpit.tickets.models import SupportTicket, TicketCategory, TicketComment, TicketPriority, TicketStatus
from cockpit.tickets.repository import CommentRow, TicketFilters, TicketRow
from cockpit.usage import service as usage
from cockpit.usage.models import CallStatus
from cockpit.usage.queries import RequestFilters
from cockpit.usage.queries import RequestRow as CallRow
from cockpit.users import service as users
from cockpit.users.models import User

FEATURE = "support_tickets.create"
MAX_SUBJECT = 200
MAX_BODY = 20_000  # characters of a description, reply or note
RECENT_ERRORS = 5
_EVENT_TEXT = 5_000  # characters of a reply carried in its event (a notification, not an archive)

E = TypeVar("E", bound=StrEnum)


def _text(value: str, *, field: str, label: str, max_length: int) -> str:
    if not is_storable(value):
        raise InvalidInput(
            "invalid_text",
            f"{label} contains characters that cannot be stored (NUL or invalid Unicode).",
            details=[{"field": field, "message": "contains a NUL character or invalid Unicode"}],
        )
    return require_text(value, field=field, label=label, max_length=max_length)


def parse_choice(kind: type[E], value: str | E, *, field: str) -> E:
    """One of ``kind``'s values, or InvalidInput naming the field and the choices."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidInput(
            "invalid_input",
            f"The {field} must be one of: {choices}.",
            details=[{"field": field, "message": f"one of {choices}"}],
        ) from None


def _target(ticket: SupportTicket) -> Target:
    return Target("support_ticket", ticket.id, f"#{ticket.number}: {ticket.subject[:200]}")


def _person(user: User | None) -> dict[str, Any]:
    return {
        "person_name": user.display_name if user else "deleted user",
        "person_email": user.email if user else "",
    }


def _excerpt(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _can_manage(actor: Actor) -> bool:
    return actor.can(Permission.support_manage)


def _own_only(actor: Actor) -> uuid.UUID | None:
    """None for a support administrator (the whole account), else the only requester visible."""
    if _can_manage(actor):
        return None
    actor.require(Permission.account_read)
    if actor.user_id is None:
        raise NotPermitted("not_permitted", "You do not have permission to do this.")
    return actor.user_id


# ---- reading ----


async def list_tickets(
    session: AsyncSession,
    actor: Actor,
    params: PageParams,
    filters: TicketFilters | None = None,
    *,
    sort: str = "newest",
) -> Page[TicketRow]:
    """An administrator's queue (the whole account), or a member's own tickets, filtered and sorted."""
    return await repository.search(
        session,
        actor.account_id,
        filters or TicketFilters(),
        params,
        only_requester=_own_only(actor),
        sort=sort,
    )


async def status_counts(session: AsyncSession, actor: Actor) -> dict[TicketStatus, int]:
    return await repository.status_counts(session, actor.account_id, only_requester=_own_only(actor))


async def access_ticket(
    session: AsyncSession, actor: Actor, ticket_id: uuid.UUID, *, for_update: bool = False
) -> TicketRow:
    """One ticket of the caller's account (a member: only their own); otherwise NotFound.

    ``for_update`` re-reads the row under a lock (the caller holds the account lock already)."""
    row = await repository.get_row(
        session, actor.account_id, ticket_id, only_requester=_own_only(actor), for_update=for_update
    )
    if row is None:
        raise NotFound("ticket_not_found", "No such ticket.")
    return row


async def thread(session: AsyncSession, actor: Actor, ticket: SupportTicket) -> list[CommentRow]:
    """The ticket's comments, oldest first; internal notes for support administrators only."""
    return await repository.comments(session, actor.account_id, ticket.id, internal=_can_manage(actor))


async def ticket_number(session: AsyncSession, actor: Actor, ticket_id: uuid.UUID | None) -> int | None:
    """The number of a ticket of the account (e.g. the one a ticket was merged into)."""
    if ticket_id is None:
        return None
    return await repository.number_of(session, actor.account_id, ticket_id)


async def assignable(session: AsyncSession, actor: Actor) -> list[User]:
    """Who a ticket may be assigned to: the account's active owners and administrators."""
    actor.require(Permission.support_manage)
    return list(await repository.admins(session, actor.account_id))


async def requester_choices(session: AsyncSession, actor: Actor) -> list[User]:
    actor.require(Permission.support_manage)
    return list(await repository.requesters(session, actor.account_id))


@dataclass(frozen=True)
class TicketContext:
    """What an administrator sees beside a ticket about its requester."""

    requester: User | None
    group_name: str | None = None
    credits: MemberFigures | None = None  # None: the account does not track credits
    recent_errors: list[CallRow] = field(default_factory=list)


async def ticket_context(session: AsyncSession, actor: Actor, row: TicketRow) -> TicketContext:
    actor.require(Permission.support_manage)
    requester = row.requester
    if requester is None:
        return TicketContext(requester=None)
    group = await groups.get_group(session, actor.account_id, requester.group_id)
    account = await account_by_id(session, actor.account_id)
    credits = None
    if account is not None and account.credit_factor > 0:
        cycle = await current_cycle(session, account)
        credits = await credit_figures.member_figures(session, requester, cycle)
    errors = await usage.search_requests(
        session,
        actor,
        RequestFilters(user_id=requester.id, status=CallStatus.error),
        PageParams(per_page=RECENT_ERRORS),
    )
    return TicketContext(
        requester=requester,
        group_name=group.name if group else None,
        credits=credits,
        recent_errors=list(errors.items),
    )


# ---- filing ----


async def file_ticket(
    session: AsyncSession,
    actor: Actor,
    *,
    subject: str,
    description: str,
    category: str | TicketCategory = TicketCategory.other,
    priority: str | TicketPriority = TicketPriority.normal,
) -> SupportTicket:
    """A person files a ticket (access policies may deny the ``support_tickets.create`` feature)."""
    if actor.user_id is None:
        raise NotPermitted("user_required", "Only a person can file a support ticket.")
    actor.require(Permission.account_read)
    await require_feature(session, actor, FEATURE)
    subject = _text(subject, field="subject", label="The subject", max_length=MAX_SUBJECT)
    description = _text(description, field="description", label="The description", max_length=MAX_BODY)
    chosen_category = parse_choice(TicketCategory, category, field="category")
    chosen_priority = parse_choice(TicketPriority, priority, field="priority")
    account = await lock_account(session, actor.account_id)
    requester = await users.get_user(session, account.id, actor.user_id)
    if requester is None:
        raise NotFound("user_not_found", "No such user.")
    now = utcnow()
    ticket = SupportTicket(
        id=uuid.uuid4(), account_id=account.id, number=await repository.next_number(session, account.id),
        requester_id=requester.id, subject=subject, description=description, category=chosen_category,
        priority=chosen_priority, status=TicketStatus.new, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(ticket)
    await audit.record(
        session, actor, "support_ticket.created", target=_target(ticket),
        after={"number": ticket.number, "subject": subject, "category": chosen_category.value,
               "priority": chosen_priority.value, "status": ticket.status.value},
    )  # fmt: skip
    await events.emit(
        session, account.id, "ticket.created",
        {**_person(requester), "ticket_number": ticket.number, "subject": subject,
         "category": chosen_category.value, "priority": chosen_priority.value},
        person_id=requester.id, group_id=requester.group_id, actor_id=actor.user_id,
    )  # fmt: skip
    await session.flush()
    return ticket


# ---- replying ----


async def _locked(session: AsyncSession, actor: Actor, ticket_id: uuid.UUID) -> TicketRow:
    """The account lock first (every writer takes it first: one order, no deadlocks), then the row."""
    await lock_account(session, actor.account_id)
    return await access_ticket(session, actor, ticket_id, for_update=True)


async def add_comment(
    session: AsyncSession, actor: Actor, ticket_id: uuid.UUID, *, body: str, internal: bool = False
) -> CommentRow:
    """A public reply (the requester or a support administrator) or an internal note (administrators).

    A requester's reply reopens a ticket that waits on them (or was resolved); an administrator's
    public reply opens a new one. A closed ticket takes no more replies (internal notes still)."""
    row = await _locked(session, actor, ticket_id)
    ticket = row.ticket
    manage = _can_manage(actor)
    if internal and not manage:
        raise NotPermitted("not_permitted", "Only support administrators can add internal notes.")
    body = _text(body, field="body", label="The reply" if not internal else "The note", max_length=MAX_BODY)
    if not internal and ticket.status is TicketStatus.closed:
        raise Conflict("ticket_closed", f"Ticket #{ticket.number} is closed: file a new ticket instead.")
    before = ticket.status
    is_requester = actor.user_id is not None and actor.user_id == ticket.requester_id
    if not internal:
        if is_requester and ticket.status in (TicketStatus.waiting, TicketStatus.resolved):
            ticket.status, ticket.resolved_at = TicketStatus.open, None
        elif manage and not is_requester and ticket.status is TicketStatus.new:
            ticket.status = TicketStatus.open
    now = utcnow()
    comment = TicketComment(
        id=uuid.uuid4(), ticket_id=ticket.id, account_id=ticket.account_id, author_id=actor.user_id,
        body=body, internal=internal, created_at=now,
    )  # fmt: skip
    session.add(comment)
    ticket.updated_at = now
    after: dict[str, Any] = {"internal": internal, "excerpt": _excerpt(body), "length": len(body)}
    changed = {"status": before.value} if ticket.status is not before else None
    if changed:
        after["status"] = ticket.status.value
    action = "support_ticket.note_added" if internal else "support_ticket.replied"
    await audit.record(session, actor, action, target=_target(ticket), before=changed, after=after)
    if not internal:
        author = await users.get_user(session, ticket.account_id, actor.user_id) if actor.user_id else None
        await events.emit(
            session, ticket.account_id, "ticket.replied",
            {**_person(row.requester), "ticket_number": ticket.number, "subject": ticket.subject,
             "author": author.display_name if author else actor.label, "reply": _excerpt(body, _EVENT_TEXT)},
            person_id=ticket.requester_id, group_id=row.requester.group_id if row.requester else None,
            actor_id=actor.user_id,
        )  # fmt: skip
    await session.flush()
    author_row = await users.get_user(session, ticket.account_id, actor.user_id) if actor.user_id else None
    return CommentRow(comment, author_row)


# ---- changing ----

_UNSET: Any = object()


def _set_status(ticket: SupportTicket, status: TicketStatus) -> None:
    now = utcnow()
    if status is TicketStatus.resolved:
        ticket.resolved_at, ticket.closed_at = now, None
    elif status is TicketStatus.closed:
        ticket.closed_at = now
    else:  # reopened
        ticket.resolved_at = ticket.closed_at = None
    ticket.status = status


async def _status_event(session: AsyncSession, actor: Actor, row: TicketRow, label: str) -> None:
    ticket = row.ticket
    changer = await users.get_user(session, ticket.account_id, actor.user_id) if actor.user_id else None
    await events.emit(
        session, ticket.account_id, "ticket.status_changed",
        {**_person(row.requester), "ticket_number": ticket.number, "subject": ticket.subject,
         "status": label, "changed_by": changer.display_name if changer else actor.label},
        person_id=ticket.requester_id, group_id=row.requester.group_id if row.requester else None,
        actor_id=actor.user_id,
    )  # fmt: skip


async def change_ticket(
    session: AsyncSession,
    actor: Actor,
    ticket_id: uuid.UUID,
    *,
    status: str | TicketStatus | None = None,
    priority: str | TicketPriority | None = None,
    category: str | TicketCategory | None = None,
    assignee_id: uuid.UUID | None = _UNSET,
) -> TicketRow:
    """Change a ticket's status, priority, category or assignee (support administrators); the
    requester may close their own ticket. ``assignee_id=None`` unassigns; left out, it is kept."""
    row = await _locked(session, actor, ticket_id)
    ticket = row.ticket
    new_status = None if status is None else parse_choice(TicketStatus, status, field="status")
    new_priority = None if priority is None else parse_choice(TicketPriority, priority, field="priority")
    new_category = None if category is None else parse_choice(TicketCategory, category, field="category")
    if not _can_manage(actor):
        # access_ticket found it, so it is theirs: they may close it, nothing else.
        only_closing = new_status is TicketStatus.closed and new_priority is None and new_category is None
        if not only_closing or assignee_id is not _UNSET:
            raise NotPermitted("not_permitted", "You may close your own ticket; support handles the rest.")
    before: dict[str, Any] = {
        "status": ticket.status.value, "priority": ticket.priority.value, "category": ticket.category.value,
        "assignee_id": str(ticket.assignee_id) if ticket.assignee_id else None,
    }  # fmt: skip
    assignee = row.assignee
    if assignee_id is not _UNSET:
        if assignee_id is None:
            assignee = None
        else:
            admins = {user.id: user for user in await repository.admins(session, actor.account_id)}
            if assignee_id not in admins:
                raise InvalidInput(
                    "assignee_not_admin",
                    "A ticket can be assigned only to an active administrator of this organisation.",
                    details=[
                        {"field": "assignee_id", "message": "not an administrator of this organisation"}
                    ],
                )
            assignee = admins[assignee_id]
        ticket.assignee_id = assignee.id if assignee else None
    if new_priority is not None:
        ticket.priority = new_priority
    if new_category is not None:
        ticket.category = new_category
    status_changed = new_status is not None and new_status is not ticket.status
    if new_status is not None and status_changed:
        _set_status(ticket, new_status)
    after: dict[str, Any] = {
        "status": ticket.status.value, "priority": ticket.priority.value, "category": ticket.category.value,
        "assignee_id": str(ticket.assignee_id) if ticket.assignee_id else None,
    }  # fmt: skip
    if after != before:
        ticket.updated_at = utcnow()
        if after["assignee_id"] != before["assignee_id"]:
            after["assignee"] = assignee.email if assignee else None
        await audit.record_changes(session, actor, "support_ticket.updated", target=_target(ticket),
                                   before=before, after=after)  # fmt: skip
    if status_changed:
        await _status_event(session, actor, row, ticket.status.value)
    await session.flush()
    return TicketRow(ticket, row.requester, assignee)


async def merge_ticket(
    session: AsyncSession, actor: Actor, ticket_id: uuid.UUID, *, into: uuid.UUID
) -> TicketRow:
    """Merge a duplicate into another ticket: the duplicate is closed and points at the other; its
    description and public replies are copied there as an internal note (the two requesters may
    differ, so nothing of one is shown to the other); its requester is told where it went."""
    actor.require(Permission.support_manage)
    if into == ticket_id:
        raise InvalidInput(
            "merge_into_itself", "A ticket cannot be merged into itself.",
            details=[{"field": "into", "message": "the same ticket"}],
        )  # fmt: skip
    row = await _locked(session, actor, ticket_id)
    try:
        target = await access_ticket(session, actor, into, for_update=True)
    except NotFound:
        raise InvalidInput(
            "merge_target_not_found", "There is no such ticket to merge into.",
            details=[{"field": "into", "message": "no such ticket"}],
        ) from None  # fmt: skip
    source = row.ticket
    if source.merged_into_id is not None:
        raise Conflict("ticket_already_merged", f"Ticket #{source.number} was merged already.")
    if target.ticket.merged_into_id is not None:
        raise Conflict(
            "merge_target_merged",
            f"Ticket #{target.ticket.number} was itself merged: pick the ticket it went to.",
        )
    replies = [c for c in await repository.comments(session, actor.account_id, source.id, internal=False)]
    who = row.requester.display_name if row.requester else "deleted user"
    copied = [f"Merged from ticket #{source.number} ({who}): {source.subject}", "", source.description]
    for reply in replies:
        author = reply.author.display_name if reply.author else "deleted user"
        copied += ["", f"— {author}:", reply.comment.body]
    now = utcnow()
    note = "\n".join(copied)
    if len(note) > MAX_BODY * 3:
        note = note[: MAX_BODY * 3 - 1] + "…"
    session.add(TicketComment(
        id=uuid.uuid4(), ticket_id=target.ticket.id, account_id=source.account_id, author_id=actor.user_id,
        body=note, internal=True, created_at=now,
    ))  # fmt: skip
    session.add(TicketComment(
        id=uuid.uuid4(), ticket_id=source.id, account_id=source.account_id, author_id=actor.user_id,
        body=f"This ticket was merged into ticket #{target.ticket.number}; it continues there.",
        internal=False, created_at=now,
    ))  # fmt: skip
    before = {"status": source.status.value, "merged_into": None}
    if source.status is not TicketStatus.closed:
        _set_status(source, TicketStatus.closed)
    source.merged_into_id = target.ticket.id
    source.updated_at = target.ticket.updated_at = now
    await audit.record(
        session, actor, "support_ticket.merged", target=_target(source), before=before,
        after={"status": source.status.value, "merged_into": target.ticket.number,
               "merged_into_id": str(target.ticket.id)},
    )  # fmt: skip
    await _status_event(session, actor, row, f"closed (merged into ticket #{target.ticket.number})")
    await session.flush()
    return row
