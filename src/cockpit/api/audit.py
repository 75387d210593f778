from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from cockpit.audit import service
from cockpit.audit.queries import AuditFilters
from cockpit.audit.schemas import AuditEntryOut, AuditPage, ChainStatus
from cockpit.audit.web import csv_response
from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.periods import check_period
from cockpit.kit.web import DbSession
from cockpit.policies.service import require_feature

router = APIRouter(prefix="/audit", tags=["audit"])

AuditReader = Annotated[Actor, Depends(require(Permission.audit_read))]


def audit_filters(
    q: Annotated[str | None, Query(max_length=200, description="Text in action, actor, target or IP")] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor_id: uuid.UUID | None = None,
    since: Annotated[datetime | None, Query(description="Inclusive, ISO 8601 with time zone")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive, ISO 8601 with time zone")] = None,
) -> AuditFilters:
    check_period(since, until)
    return AuditFilters(q=q or None, action=action or None, actor_id=actor_id, since=since, until=until)


Filters = Annotated[AuditFilters, Depends(audit_filters)]


@router.get("", response_model=AuditPage)
async def list_entries(
    session: DbSession,
    actor: AuditReader,
    filters: Filters,
    params: Annotated[PageParams, Depends(page_params)],
) -> AuditPage:
    """The account's audit trail, newest first."""
    page = await service.search(session, actor, filters, params)
    return AuditPage(items=[AuditEntryOut.model_validate(e) for e in page.items], meta=PageMeta.of(page))


@router.get("/export", response_class=StreamingResponse)
async def export_entries(
    request: Request, session: DbSession, actor: AuditReader, filters: Filters
) -> StreamingResponse:
    """The filtered trail as CSV (newest first)."""
    await require_feature(session, actor, "export.reports")
    return csv_response(request, actor, filters)


@router.get("/verify", response_model=ChainStatus)
async def verify_chain(session: DbSession, actor: AuditReader) -> ChainStatus:
    """Walk this account's hash chain and report the first altered or missing entry."""
    [report] = await service.verify_all(session, actor.account_id)
    return ChainStatus(
        ok=report.problem is None,
        entries=report.entries,
        head=report.head,
        problem=report.problem.message if report.problem else None,
    )


@router.get("/{entry_id}", response_model=AuditEntryOut)
async def get_entry(entry_id: uuid.UUID, session: DbSession, actor: AuditReader) -> AuditEntryOut:
    return AuditEntryOut.model_validate(await service.get_entry(session, actor, entry_id))
