"""The periodic kinds (``registry.every``) as OPERATIONS → Jobs shows them: their period, next run and
last result, and enable / disable / run now.

Every periodic job is the system's (no account): it works for every account at once. So the
schedules are listed, read-only, to every administrator, and only a *system operator* (an owner of
the installation's only account, ``service.is_system_operator``) may disable one, enable it or run
it now, or read its last error. A schedule has a row in ``job_schedules`` only once it was changed:
no row means enabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.jobs.models import Job, JobRun, JobSchedule, JobStatus
from cockpit.jobs.registry import Registry, Schedule, registry
from cockpit.jobs.service import enqueue, is_system_operator
from cockpit.kit.errors import NotFound, NotPermitted
from cockpit.kit.time import utcnow

# What each periodic kind does, for people (a kind without a line shows its name).
DESCRIPTIONS = {
    "credits.roll_over": "Starts the next credit cycle of every account whose cycle ended.",
    "usage.purge_content": "Clears stored inputs and outputs whose retention period ended.",
    "auth.purge_login_failures": "Deletes old failed sign-ins.",
    "conversations.purge": "Deletes idle conversations past their retention; purges old deleted ones.",
    "jobs.prune": "Forgets finished jobs and their executions after the keep period.",
}

# A second "Run now" while the first one waits or runs returns that job; clicks within this window
# share one dedupe key even when they race.
RUN_NOW_WINDOW = 60


def every_text(every: timedelta) -> str:
    """A period as people say it: "every 30 seconds", "every hour", "every day"."""
    seconds = int(every.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"every {unit}" if n == 1 else f"every {n} {unit}s"
    return "every second" if seconds == 1 else f"every {seconds} seconds"


def next_run(every: timedelta, now: datetime) -> datetime:
    """When the next period begins (a worker enqueues the period's job then)."""
    seconds = max(1.0, every.total_seconds())
    index = int(now.timestamp() // seconds) + 1
    return datetime.fromtimestamp(index * seconds, now.tzinfo)


@dataclass
class ScheduleView:
    kind: str
    description: str
    every: str
    enabled: bool
    next_run_at: datetime | None  # None while disabled
    last_run: JobRun | None
    last_error: str | None  # shown to a system operator only
    updated_at: datetime | None


async def disabled_kinds(session: AsyncSession) -> set[str]:
    rows = await session.scalars(select(JobSchedule.kind).where(JobSchedule.enabled.is_(False)))
    return set(rows.all())


async def list_schedules(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    *,
    kinds: Registry = registry,
    now: datetime | None = None,
) -> tuple[list[ScheduleView], bool]:
    """Every periodic kind, and whether the actor may change them (a system operator)."""
    actor.require(Permission.jobs_manage)
    operator = await is_system_operator(session, actor)
    now = now or utcnow()
    rows = {row.kind: row for row in (await session.scalars(select(JobSchedule))).all()}
    views = []
    for schedule in sorted(kinds.schedules, key=lambda s: s.kind):
        row = rows.get(schedule.kind)
        enabled = row.enabled if row is not None else True
        every = schedule.every(settings)
        last = await session.scalar(
            select(JobRun)
            .where(JobRun.kind == schedule.kind, JobRun.account_id.is_(None))
            .order_by(JobRun.started_at.desc())
            .limit(1)
        )
        views.append(
            ScheduleView(
                kind=schedule.kind,
                description=DESCRIPTIONS.get(schedule.kind, ""),
                every=every_text(every),
                enabled=enabled,
                next_run_at=next_run(every, now) if enabled else None,
                last_run=last,
                last_error=last.error if last is not None and operator else None,
                updated_at=row.updated_at if row is not None else None,
            )
        )
    return views, operator


async def _operated_schedule(session: AsyncSession, actor: Actor, kind: str, kinds: Registry) -> Schedule:
    actor.require(Permission.jobs_manage)
    schedule = next((s for s in kinds.schedules if s.kind == kind), None)
    if schedule is None:
        raise NotFound("job_schedule_not_found", "No such schedule.")
    if not await is_system_operator(session, actor):
        raise NotPermitted(
            "system_schedules_shared",
            "Scheduled jobs work for every organisation of this installation: only an owner of a "
            "single-organisation installation may change them.",
        )
    return schedule


async def set_schedule_enabled(
    session: AsyncSession, actor: Actor, kind: str, *, enabled: bool, kinds: Registry = registry
) -> JobSchedule:
    """Enable or disable a periodic kind (audited as ``job_schedule.enabled`` / ``.disabled``)."""
    await _operated_schedule(session, actor, kind, kinds)
    row = await session.get(JobSchedule, kind, with_for_update=True)
    before = row.enabled if row is not None else True
    if row is None:
        row = JobSchedule(kind=kind, enabled=enabled, updated_at=utcnow(), updated_by_id=actor.user_id)
        session.add(row)
    else:
        row.enabled, row.updated_at, row.updated_by_id = enabled, utcnow(), actor.user_id
    await session.flush()
    if before != enabled:
        await audit.record(
            session, actor, f"job_schedule.{'enabled' if enabled else 'disabled'}",
            target=Target("job_schedule", kind, kind), before={"enabled": before}, after={"enabled": enabled},
        )  # fmt: skip
    return row


async def run_schedule_now(
    session: AsyncSession,
    actor: Actor,
    kind: str,
    *,
    kinds: Registry = registry,
    now: datetime | None = None,
) -> tuple[Job, bool]:
    """Queue the periodic kind's job at once (even while disabled); returns the job and whether it
    was queued now. A job of that kind that waits or runs already is returned instead (a double
    click queues one job), and concurrent clicks share a dedupe key."""
    schedule = await _operated_schedule(session, actor, kind, kinds)
    waiting = await session.scalar(
        select(Job)
        .where(
            Job.kind == kind,
            Job.account_id.is_(None),
            Job.status.in_((JobStatus.queued.value, JobStatus.running.value)),
        )
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    if waiting is not None:
        return waiting, False
    now = now or utcnow()
    key = f"{kind}@now:{int(now.timestamp() // RUN_NOW_WINDOW)}"
    done = await session.scalar(select(Job).where(Job.dedupe_key == key))
    if done is not None:  # run a moment ago, and finished already
        return done, False
    job = await enqueue(session, kind, dict(schedule.payload), run_at=now, dedupe_key=key, kinds=kinds)
    await audit.record(
        session, actor, "job.run_now", target=Target("job", job.id, kind), after={"kind": kind}
    )
    return job, True
