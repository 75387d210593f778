"""The job queue's public service: enqueue work in the caller's transaction, and list, inspect and
retry an account's jobs (for OPERATIONS → Jobs and Events).

Who sees what (docs/jobs.md, "Who may see and change jobs"): an administrator (``jobs:manage``) sees
the jobs of their own account. The system's jobs (no account: the periodic kinds) are shown and
retried only by a *system operator*: an owner of the installation's only account. With several
accounts nobody is, from the console or the API: one account's administrator must never act on
work that is every account's.

``enqueue`` adds the job to the caller's unit of work: it exists only if that transaction commits,
so "save the import and queue it" is all or nothing. A worker picks it up within
``COCKPIT_JOBS_POLL_SECONDS``, at once when a worker runs in the same process.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.jobs.models import Job, JobStatus
from cockpit.jobs.registry import Registry, registry
from cockpit.kit.db import after_commit
from cockpit.kit.errors import Conflict, NotFound
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account

# Workers running in this process: woken right after a transaction that enqueued work commits.
_local_wakers: set[Any] = set()


async def _wake_local() -> None:
    for wake in list(_local_wakers):
        wake()


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    account_id: uuid.UUID | None = None,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    dedupe_key: str | None = None,
    kinds: Registry = registry,
) -> Job:
    """Queue a job in the caller's transaction. With a ``dedupe_key`` a second enqueue of the same
    key (by anyone, at any time until the first job is pruned) returns the existing job instead."""
    spec = kinds.kinds.get(kind)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "kind": kind,
        "payload": payload or {},
        "account_id": account_id,
        "status": JobStatus.queued.value,
        "attempts": 0,
        "max_attempts": max_attempts or (spec.max_attempts if spec else 5),
        "run_at": run_at or utcnow(),
        "dedupe_key": dedupe_key,
        "created_at": utcnow(),
    }
    if dedupe_key is None:
        job = Job(**values)
        session.add(job)
        await session.flush()
    else:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await session.execute(
            insert(Job).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
        )
        found = await session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))
        assert found is not None
        job = found
    if _local_wakers:
        after_commit(session, _wake_local)
    return job


async def is_system_operator(session: AsyncSession, actor: Actor) -> bool:
    """An owner of the installation's only account: the one person who may see and change the
    system's jobs (which every account depends on). Nobody is when there are several accounts."""
    if not actor.can(Permission.owners_manage):
        return False
    # A read-only count (tenancy has no service for it); tenancy sits below the queue.
    accounts = await session.scalar(select(func.count()).select_from(Account))
    return accounts == 1


def visible_to(column: Any, actor: Actor, *, operator: bool) -> ColumnElement[bool]:
    """The rows of the actor's account, and the system's (account NULL) for a system operator."""
    mine: ColumnElement[bool] = column == actor.account_id
    return or_(mine, column.is_(None)) if operator else mine


async def list_jobs(
    session: AsyncSession,
    actor: Actor,
    *,
    status: JobStatus | None = None,
    kind: str | None = None,
    limit: int = 50,
) -> list[Job]:
    """The account's own jobs, newest first (the system's periodic jobs belong to no account)."""
    page = await search_jobs(session, actor, status=status, kind=kind, params=PageParams(1, min(limit, 200)))
    return list(page.items)


async def search_jobs(
    session: AsyncSession,
    actor: Actor,
    *,
    status: JobStatus | None = None,
    kind: str | None = None,
    params: PageParams = PageParams(),
    include_system: bool = False,
) -> Page[Job]:
    """A page of the jobs the actor may see, newest first: the account's, and with
    ``include_system`` the system's too when the actor is a system operator."""
    actor.require(Permission.jobs_manage)
    operator = include_system and await is_system_operator(session, actor)
    stmt = select(Job).where(visible_to(Job.account_id, actor, operator=operator))
    if status is not None:
        stmt = stmt.where(Job.status == status.value)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    return await paginate(session, stmt.order_by(Job.created_at.desc(), Job.id), params)


async def access_job(session: AsyncSession, actor: Actor, job_id: uuid.UUID) -> Job:
    """One of the account's jobs (or a system job, for a system operator); another account's is
    not found (404: what exists elsewhere is not revealed)."""
    actor.require(Permission.jobs_manage)
    operator = await is_system_operator(session, actor)
    job = await session.scalar(
        select(Job).where(Job.id == job_id, visible_to(Job.account_id, actor, operator=operator))
    )
    if job is None:
        raise NotFound("job_not_found", "No such job.")
    return job


async def retry_job(
    session: AsyncSession, actor: Actor, job_id: uuid.UUID, *, now: datetime | None = None
) -> Job:
    """Run a dead (or failing) job again now, with a fresh set of attempts."""
    job = await access_job(session, actor, job_id)
    if job.status not in (JobStatus.dead.value, JobStatus.failed.value):
        raise Conflict("job_not_retryable", "Only a failed or dead job can be retried.")
    before = {"status": job.status, "attempts": job.attempts}
    job.status, job.attempts, job.run_at = JobStatus.queued.value, 0, now or utcnow()
    job.finished_at = None
    await audit.record(
        session, actor, "job.retried", target=Target("job", job.id, job.kind), before=before,
        after={"status": job.status, "attempts": 0},
    )  # fmt: skip
    if _local_wakers:
        after_commit(session, _wake_local)
    return job
