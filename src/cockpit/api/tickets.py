"""Support tickets (/api/v1/tickets): members file and follow their own; support administrators
work the account's queue."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Query, UploadFile, status
from fastapi.responses import Response

from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.pagination import PageParams, page_params
from cockpit.kit.web import AppSettings, DbSession
from cockpit.tickets import attachments, service
from cockpit.tickets.models import TicketCategory, TicketPriority, TicketStatus
from cockpit.tickets.repository import UNASSIGNED, TicketFilters
from cockpit.tickets.schemas import (
    AttachmentOut,
    CommentCreate,
    CommentOut,
    TicketCreate,
    TicketList,
    TicketMerge,
    TicketOut,
    TicketUpdate,
)

router = APIRouter(tags=["tickets"])

Member = Annotated[Actor, Depends(require(Permission.account_read))]
Support = Annotated[Actor, Depends(require(Permission.support_manage))]


@router.post("/tickets", response_model=TicketOut, status_code=status.HTTP_201_CREATED)
async def file_ticket(body: TicketCreate, session: DbSession, actor: Member) -> TicketOut:
    """File a support ticket (the `support_tickets.create` feature of access policies)."""
    ticket = await service.file_ticket(
        session, actor, subject=body.subject, description=body.description, category=body.category,
        priority=body.priority,
    )  # fmt: skip
    row = await service.access_ticket(session, actor, ticket.id)
    return TicketOut.of(row, await service.thread(session, actor, ticket))


@router.get("/tickets", response_model=TicketList)
async def list_tickets(
    session: DbSession,
    actor: Member,
    paging: Annotated[PageParams, Depends(page_params)],
    status: TicketStatus | None = None,
    priority: TicketPriority | None = None,
    category: TicketCategory | None = None,
    assignee: Annotated[
        str | None, Query(max_length=40, description=f"A user's id, or `{UNASSIGNED}` for unassigned tickets")
    ] = None,
    requester_id: uuid.UUID | None = None,
    created_from: Annotated[datetime | None, Query(description="Inclusive, ISO 8601")] = None,
    created_to: Annotated[datetime | None, Query(description="Exclusive, ISO 8601")] = None,
    q: Annotated[str, Query(max_length=200, description="Words of the subject, or `#12`")] = "",
    sort: Literal["newest", "oldest", "updated", "priority", "number"] = "newest",
) -> TicketList:
    """Support administrators see the account's queue; everyone else their own tickets."""
    assignee_value: uuid.UUID | str | None = None
    if assignee:
        assignee_value = UNASSIGNED if assignee == UNASSIGNED else _uuid(assignee, "assignee")
    filters = TicketFilters(
        status=status, priority=priority, category=category, assignee=assignee_value,
        requester_id=requester_id, created_from=created_from, created_to=created_to, search=q,
    )  # fmt: skip
    return TicketList.of(await service.list_tickets(session, actor, paging, filters, sort=sort))


def _uuid(value: str, field: str) -> uuid.UUID:
    from cockpit.kit.errors import InvalidInput

    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(
            "invalid_input", f"The {field} must be a user's id or '{UNASSIGNED}'.",
            details=[{"field": field, "message": "not an id"}],
        ) from None  # fmt: skip


@router.get("/tickets/{ticket_id}", response_model=TicketOut)
async def get_ticket(ticket_id: uuid.UUID, session: DbSession, actor: Member) -> TicketOut:
    """The ticket with its thread (internal notes for support administrators only)."""
    row = await service.access_ticket(session, actor, ticket_id)
    files = await attachments.list_attachments(session, actor, ticket_id)
    return TicketOut.of(row, await service.thread(session, actor, row.ticket), files)


@router.patch("/tickets/{ticket_id}", response_model=TicketOut)
async def change_ticket(
    ticket_id: uuid.UUID, body: TicketUpdate, session: DbSession, actor: Member
) -> TicketOut:
    """Change `status`, `priority`, `category` or `assignee_id` (support administrators); the requester
    may set `status` to `closed`."""
    sent = body.model_fields_set
    row = await service.change_ticket(
        session, actor, ticket_id, status=body.status, priority=body.priority, category=body.category,
        **({"assignee_id": body.assignee_id} if "assignee_id" in sent else {}),
    )  # fmt: skip
    return TicketOut.of(row, await service.thread(session, actor, row.ticket))


@router.post("/tickets/{ticket_id}/comments", response_model=CommentOut, status_code=status.HTTP_201_CREATED)
async def add_comment(
    ticket_id: uuid.UUID, body: CommentCreate, session: DbSession, actor: Member
) -> CommentOut:
    """A public reply, or (`internal: true`, support administrators) an internal note."""
    return CommentOut.of(
        await service.add_comment(session, actor, ticket_id, body=body.body, internal=body.internal)
    )


@router.post("/tickets/{ticket_id}/merge", response_model=TicketOut)
async def merge_ticket(
    ticket_id: uuid.UUID, body: TicketMerge, session: DbSession, actor: Support
) -> TicketOut:
    """Merge this ticket (a duplicate) into `into`: it is closed and points there."""
    row = await service.merge_ticket(session, actor, ticket_id, into=body.into)
    return TicketOut.of(row, await service.thread(session, actor, row.ticket))


@router.post(
    "/tickets/{ticket_id}/attachments", response_model=AttachmentOut, status_code=status.HTTP_201_CREATED
)
async def attach_file(
    ticket_id: uuid.UUID,
    session: DbSession,
    actor: Member,
    settings: AppSettings,
    file: Annotated[UploadFile, File(description="Text, PDF or a PNG/JPEG/GIF/WebP image, up to 512 KB")],
) -> AttachmentOut:
    """Attach a file (multipart form field `file`): the requester or a support administrator."""
    data = await file.read(attachments.MAX_BYTES + 1)
    attached = await attachments.attach_file(
        session, actor, settings, ticket_id, name=file.filename, data=data
    )
    return AttachmentOut.model_validate(attached)


@router.get("/tickets/{ticket_id}/attachments/{attachment_id}")
async def download_attachment(
    ticket_id: uuid.UUID, attachment_id: uuid.UUID, session: DbSession, actor: Member, settings: AppSettings
) -> Response:
    """The attachment's bytes (always as a download)."""
    found, data = await attachments.attachment_content(session, actor, settings, ticket_id, attachment_id)
    return Response(
        data,
        media_type=attachments.served_type(found.media_type),
        headers=attachments.download_headers(found.name),
    )
