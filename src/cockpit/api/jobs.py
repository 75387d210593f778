"""Jobs and events: the background work of the account (issue 16; docs/jobs.md).

``{kind}`` in ``/jobs/{kind}`` is a periodic kind (``credits.roll_over``): the schedules are the
system's, one per kind, and have no other id. Only a system operator (an owner of a
single-organisation installation) may change them; an administrator sees them read-only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.jobs import runs, schedules, service
from cockpit.jobs.models import JobStatus, RunStatus
from cockpit.jobs.schedules import ScheduleView
from cockpit.jobs.schemas import (
    JobOut,
    JobRunOut,
    JobRunsPage,
    JobsPage,
    RunNowOut,
    ScheduleOut,
    ScheduleUpdate,
)
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.periods import check_period
from cockpit.kit.web import DbSession

router = APIRouter(tags=["jobs"])

JobsManager = Annotated[Actor, Depends(require(Permission.jobs_manage))]
Kind = Annotated[str | None, Query(max_length=100)]


def schedule_out(view: ScheduleView) -> ScheduleOut:
    last = view.last_run
    return ScheduleOut(
        kind=view.kind, description=view.description, every=view.every, enabled=view.enabled,
        next_run_at=view.next_run_at, last_run_at=last.started_at if last else None,
        last_status=last.status if last else None, last_error=view.last_error, updated_at=view.updated_at,
    )  # fmt: skip


@router.get("/jobs", response_model=JobsPage)
async def list_jobs(
    request: Request,
    session: DbSession,
    actor: JobsManager,
    params: Annotated[PageParams, Depends(page_params)],
    kind: Kind = None,
    status: JobStatus | None = None,
) -> JobsPage:
    """The periodic schedules, and a page of the account's jobs (newest first; a system operator
    sees the system's jobs too)."""
    views, operator = await schedules.list_schedules(session, actor, request.app.state.settings)
    page = await service.search_jobs(
        session, actor, status=status, kind=kind or None, params=params, include_system=True
    )
    return JobsPage(
        schedules=[schedule_out(v) for v in views],
        can_manage_schedules=operator,
        items=[JobOut.model_validate(j) for j in page.items],
        meta=PageMeta.of(page),
    )


@router.patch("/jobs/{kind}", response_model=ScheduleOut)
async def update_schedule(
    request: Request, kind: str, body: ScheduleUpdate, session: DbSession, actor: JobsManager
) -> ScheduleOut:
    """Enable or disable a periodic kind (a disabled one is not queued by the workers)."""
    await schedules.set_schedule_enabled(session, actor, kind, enabled=body.enabled)
    views, _ = await schedules.list_schedules(session, actor, request.app.state.settings)
    return schedule_out(next(v for v in views if v.kind == kind))


@router.post("/jobs/{kind}/run", response_model=RunNowOut, status_code=status.HTTP_202_ACCEPTED)
async def run_now(kind: str, session: DbSession, actor: JobsManager) -> RunNowOut:
    """Queue the periodic kind's job at once; a second call while it waits or runs returns it."""
    job, queued = await schedules.run_schedule_now(session, actor, kind)
    return RunNowOut(job=JobOut.model_validate(job), queued=queued)


@router.get("/events", response_model=JobRunsPage)
async def list_events(
    session: DbSession,
    actor: JobsManager,
    params: Annotated[PageParams, Depends(page_params)],
    kind: Kind = None,
    status: RunStatus | None = None,
    since: Annotated[datetime | None, Query(description="Started at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Started before (ISO 8601)")] = None,
) -> JobRunsPage:
    """Every execution of the account's jobs, newest first."""
    check_period(since, until)
    filters = runs.RunFilters(kind=kind or None, status=status, since=since, until=until)
    page = await runs.search_runs(session, actor, filters, params)
    return JobRunsPage(items=[JobRunOut.model_validate(r) for r in page.items], meta=PageMeta.of(page))


@router.get("/events/{run_id}", response_model=JobRunOut)
async def get_event(run_id: uuid.UUID, session: DbSession, actor: JobsManager) -> JobRunOut:
    return JobRunOut.model_validate(await runs.access_run(session, actor, run_id))


@router.post("/events/{run_id}/retry", response_model=JobOut)
async def retry_event(run_id: uuid.UUID, session: DbSession, actor: JobsManager) -> JobOut:
    """Run the job of a failed execution again now, with a fresh set of attempts."""
    return JobOut.model_validate(await runs.retry_run(session, actor, run_id))
