"""Credits API: credit requests (/api/v1/credit-requests) and statements (/api/v1/credits/statement)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Query, Request, status
from fastapi.responses import Response

from cockpit.api.credits import router
from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits import requests as service
from cockpit.credits import statement as statements
from cockpit.credits.models import RequestStatus
from cockpit.credits.schemas.requests import (
    CreditRequestApprove,
    CreditRequestCreate,
    CreditRequestDeny,
    CreditRequestList,
    CreditRequestOut,
    StatementOut,
)
from cockpit.credits.web import statement_csv_response
from cockpit.kit.pagination import PageParams, page_params
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession
from cockpit.policies.service import require_feature

Member = Annotated[Actor, Depends(require(Permission.credits_own))]
Manager = Annotated[Actor, Depends(require(Permission.credits_manage))]


@router.post("/credit-requests", response_model=CreditRequestOut, status_code=status.HTTP_201_CREATED)
async def file_request(body: CreditRequestCreate, session: DbSession, actor: Member) -> CreditRequestOut:
    """Ask for extra credits this cycle: approved at once within the group's auto-approve limit."""
    request = await service.file_request(session, actor, amount=body.amount, reason=body.reason)
    return CreditRequestOut.of(await service.access_request(session, actor, request.id))


@router.get("/credit-requests", response_model=CreditRequestList)
async def list_requests(
    session: DbSession,
    actor: Member,
    paging: Annotated[PageParams, Depends(page_params)],
    status: RequestStatus | None = None,
    user_id: uuid.UUID | None = None,
) -> CreditRequestList:
    """Newest first: administrators see the account's requests, members their own."""
    page = await service.list_requests(session, actor, paging, status=status, user_id=user_id)
    return CreditRequestList.of(page)


@router.get("/credit-requests/{request_id}", response_model=CreditRequestOut)
async def get_request(request_id: uuid.UUID, session: DbSession, actor: Member) -> CreditRequestOut:
    return CreditRequestOut.of(await service.access_request(session, actor, request_id))


@router.post("/credit-requests/{request_id}/approve", response_model=CreditRequestOut)
async def approve_request(
    request_id: uuid.UUID, session: DbSession, actor: Manager, body: CreditRequestApprove | None = None
) -> CreditRequestOut:
    """Approve a pending request, for the amount asked or less (`amount`)."""
    amount = body.amount if body is not None else None
    return CreditRequestOut.of(await service.approve_request(session, actor, request_id, amount=amount))


@router.post("/credit-requests/{request_id}/deny", response_model=CreditRequestOut)
async def deny_request(
    request_id: uuid.UUID, session: DbSession, actor: Manager, body: CreditRequestDeny | None = None
) -> CreditRequestOut:
    """Deny a pending request, with an optional `note` for the member."""
    note = body.note if body is not None else ""
    return CreditRequestOut.of(await service.deny_request(session, actor, request_id, note=note))


@router.get("/credits/statement", response_model=StatementOut)
async def statement(
    request: Request,
    session: DbSession,
    actor: Member,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    start: Annotated[
        datetime | None, Query(alias="from", description="Inclusive, ISO 8601 with time zone")
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="Exclusive, ISO 8601 with time zone")
    ] = None,
    format: Literal["json", "csv"] = "json",
    limit: Annotated[
        int, Query(ge=1, le=statements.MAX_LIMIT, description="Lines per page (JSON)")
    ] = statements.DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
) -> StatementOut | Response:
    """A member's (`user_id`), a group's (`group_id`) or the account's ledger entries, oldest first, with
    a running balance (see `balance_basis`), a page at a time (`limit`, then `cursor=next_cursor`);
    the totals cover the whole range. Default range: the current cycle. `format=csv` downloads every
    line (streamed)."""
    if format == "csv":
        await require_feature(session, actor, "export.reports")
        header, _lines = await statements.statement_lines(
            session, actor, user_id=user_id, group_id=group_id, start=start, end=end
        )
        filename = f"cockpit-statement-{header.scope}-{utcnow():%Y%m%d-%H%M%S}.csv"
        return statement_csv_response(
            request, actor, filename, user_id=user_id, group_id=group_id, start=start, end=end
        )
    result = await statements.build_statement(
        session, actor, user_id=user_id, group_id=group_id, start=start, end=end, cursor=cursor, limit=limit
    )
    return StatementOut.of(result)
