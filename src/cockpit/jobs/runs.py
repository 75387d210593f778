"""The executions of jobs (``job_runs``) for OPERATIONS → Events: each attempt with its start,
duration, status and error. An administrator sees their account's; a system operator
(``service.is_system_operator``) sees the system's too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.jobs.models import Job, JobRun, RunStatus
from cockpit.jobs.service import is_system_operator, retry_job, visible_to
from cockpit.kit.errors import Conflict, NotFound
from cockpit.kit.pagination import Page, PageParams, paginate

RETRYABLE = (RunStatus.failed.value, RunStatus.dead.value, RunStatus.lost.value)


@dataclass(frozen=True)
class RunFilters:
    kind: str | None = None
    status: RunStatus | None = None
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before


async def search_runs(
    session: AsyncSession, actor: Actor, filters: RunFilters, params: PageParams
) -> Page[JobRun]:
    """The executions the actor may see, newest first."""
    actor.require(Permission.jobs_manage)
    operator = await is_system_operator(session, actor)
    stmt = select(JobRun).where(visible_to(JobRun.account_id, actor, operator=operator))
    if filters.kind:
        stmt = stmt.where(JobRun.kind == filters.kind)
    if filters.status is not None:
        stmt = stmt.where(JobRun.status == filters.status.value)
    if filters.since is not None:
        stmt = stmt.where(JobRun.started_at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(JobRun.started_at < filters.until)
    return await paginate(session, stmt.order_by(JobRun.started_at.desc(), JobRun.id), params)


async def access_run(session: AsyncSession, actor: Actor, run_id: uuid.UUID) -> JobRun:
    """One execution; another account's (or the system's, for anyone but a system operator) is not
    found."""
    actor.require(Permission.jobs_manage)
    operator = await is_system_operator(session, actor)
    run = await session.scalar(
        select(JobRun).where(JobRun.id == run_id, visible_to(JobRun.account_id, actor, operator=operator))
    )
    if run is None:
        raise NotFound("job_run_not_found", "No such execution.")
    return run


async def run_job(session: AsyncSession, run: JobRun) -> Job | None:
    """The job of an execution (None once it was pruned)."""
    return await session.get(Job, run.job_id)


async def retry_run(session: AsyncSession, actor: Actor, run_id: uuid.UUID) -> Job:
    """Retry the job of a failed execution (``service.retry_job``, audited as ``job.retried``)."""
    run = await access_run(session, actor, run_id)
    if run.status not in RETRYABLE:
        raise Conflict("job_not_retryable", "Only a failed execution can be retried.")
    return await retry_job(session, actor, run.job_id)
