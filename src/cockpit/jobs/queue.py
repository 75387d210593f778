"""The queue's SQL, used by the worker. Each function runs in the caller's transaction.

Claiming is one ``UPDATE ... WHERE id IN (SELECT ...) RETURNING``: on PostgreSQL the inner SELECT is
``FOR UPDATE SKIP LOCKED``, so concurrent workers take different rows without waiting for each
other; on SQLite a statement runs under the database's single write lock (Cockpit begins every
write transaction with ``BEGIN IMMEDIATE``), so two processes on one file never claim the same row.
Every later change of a running job names the worker (``locked_by``) in its WHERE: a worker whose
lease was taken from it can no longer finish, fail or renew that job.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.jobs.models import RUNNABLE, Job, JobStatus
from cockpit.kit.db import UTCDateTime
from cockpit.kit.logs import redact

MAX_ERROR = 2000
LEASE_LOST = "The worker running this job stopped (its lease expired); it was handed back."

_SECRETS = (
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),  # passwords in URLs
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)((?:password|secret|token|api[_-]?key)\s*[=:]\s*)\S+"), r"\1[redacted]"),
    (re.compile(r"\b(?:sk|ck)[-_][A-Za-z0-9_-]{12,}"), "[redacted]"),
)


def scrub_error(exc: BaseException) -> str:
    """What a failed attempt left in ``last_error``: its type and message, with secrets taken out."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = redact(text)
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text[:MAX_ERROR]


def backoff(attempts: int, base: float, cap: float = 3600.0) -> timedelta:
    """Wait before the next attempt: base, 2 x base, 4 x base, ... at most ``cap`` seconds."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


async def any_due(session: AsyncSession, now: datetime) -> bool:
    row = await session.scalar(select(Job.id).where(Job.status.in_(RUNNABLE), Job.run_at <= now).limit(1))
    return row is not None


async def claim(
    session: AsyncSession, worker: str, *, now: datetime, lease: timedelta, limit: int
) -> list[Job]:
    """Take up to ``limit`` runnable jobs whose time has come, oldest first, for ``worker``."""
    candidates = (
        select(Job.id).where(Job.status.in_(RUNNABLE), Job.run_at <= now).order_by(Job.run_at).limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(Job)
        .where(Job.id.in_(candidates.scalar_subquery()), Job.status.in_(RUNNABLE))
        .values(
            status=JobStatus.running.value,
            locked_by=worker,
            locked_until=now + lease,
            attempts=Job.attempts + 1,
            started_at=now,
        )
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())


async def renew(session: AsyncSession, job_id: uuid.UUID, worker: str, *, until: datetime) -> bool:
    """Extend the lease; False when the job is no longer this worker's."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker, Job.status == JobStatus.running.value)
        .values(locked_until=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def finish(session: AsyncSession, job_id: uuid.UUID, worker: str, *, now: datetime) -> bool:
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker, Job.status == JobStatus.running.value)
        .values(status=JobStatus.done.value, finished_at=now, locked_by=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def fail(
    session: AsyncSession,
    job_id: uuid.UUID,
    worker: str,
    *,
    now: datetime,
    error: str,
    retry_base: float,
    permanent: bool = False,
) -> str | None:
    """Record a failed attempt: tried again after a backoff, or ``dead`` once attempts are used up.
    Returns the new status (None when the job was no longer this worker's)."""
    job = await session.scalar(
        select(Job)
        .where(Job.id == job_id, Job.locked_by == worker, Job.status == JobStatus.running.value)
        .execution_options(populate_existing=True)
    )
    if job is None:
        return None
    job.last_error = error[:MAX_ERROR]
    job.locked_by = job.locked_until = None
    if permanent or job.attempts >= job.max_attempts:
        job.status, job.finished_at = JobStatus.dead.value, now
    else:
        job.status, job.run_at = JobStatus.failed.value, now + backoff(job.attempts, retry_base)
    await session.flush()
    return job.status


async def give_back(session: AsyncSession, job_id: uuid.UUID, worker: str, *, now: datetime) -> bool:
    """A worker that stops before its job finished returns it; the attempt does not count."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker, Job.status == JobStatus.running.value)
        .values(
            status=JobStatus.queued.value,
            attempts=case((Job.attempts > 0, Job.attempts - 1), else_=0),
            locked_by=None,
            locked_until=None,
            run_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def recover_expired(session: AsyncSession, *, now: datetime) -> list[Job]:
    """Jobs whose worker died (lease expired) go back to the queue, or are ``dead`` when that was
    their last attempt. Returns them. Safe to run from several workers at once: a row that another
    worker recovered first no longer matches."""
    used_up = Job.attempts >= Job.max_attempts
    stmt = (
        update(Job)
        .where(Job.status == JobStatus.running.value, Job.locked_until < now)
        .values(
            status=case((used_up, JobStatus.dead.value), else_=JobStatus.queued.value),
            finished_at=case((used_up, literal(now, UTCDateTime())), else_=None),
            locked_by=None,
            locked_until=None,
            run_at=now,
            last_error=LEASE_LOST,
        )
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())


async def prune(session: AsyncSession, *, before: datetime) -> int:
    """Forget finished jobs (done or dead) that ended before ``before``."""
    result = await session.execute(
        delete(Job)
        .where(Job.status.in_((JobStatus.done.value, JobStatus.dead.value)), Job.finished_at < before)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
