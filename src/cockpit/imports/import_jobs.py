"""CSV imports started from the console run on the job queue (kind ``users.import``).

The upload stores the file and queues a job in the same transaction. The job imports batch by
batch; each batch's invitations commit together with the import's progress (rows done, counts, the
report so far), so a worker that dies mid-import leaves a consistent record, and the next attempt
(the queue hands the job back when the lease expires) resumes after the last committed batch:
nobody is invited twice. A finished import is never run again (its status is checked first).
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.imports import service as imports
from cockpit.imports.models import ImportJob
from cockpit.jobs import service as jobs
from cockpit.kit.errors import CockpitError, NotFound
from cockpit.kit.time import utcnow
from cockpit.users import service as users
from cockpit.users.models import UserStatus

log = logging.getLogger("cockpit.imports")

KIND = "users.import"
MAX_ATTEMPTS = 5
# The report keeps the rows that were not created (created rows are counted).
MAX_REPORT_ROWS = 50_000
UNEXPECTED = "The import stopped on an unexpected error."


async def create_job(
    session: AsyncSession, actor: Actor, *, filename: str, content: str
) -> tuple[ImportJob, list[tuple[int, dict[str, str]]]]:
    """Store the file and queue its import (runs once the caller's transaction commits)."""
    actor.require(Permission.users_write)
    rows = imports.parse_csv(content)  # a broken file is refused before anything is stored
    job = ImportJob(
        id=uuid.uuid4(),
        account_id=actor.account_id,
        created_by_id=actor.user_id,
        filename=filename[:255],
        status="queued",
        total=len(rows),
        content=content,
    )
    session.add(job)
    await session.flush()
    await jobs.enqueue(
        session, KIND, {"import_id": str(job.id)}, account_id=actor.account_id,
        max_attempts=MAX_ATTEMPTS, dedupe_key=f"{KIND}:{job.id}",
    )  # fmt: skip
    return job, rows


async def access_job(session: AsyncSession, actor: Actor, job_id: uuid.UUID) -> ImportJob:
    actor.require(Permission.users_read)
    job = await session.scalar(
        select(ImportJob).where(ImportJob.account_id == actor.account_id, ImportJob.id == job_id)
    )
    if job is None:
        raise NotFound("import_not_found", "No such import.")
    return job


async def recent_jobs(session: AsyncSession, actor: Actor, limit: int = 10) -> list[ImportJob]:
    actor.require(Permission.users_read)
    rows = await session.scalars(
        select(ImportJob)
        .where(ImportJob.account_id == actor.account_id)
        .order_by(ImportJob.created_at.desc())
        .limit(limit)
    )
    return list(rows)


async def mark_failed(factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID, message: str) -> None:
    """Close an import that will not finish (only one that has not finished already)."""
    async with factory() as session, session.begin():
        await session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.status.in_(("queued", "running")))
            .values(status="failed", error=message[:500], finished_at=utcnow())
        )


def _problems(report: imports.ImportReport) -> list[dict[str, object]]:
    return [row.__dict__ for row in report.problems[:MAX_REPORT_ROWS]]


async def run_job(factory: async_sessionmaker[AsyncSession], settings: Settings, job_id: uuid.UUID) -> None:
    """Run (or resume) an import. A business refusal (the inviter left) closes it as failed; any
    other error propagates so that the queue tries again later."""
    try:
        async with factory() as session:
            job = await session.get(ImportJob, job_id)
            if job is None or job.status not in ("queued", "running"):
                return  # finished already: running it again changes nothing
            user = (
                await users.get_user(session, job.account_id, job.created_by_id)
                if job.created_by_id
                else None
            )
            if user is None or user.status is not UserStatus.active:
                raise CockpitError("inviter_gone", "The person who started this import is no longer active.")
            actor = Actor.for_user(user)
            content, filename, start = job.content, job.filename, job.processed
            report = imports.ImportReport(
                total=job.total,
                rows=[imports.RowOutcome(**row) for row in job.report],
                created=job.created,
                skipped=job.skipped,
                rejected=job.rejected,
            )
            if start:
                log.info("resuming import %s after row %d of %d", job_id, start, job.total)
            job.status = "running"
            await session.commit()
    except CockpitError as exc:
        await mark_failed(factory, job_id, exc.message)
        return
    written = len(report.problems)

    async def checkpoint(session: AsyncSession, done: int, report: imports.ImportReport) -> None:
        nonlocal written
        values: dict[str, object] = {
            "processed": done, "created": report.created, "skipped": report.skipped,
            "rejected": report.rejected,
        }  # fmt: skip
        problems = len(report.problems)
        if problems != written and written < MAX_REPORT_ROWS:  # the report only grows: write it when it does
            values["report"] = _problems(report)
            written = problems
        await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values))

    async def finish(session: AsyncSession, done: int, report: imports.ImportReport) -> None:
        await session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(
                status="done", report=_problems(report), content="", finished_at=utcnow(), processed=done,
                created=report.created, skipped=report.skipped, rejected=report.rejected,
            )
        )  # fmt: skip

    try:
        await imports.run_import(
            factory, actor, settings, imports.parse_csv(content), filename=filename, start=start,
            report=report, checkpoint=checkpoint, finish=finish,
        )  # fmt: skip
    except CockpitError as exc:
        await mark_failed(factory, job_id, exc.message)
