"""CONTROL → Support: a member's own tickets (file one, follow the thread, reply, close), and the
support administrators' queue (filters, counts by status, sorting, paging) with each ticket's page
(thread with internal notes, reply or note, status / priority / category / assignee, merge, and the
requester's context: group, credits left, recent failed calls)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.web import SignedIn, Viewer, discard_changes, path_id, redirect, render
from cockpit.kit.errors import CockpitError
from cockpit.kit.pagination import PageParams
from cockpit.kit.time import utcnow
from cockpit.kit.web import AppSettings, DbSession
from cockpit.policies.service import feature_allowed
from cockpit.tickets import attachments
from cockpit.tickets import service as tickets
from cockpit.tickets.models import TicketPriority, TicketStatus
from cockpit.tickets.repository import SORTS, UNASSIGNED, TicketFilters

router = APIRouter(prefix="/support")

PER_PAGE = 25
RESULTS_ID = "support-results"
STATUSES = {
    "new": "New", "open": "Open", "waiting": "Waiting on requester", "resolved": "Resolved",
    "closed": "Closed",
}  # fmt: skip
STATUS_TONES = {
    "new": "info",
    "open": "accent",
    "waiting": "warning",
    "resolved": "success",
    "closed": "neutral",
}
PRIORITIES = {"low": "Low", "normal": "Normal", "high": "High", "urgent": "Urgent"}
PRIORITY_TONES = {"low": "neutral", "normal": "neutral", "high": "warning", "urgent": "danger"}
CATEGORIES = {"access": "Access", "credits": "Credits", "billing": "Billing", "bug": "Bug", "other": "Other"}
SORT_LABELS = {
    "newest": "Newest first", "oldest": "Oldest first", "updated": "Recently updated",
    "priority": "Priority (urgent first)", "number": "Number",
}  # fmt: skip
AGES = {
    "": "Any age", "1d": "Filed in the last 24 hours", "7d": "Filed in the last 7 days",
    "30d": "Filed in the last 30 days", "older7": "Older than 7 days", "older30": "Older than 30 days",
}  # fmt: skip
Text40 = Annotated[str, Query(max_length=40)]
FORM_LABELS = {"subject": "The subject", "description": "The description", "body": "The reply"}


def _ticket_id(value: str) -> uuid.UUID:
    return path_id(value, "ticket_not_found", "No such ticket.")


def _common() -> dict[str, Any]:
    return {
        "statuses": STATUSES, "status_tones": STATUS_TONES, "priorities": PRIORITIES,
        "priority_tones": PRIORITY_TONES, "categories": CATEGORIES,
    }  # fmt: skip


def _filters(form: dict[str, str], viewer: Viewer) -> tuple[TicketFilters, list[str]]:
    """The queue's filters from the query string; unknown values are dropped (and said so)."""
    problems: list[str] = []
    now = utcnow()
    assignee: uuid.UUID | str | None = None
    if form["assignee"] == UNASSIGNED:
        assignee = UNASSIGNED
    elif form["assignee"] == "me":
        assignee = viewer.actor.user_id
    elif form["assignee"]:
        try:
            assignee = uuid.UUID(form["assignee"])
        except ValueError:
            problems.append("assignee")
    requester = None
    if form["requester"]:
        try:
            requester = uuid.UUID(form["requester"])
        except ValueError:
            problems.append("requester")
    created_from = created_to = None
    age = form["age"]
    if age in ("1d", "7d", "30d"):
        created_from = now - timedelta(days=int(age[:-1]))
    elif age in ("older7", "older30"):
        created_to = now - timedelta(days=int(age[5:]))
    for key, allowed in (
        ("status", STATUSES),
        ("priority", PRIORITIES),
        ("category", CATEGORIES),
        ("age", AGES),
    ):
        if form[key] and form[key] not in allowed:
            problems.append(key)
            form[key] = ""
    filters = TicketFilters(
        status=TicketStatus(form["status"]) if form["status"] else None,
        priority=TicketPriority(form["priority"]) if form["priority"] else None,
        category=form["category"] or None, assignee=assignee, requester_id=requester,
        created_from=created_from, created_to=created_to, search=form["q"],
    )  # fmt: skip
    return filters, problems


