"""The queue's SQL, used by the worker. Each function runs in the caller's transaction.

Claiming is one ``UPDATE ... WHERE id IN (SELECT ...) RETURNING``: on PostgreSQL the inner SELECT is
``FOR UPDATE SKIP LOCKED``, so concurrent workers take different rows without waiting for each
other; on SQLite a statement runs under the database's single write lock (Cockpit begins every
write transaction with ``BEGIN IMMEDIATE``), so two processes on one file never claim the same row.
Every later change of a running job names the worker (``locked_by``) in its WHERE: a worker whose
lease was taken from it can no longer finish, fail or renew that job.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import case, delete, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.jobs.models import RUNNABLE, Job, JobRun, JobStatus, RunStatus
from cockpit.jobs.registry import on_dead_any
from cockpit.kit.db import UTCDateTime
from cockpit.kit.logs import redact

log = logging.getLogger("cockpit.jobs")

MAX_ERROR = 2000
MAX_TRACEBACK = 4000
LEASE_LOST = "The worker running this job stopped (its lease expired); it was handed back."

_SECRETS = (
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),  # passwords in URLs
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)((?:password|secret|token|api[_-]?key)\s*[=:]\s*)\S+"), r"\1[redacted]"),
    (re.compile(r"\b(?:sk|ck)[-_][A-Za-z0-9_-]{12,}"), "[redacted]"),
)


def scrub_text(text: str) -> str:
    """``text`` with URLs' passwords, bearer tokens, ``key=value`` secrets and API keys taken out."""
    text = redact(text)
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def scrub_error(exc: BaseException) -> str:
    """What a failed attempt left in ``last_error``: its type and message, with secrets taken out."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return scrub_text(text)[:MAX_ERROR]


def traceback_excerpt(exc: BaseException) -> str:
    """The end of the traceback (the frames nearest the error, its message last), scrubbed like
    ``scrub_error``: no local variables, at most ``MAX_TRACEBACK`` characters."""
    text = "".join(traceback.format_exception(exc, limit=-8))
    text = scrub_text(text)
    return text if len(text) <= MAX_TRACEBACK else "…" + text[-(MAX_TRACEBACK - 1) :]


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
    if job.status == JobStatus.dead.value:
        await run_dead_hooks(session, job, job.last_error)
    return job.status


async def run_dead_hooks(session: AsyncSession, job: Job, error: str) -> None:
    """``registry.on_dead_any`` in the transaction that made ``job`` dead, each in a savepoint."""
    for hook in list(on_dead_any):
        try:
            async with session.begin_nested():
                await hook(session, job, error)
        except Exception:
            log.exception("job dead hook failed", extra={"job_id": str(job.id), "job_kind": job.kind})


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
    jobs = list((await session.scalars(stmt)).all())
    if jobs:
        await session.execute(
            update(JobRun)
            .where(JobRun.job_id.in_([job.id for job in jobs]), JobRun.status == RunStatus.running.value)
            .values(status=RunStatus.lost.value, finished_at=now, error=LEASE_LOST)
            .execution_options(synchronize_session=False)
        )
        for job in jobs:
            if job.status == JobStatus.dead.value:
                await run_dead_hooks(session, job, LEASE_LOST)
    return jobs


async def start_runs(
    session: AsyncSession, jobs: Sequence[Job], worker: str, *, now: datetime
) -> dict[uuid.UUID, uuid.UUID]:
    """An execution row for each job just claimed (in the claim's transaction); job id -> run id."""
    runs = {job.id: uuid.uuid4() for job in jobs}
    if jobs:
        await session.execute(
            insert(JobRun),
            [
                {
                    "id": runs[job.id],
                    "job_id": job.id,
                    "kind": job.kind,
                    "account_id": job.account_id,
                    "attempt": job.attempts,
                    "worker": worker,
                    "started_at": now,
                    "status": RunStatus.running.value,
                }
                for job in jobs
            ],
        )
    return runs


async def end_run(
    session: AsyncSession,
    run_id: uuid.UUID,
    status: RunStatus | str,
    *,
    now: datetime,
    duration_ms: int,
    error: str | None = None,
    traceback: str | None = None,
) -> None:
    """Complete an execution row (only one still running: a recovered one stays ``lost``)."""
    values = {
        "status": str(status), "finished_at": now, "duration_ms": duration_ms,
        "error": error[:MAX_ERROR] if error else None, "traceback": traceback,
    }  # fmt: skip
    await session.execute(
        update(JobRun)
        .where(JobRun.id == run_id, JobRun.status == RunStatus.running.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def prune(session: AsyncSession, *, before: datetime) -> int:
    """Forget finished jobs (done or dead) that ended before ``before``, and their executions (the
    foreign key cascades too; deleted explicitly so that it does not depend on the connection)."""
    finished = (Job.status.in_((JobStatus.done.value, JobStatus.dead.value)), Job.finished_at < before)
    await session.execute(
        delete(JobRun)
        .where(JobRun.job_id.in_(select(Job.id).where(*finished)))
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(delete(Job).where(*finished).execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]
