"""Cost tracking and project analytics over the recorded calls, and exports of them.

Every view takes the same filters as query parameters (``from``/``to`` ISO 8601 instants with a
time zone, default: the last 30 days; ``group_id``, ``project_id``, ``user_id``, ``model``, ``agent``
(empty: calls without an agent), ``api_token_id``, ``operation``, ``status``). Administrators see the
whole account, a project's members that project (``project_id``), anyone else their own calls.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import Field

from cockpit.analytics import service
from cockpit.analytics.filters import Dimension, Filters, Operation, Scope, Status
from cockpit.analytics.labels import names
from cockpit.analytics.schemas import BreakdownOut, PivotOut, SummaryOut, TimelineOut
from cockpit.analytics.service import Metric
from cockpit.auth.dependencies import ApiActor
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.exports import service as exports
from cockpit.exports.models import Export, ExportFormat, ExportView
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession
from cockpit.tenancy.service import account_by_id

router = APIRouter(tags=["analytics"])
DEFAULT_RANGE = timedelta(days=30)
Text = Annotated[str | None, Query(max_length=200)]


def view_filters(
    start: Annotated[
        datetime | None, Query(alias="from", description="Inclusive, ISO 8601 with time zone")
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="Exclusive, ISO 8601 with time zone")
    ] = None,
    group_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    api_token_id: uuid.UUID | None = None,
    model: Text = None,
    agent: Annotated[str | None, Query(max_length=100, description="Empty: calls without an agent")] = None,
    operation: Operation | None = None,
    status: Status | None = None,
) -> Filters:
    end = end or utcnow()
    start = start or end - DEFAULT_RANGE
    return Filters(
        start=start, end=end, group_id=group_id, project_id=project_id, user_id=user_id,
        api_token_id=api_token_id, model=model or None, agent=agent, operation=operation, status=status,
    )  # fmt: skip


ViewFilters = Annotated[Filters, Depends(view_filters)]


async def _scope(session: DbSession, actor: Actor, f: Filters) -> Scope:
    """A project filter from someone who is not an administrator asks for that project's view."""
    project = f.project_id if f.project_id is not None and not actor.can(Permission.usage_read_all) else None
    return await service.scope_for(session, actor, project)


async def _zone(session: DbSession, actor: Actor) -> ZoneInfo:
    account = await account_by_id(session, actor.account_id)
    try:
        return ZoneInfo(account.timezone if account is not None else "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


@router.get("/analytics/summary", response_model=SummaryOut, response_model_by_alias=True)
async def summary(session: DbSession, actor: ApiActor, f: ViewFilters) -> SummaryOut:
    """Indicators of the period, each with its value over the previous period of equal length."""
    return SummaryOut.of_summary(await service.summary(session, await _scope(session, actor, f), f))


@router.get("/analytics/timeseries", response_model=TimelineOut)
async def timeseries(
    session: DbSession,
    actor: ApiActor,
    f: ViewFilters,
    granularity: Literal["hour", "day"] | None = None,
    stack_by: Dimension | None = None,
    stack_metric: Metric = Metric.cost,
) -> TimelineOut:
    """Figures per local hour or day (hours up to 2 days, else days), stacked by a dimension if asked."""
    zone = await _zone(session, actor)
    line = await service.timeline(
        session, await _scope(session, actor, f), f, zone, names, granularity=granularity, stack_by=stack_by,
        stack_metric=stack_metric,
    )  # fmt: skip
    return TimelineOut.of(line, zone.key)


@router.get("/analytics/breakdown", response_model=BreakdownOut)
async def breakdown(
    session: DbSession,
    actor: ApiActor,
    f: ViewFilters,
    by: Dimension,
    sort: Metric = Metric.cost,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> BreakdownOut:
    """Cost, requests, tokens and errors by a dimension, largest first, with each row's share."""
    scope = await _scope(session, actor, f)
    return BreakdownOut.of(
        await service.breakdown(session, scope, f, by, names, sort=sort, limit=limit, offset=offset)
    )


@router.get("/analytics/top-users", response_model=BreakdownOut)
async def top_users(
    session: DbSession, actor: ApiActor, f: ViewFilters, metric: Literal["cost", "requests"] = "cost"
) -> BreakdownOut:
    scope = await _scope(session, actor, f)
    return BreakdownOut.of(await service.top_users(session, scope, f, names, metric=Metric(metric)))


@router.get("/analytics/pivot", response_model=PivotOut)
async def pivot(
    session: DbSession,
    actor: ApiActor,
    f: ViewFilters,
    rows: Literal["user"] = "user",
    columns: Literal["model", "agent"] = "model",
    value: Literal["cost", "requests", "tokens"] = "cost",
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PivotOut:
    scope = await _scope(session, actor, f)
    table = await service.pivot(
        session, scope, f, names, rows_by=Dimension(rows), columns_by=Dimension(columns), value=Metric(value),
        limit=limit, offset=offset,
    )  # fmt: skip
    return PivotOut.of(table)


# ---- exports ----


class ExportIn(InputSchema):
    format: ExportFormat
    view: ExportView = ExportView.cost
    start: datetime | None = Field(default=None, alias="from")
    end: datetime | None = Field(default=None, alias="to")
    group_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    api_token_id: uuid.UUID | None = None
    model: str | None = Field(default=None, max_length=200)
    agent: str | None = Field(default=None, max_length=100)
    operation: Operation | None = None
    status: Status | None = None


class ExportOut(OutputSchema):
    id: uuid.UUID
    format: str
    view: str
    status: str
    progress: int
    rows: int
    file_name: str | None
    size_bytes: int | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None
    download_url: str | None

    @classmethod
    def of(cls, export: Export, request: Request) -> ExportOut:
        url = (
            str(request.url_for("download_export", export_id=export.id)) if export.status == "done" else None
        )
        return cls.model_validate({**{k: getattr(export, k) for k in cls.model_fields if k != "download_url"},
                                   "download_url": url})  # fmt: skip


@router.post("/exports", response_model=ExportOut, status_code=202)
async def request_export(body: ExportIn, request: Request, session: DbSession, actor: ApiActor) -> ExportOut:
    """Ask for an export of a view; it is made in the background: poll ``GET /exports/{id}``."""
    f = view_filters(
        body.start, body.end, body.group_id, body.project_id, body.user_id, body.api_token_id, body.model,
        body.agent, body.operation, body.status,
    )  # fmt: skip
    project = f.project_id if f.project_id is not None and not actor.can(Permission.usage_read_all) else None
    export = await exports.request_export(
        session, actor, format=body.format, view=body.view, filters=f, project_id=project
    )
    await session.commit()
    return ExportOut.of(export, request)


@router.get("/exports/{export_id}", response_model=ExportOut)
async def get_export(
    export_id: uuid.UUID, request: Request, session: DbSession, actor: ApiActor
) -> ExportOut:
    return ExportOut.of(await exports.get_export(session, actor, export_id), request)


@router.get("/exports/{export_id}/download", name="download_export")
async def download_export(
    export_id: uuid.UUID, request: Request, session: DbSession, actor: ApiActor
) -> FileResponse:
    export, path = await exports.download(session, actor, request.app.state.settings, export_id)
    await session.commit()
    suffix = path.suffix.lstrip(".")
    return FileResponse(path, media_type=exports.MEDIA.get(suffix, "application/octet-stream"),
                        filename=export.file_name or path.name)  # fmt: skip