async def _list_page(
    request: Request, session: DbSession, viewer: Viewer, form: dict[str, str], page: int, **extra: Any
) -> Response:
    admin = viewer.can(Permission.support_manage)
    if form["sort"] not in SORTS:
        form["sort"] = "newest"
    filters, problems = _filters(form, viewer)
    if not admin:  # members filter their own tickets by status and words only
        filters = TicketFilters(status=filters.status, search=filters.search)
    paging = PageParams(page=page, per_page=PER_PAGE)
    found = await tickets.list_tickets(session, viewer.actor, paging, filters, sort=form["sort"])
    query = urlencode({k: v for k, v in form.items() if v})
    context: dict[str, Any] = {
        **_common(),
        "admin": admin,
        "page": found,
        "form": form,
        "query": query,
        "counts": await tickets.status_counts(session, viewer.actor),
        "filter_error": f"Unknown {', '.join(problems)}: that filter was ignored." if problems else None,
        "sorts": SORT_LABELS,
        "ages": AGES,
        "results_id": RESULTS_ID,
        "unassigned": UNASSIGNED,
        "admins": await tickets.assignable(session, viewer.actor) if admin else [],
        "requesters": await tickets.requester_choices(session, viewer.actor) if admin else [],
        "can_file": await feature_allowed(session, viewer.actor, tickets.FEATURE),
        "filtered": any(
            form[k] for k in ("status", "priority", "category", "assignee", "requester", "age", "q")
        ),
        **extra,
    }
    partial = request.headers.get("hx-target") == RESULTS_ID
    template = "support/_results.html" if partial else "support/index.html"
    return render(request, template, context)


@router.get("")
async def support_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    status: Text40 = "",
    priority: Text40 = "",
    category: Text40 = "",
    assignee: Text40 = "",
    requester: Text40 = "",
    age: Text40 = "",
    q: Annotated[str, Query(max_length=200)] = "",
    sort: Text40 = "newest",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    new: bool = False,
) -> Response:
    form = {
        "status": status, "priority": priority, "category": category, "assignee": assignee,
        "requester": requester, "age": age, "q": q.strip(), "sort": sort,
    }  # fmt: skip
    return await _list_page(request, session, viewer, form, page, file_open=new)


@router.post("")
async def file_ticket(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    subject: Annotated[str, Form(max_length=1000)] = "",
    description: Annotated[str, Form(max_length=100_000)] = "",
    category: Annotated[str, Form(max_length=40)] = "other",
    priority: Annotated[str, Form(max_length=40)] = "normal",
) -> Response:
    try:
        ticket = await tickets.file_ticket(
            session,
            viewer.actor,
            subject=subject,
            description=description,
            category=category,
            priority=priority,
        )
    except CockpitError as exc:
        if exc.status in (401, 404):
            raise
        await discard_changes(session, viewer)
        form = dict.fromkeys(("status", "priority", "category", "assignee", "requester", "age", "q"), "")
        form["sort"] = "newest"
        response = await _list_page(
            request, session, viewer, form, 1, file_error=exc.message,
            file_form={"subject": subject[:200], "description": description[:20_000], "category": category,
                       "priority": priority},
        )  # fmt: skip
        response.status_code = exc.status
        return response
    return redirect(request, f"/support/{ticket.id}", message=f"Ticket #{ticket.number} was filed.")


async def _ticket_page(
    request: Request, session: DbSession, viewer: Viewer, ticket_id: uuid.UUID, *, status_code: int = 200,
    **extra: Any,
) -> Response:  # fmt: skip
    row = await tickets.access_ticket(session, viewer.actor, ticket_id)
    admin = viewer.can(Permission.support_manage)
    context: dict[str, Any] = {
        **_common(),
        "admin": admin,
        "row": row,
        "t": row.ticket,
        "comments": await tickets.thread(session, viewer.actor, row.ticket),
        "merged_into": await tickets.ticket_number(session, viewer.actor, row.ticket.merged_into_id),
        "attachments": await attachments.list_attachments(session, viewer.actor, ticket_id),
        "size_text": attachments.size_text,
        "max_attachment": attachments.size_text(attachments.MAX_BYTES),
        "attachment_types": attachments.LABELS,
        "is_requester": viewer.actor.user_id is not None and viewer.actor.user_id == row.ticket.requester_id,
        **extra,
    }
    if admin:
        context["admins"] = await tickets.assignable(session, viewer.actor)
        context["context"] = await tickets.ticket_context(session, viewer.actor, row)
        others = await tickets.list_tickets(
            session, viewer.actor, PageParams(per_page=100), TicketFilters(), sort="newest"
        )
        context["merge_choices"] = [
            r.ticket for r in others.items if r.ticket.id != row.ticket.id and r.ticket.merged_into_id is None
        ]
    return render(request, "support/ticket.html", context, status_code=status_code)


