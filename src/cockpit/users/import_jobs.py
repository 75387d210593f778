"""CSV imports started from the console run in the background of the server process."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.auth.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.imports.models import ImportJob
from cockpit.kit.errors import CockpitError, NotFound
from cockpit.kit.time import utcnow
from cockpit.users import imports
from cockpit.users import repository as users_repo
from cockpit.users.models import UserStatus

log = logging.getLogger("cockpit.imports")

# The report keeps the rows that were not created (created rows are counted).
MAX_REPORT_ROWS = 50_000
_running: set[asyncio.Task[None]] = set()


async def create_job(
    session: AsyncSession, actor: Actor, *, filename: str, content: str
) -> tuple[ImportJob, list[tuple[int, dict[str, str]]]]:
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


def start(factory: async_sessionmaker[AsyncSession], settings: Settings, job_id: uuid.UUID) -> None:
    """Run the job in this process's event loop (a reference is kept until it finishes)."""
    task = asyncio.get_running_loop().create_task(run_job(factory, settings, job_id))
    _running.add(task)
    task.add_done_callback(_running.discard)


async def _update(factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID, **values: Any) -> None:
    async with factory() as session:
        job = await session.get(ImportJob, job_id)
        if job is not None:
            for key, value in values.items():
                setattr(job, key, value)
            await session.commit()


async def run_job(factory: async_sessionmaker[AsyncSession], settings: Settings, job_id: uuid.UUID) -> None:
    try:
        async with factory() as session:
            job = await session.get(ImportJob, job_id)
            if job is None or job.status != "queued":
                return
            user = (
                await users_repo.get_in_account(session, job.account_id, job.created_by_id)
                if job.created_by_id
                else None
            )
            if user is None or user.status is not UserStatus.active:
                raise CockpitError("inviter_gone", "The person who started this import is no longer active.")
            actor = Actor.for_user(user)
            content, filename = job.content, job.filename
            job.status = "running"
            await session.commit()

        async def progress(done: int, report: imports.ImportReport) -> None:
            await _update(factory, job_id, processed=done, created=report.created, skipped=report.skipped,
                          rejected=report.rejected)  # fmt: skip

        report = await imports.run_import(
            factory, actor, settings, imports.parse_csv(content), filename=filename, progress=progress
        )
        problems = [row.__dict__ for row in report.problems[:MAX_REPORT_ROWS]]
        await _update(factory, job_id, status="done", report=problems, content="", finished_at=utcnow(),
                      processed=report.total, created=report.created, skipped=report.skipped,
                      rejected=report.rejected)  # fmt: skip
    except CockpitError as exc:
        await _update(factory, job_id, status="failed", error=exc.message[:500], finished_at=utcnow())
    except Exception:
        log.exception("import %s failed", job_id)
        await _update(factory, job_id, status="failed", error="The import stopped on an unexpected error.",
                      finished_at=utcnow())  # fmt: skip