@router.get("/{ticket_id}")
async def ticket_page(request: Request, session: DbSession, viewer: SignedIn, ticket_id: str) -> Response:
    return await _ticket_page(request, session, viewer, _ticket_id(ticket_id))


async def _act(
    request: Request, session: DbSession, viewer: Viewer, tid: uuid.UUID, action: Any, **keep: Any
) -> Response:
    """Run a write; on a refusal, show the ticket again with the message (and what was typed)."""
    await tickets.access_ticket(session, viewer.actor, tid)  # 404 first, for another account's
    try:
        message = await action()
    except CockpitError as exc:
        if exc.status in (401, 404):
            raise
        await discard_changes(session, viewer)
        return await _ticket_page(
            request, session, viewer, tid, status_code=exc.status, action_error=exc.message, **keep
        )
    return redirect(request, f"/support/{tid}", message=message)


@router.post("/{ticket_id}/comments")
async def add_comment(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    ticket_id: str,
    body: Annotated[str, Form(max_length=100_000)] = "",
    internal: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    tid = _ticket_id(ticket_id)
    note = internal in ("1", "on", "true")

    async def action() -> str:
        await tickets.add_comment(session, viewer.actor, tid, body=body, internal=note)
        return "Internal note added." if note else "Reply sent."

    return await _act(
        request, session, viewer, tid, action, reply_form={"body": body[:20_000], "internal": note}
    )


@router.post("/{ticket_id}/update")
async def change_ticket(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    ticket_id: str,
    status: Annotated[str, Form(max_length=40)] = "",
    priority: Annotated[str, Form(max_length=40)] = "",
    category: Annotated[str, Form(max_length=40)] = "",
    assignee: Annotated[str | None, Form(max_length=40)] = None,
) -> Response:
    tid = _ticket_id(ticket_id)

    async def action() -> str:
        kwargs: dict[str, Any] = {}
        if assignee is not None:
            kwargs["assignee_id"] = None if assignee in ("", UNASSIGNED) else _assignee(assignee)
        await tickets.change_ticket(
            session, viewer.actor, tid, status=status or None, priority=priority or None,
            category=category or None, **kwargs,
        )  # fmt: skip
        return "Ticket updated."

    return await _act(request, session, viewer, tid, action)


def _assignee(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        return uuid.UUID(int=0)  # matches no administrator: the service says why


@router.post("/{ticket_id}/close")
async def close_ticket(request: Request, session: DbSession, viewer: SignedIn, ticket_id: str) -> Response:
    tid = _ticket_id(ticket_id)

    async def action() -> str:
        await tickets.change_ticket(session, viewer.actor, tid, status=TicketStatus.closed)
        return "Ticket closed."

    return await _act(request, session, viewer, tid, action)


@router.post("/{ticket_id}/merge")
async def merge_ticket(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    ticket_id: str,
    into: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    tid = _ticket_id(ticket_id)

    async def action() -> str:
        row = await tickets.merge_ticket(session, viewer.actor, tid, into=_assignee(into))
        number = await tickets.ticket_number(session, viewer.actor, row.ticket.merged_into_id)
        return f"Ticket #{row.ticket.number} was merged into ticket #{number} and closed."

    return await _act(request, session, viewer, tid, action)


@router.post("/{ticket_id}/attachments")
async def attach_file(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    settings: AppSettings,
    ticket_id: str,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    tid = _ticket_id(ticket_id)

    async def action() -> str:
        if file is None or not file.filename:
            raise attachments.invalid("no_file", "Choose a file to attach.")
        data = await file.read(attachments.MAX_BYTES + 1)
        added = await attachments.attach_file(
            session, viewer.actor, settings, tid, name=file.filename, data=data
        )
        return f"Attached {added.name}."

    return await _act(request, session, viewer, tid, action)


@router.get("/{ticket_id}/attachments/{attachment_id}")
async def download_attachment(
    session: DbSession, viewer: SignedIn, settings: AppSettings, ticket_id: str, attachment_id: str
) -> Response:
    aid = path_id(attachment_id, "attachment_not_found", "No such attachment on this ticket.")
    found, data = await attachments.attachment_content(
        session, viewer.actor, settings, _ticket_id(ticket_id), aid
    )
    return Response(
        data,
        media_type=attachments.served_type(found.media_type),
        headers=attachments.download_headers(found.name),
    )
