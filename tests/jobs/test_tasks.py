"""The work that moved onto the queue: cycle roll-over, CSV imports that resume after a crash,
usage content retention, the purge of failed sign-ins, the queue's own pruning."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import cockpit.tasks  # noqa: F401  (every job kind registered)
from cockpit.analytics import tasks as rollup_tasks
from cockpit.analytics.rollup_models import UsageRollup, UsageRollupAccount
from cockpit.audit.models import AuditEntry
from cockpit.auth.models import LoginFailure
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import Cadence, CreditCycle
from cockpit.imports import import_jobs
from cockpit.imports import service as imports
from cockpit.imports.models import ImportJob
from cockpit.invitations.models import Invitation
from cockpit.jobs import queue, service
from cockpit.jobs.models import Job
from cockpit.jobs.registry import JobContext
from cockpit.jobs.worker import Worker
from cockpit.kit.time import utcnow
from cockpit.usage.models import UsageRecord
from cockpit.usage.recorder import insert_records, to_row
from tests.analytics.data import make_calls
from tests.builders import make_account
from tests.gateway.test_recording import make_record
from tests.jobs.conftest import Clock, fetch_jobs


async def test_cycles_roll_over_from_the_queue(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    account, _ = await make_account(db)
    account.cycle_cadence = Cadence.hour.value
    account.credits_per_cycle = 1000
    await db.commit()
    await current_cycle(db, account, now=utcnow() - timedelta(hours=2))
    await db.commit()

    await Worker(sessions, job_settings).run_until_idle()  # enqueues the periodic jobs, then runs them

    await db.rollback()
    seqs = await db.scalars(select(CreditCycle.seq).where(CreditCycle.account_id == account.id))
    assert sorted(seqs) == [1, 2]
    # The roll-over's platform event (cycle.reset) is fanned out by a job of its own.
    kinds = {j.kind: j.status for j in await fetch_jobs(db) if j.kind != "events.fan_out"}
    assert kinds == {
        "credits.roll_over": "done",
        "usage.purge_content": "done",
        "auth.purge_login_failures": "done",
        "jobs.prune": "done",
        "usage.rollup": "done",
        "conversations.purge": "done",
        "reports.schedule": "done",
    }


async def test_failed_sign_ins_are_purged_once_old(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    now = utcnow()
    db.add_all(
        [
            LoginFailure(email="old@example.com", ip="203.0.113.1", created_at=now - timedelta(days=3)),
            LoginFailure(email="new@example.com", ip="203.0.113.2", created_at=now - timedelta(minutes=5)),
        ]
    )
    await db.commit()

    await Worker(sessions, job_settings).run_until_idle()

    await db.rollback()
    assert list(await db.scalars(select(LoginFailure.email))) == ["new@example.com"]


async def test_stored_content_is_cleared_once_its_retention_ended(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    account, _ = await make_account(db)
    expired, kept = uuid.uuid4(), uuid.uuid4()
    content: dict[str, Any] = {"request_content": {"messages": ["hi"]}, "response_content": "hello"}
    await insert_records(
        db,
        [
            to_row(
                make_record(
                    account.id, id=str(expired), content_expires_at=utcnow() - timedelta(minutes=1), **content
                )
            ),
            to_row(
                make_record(
                    account.id, id=str(kept), content_expires_at=utcnow() + timedelta(days=1), **content
                )
            ),
        ],
    )
    await db.commit()

    await Worker(sessions, job_settings).run_until_idle()

    await db.rollback()
    rows = {r.id: r for r in await db.scalars(select(UsageRecord).execution_options(populate_existing=True))}
    assert (rows[expired].request_content, rows[expired].response_content) == (None, None)
    assert rows[expired].input_tokens == 7  # the call itself stays
    assert rows[kept].response_content == "hello"


async def test_finished_jobs_are_pruned_after_the_keep_period(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings, clock: Clock
) -> None:
    async with sessions() as session, session.begin():
        await service.enqueue(session, "test.gone", {}, run_at=clock.now)
    async with sessions() as session, session.begin():
        [job] = await queue.claim(session, "w", now=clock.now, lease=timedelta(minutes=1), limit=1)
        await queue.finish(session, job.id, "w", now=clock.now)
    clock.advance(days=job_settings.jobs_keep_days, seconds=1)
    await Worker(sessions, job_settings, clock=clock).run_until_idle()
    assert "test.gone" not in {j.kind for j in await fetch_jobs(db)}


CSV_ROWS = 7


async def _import(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> tuple[uuid.UUID, uuid.UUID]:
    account, owner = await make_account(db)
    text = "email,name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(CSV_ROWS))
    async with sessions() as session, session.begin():
        record, _ = await import_jobs.create_job(
            session, Actor.for_user(owner), filename="people.csv", content=text
        )
    return account.id, record.id


async def test_an_import_interrupted_by_a_crash_resumes_and_invites_nobody_twice(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    job_settings: Settings,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(imports, "BATCH_SIZE", 3)
    account_id, import_id = await _import(db, sessions)
    await db.execute(update(Job).values(run_at=clock.now))
    await db.commit()

    # The first worker imports one batch, then its process dies in the middle of the second.
    real_batch = imports.import_batch
    calls = 0

    async def dies_on_the_second_batch(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise SystemExit("kill -9")  # nothing after this runs: no error handling, no status update
        return await real_batch(*args, **kwargs)

    monkeypatch.setattr(imports, "import_batch", dies_on_the_second_batch)
    doomed = Worker(sessions, job_settings, name="doomed", clock=clock, schedules=False)
    [job] = await doomed.claim(1)
    with pytest.raises(SystemExit):
        await import_jobs.run_job(sessions, job_settings, import_id)
    monkeypatch.setattr(imports, "import_batch", real_batch)

    await db.rollback()
    left = await db.get(ImportJob, import_id, populate_existing=True)
    assert left is not None
    assert (left.status, left.processed, left.created) == ("running", 3, 3)

    # After the lease expired another worker takes the job and finishes the import.
    clock.advance(seconds=job_settings.jobs_lease_seconds + 1)
    # (the invitations' platform events are fanned out by jobs of their own, run here too)
    assert (
        await Worker(sessions, job_settings, name="next", clock=clock, schedules=False).run_until_idle() >= 1
    )

    await db.rollback()
    done = await db.get(ImportJob, import_id, populate_existing=True)
    assert done is not None
    assert (done.status, done.processed, done.created, done.skipped, done.rejected) == ("done", 7, 7, 0, 0)
    assert done.report == []
    emails = list(await db.scalars(select(Invitation.email).where(Invitation.account_id == account_id)))
    assert sorted(emails) == sorted(f"p{i}@example.com" for i in range(CSV_ROWS))  # each exactly once
    audits = await db.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "users.imported")
    )
    assert audits == 1
    [queued] = [j for j in await fetch_jobs(db) if j.id == job.id]
    assert (queued.status, queued.attempts) == ("done", 2)


async def test_an_import_is_not_run_again_once_done(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    account_id, import_id = await _import(db, sessions)
    await Worker(sessions, job_settings, schedules=False).run_until_idle()
    # Its worker died after the import committed but before the job was marked done: it runs again.
    await import_jobs.run_job(sessions, job_settings, import_id)
    await db.rollback()
    record = await db.get(ImportJob, import_id, populate_existing=True)
    assert record is not None
    assert (record.status, record.created, record.skipped) == ("done", CSV_ROWS, 0)
    count = await db.scalar(
        select(func.count()).select_from(Invitation).where(Invitation.account_id == account_id)
    )
    assert count == CSV_ROWS


async def test_an_import_whose_job_dies_is_shown_as_failed(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings, clock: Clock
) -> None:
    _, import_id = await _import(db, sessions)
    await db.execute(update(Job).values(run_at=clock.now, attempts=import_jobs.MAX_ATTEMPTS - 1))
    await db.commit()
    doomed = Worker(sessions, job_settings, name="doomed", clock=clock, schedules=False)
    await doomed.claim(1)  # its last attempt, and the worker dies
    clock.advance(seconds=job_settings.jobs_lease_seconds + 1)
    await Worker(sessions, job_settings, clock=clock, schedules=False).recover()

    await db.rollback()
    record = await db.get(ImportJob, import_id, populate_existing=True)
    assert record is not None
    assert (record.status, record.error) == ("failed", import_jobs.UNEXPECTED)
    # The dead job's account hears of it: a job.failed event, fanned out by a job of its own.
    [job] = [j for j in await fetch_jobs(db) if j.kind != "events.fan_out"]
    assert job.status == "dead"


@pytest.mark.parametrize(("people_from", "people"), [(51, False), (50, True)])
async def test_the_rollup_job_keeps_people_from_the_setting(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    job_settings: Settings,
    people_from: int,
    people: bool,
) -> None:
    """COCKPIT_ROLLUP_PEOPLE_FROM: an account's rollups keep its people once it has that many calls."""
    account, _ = await make_account(db)
    await db.execute(insert(UsageRecord), make_calls(account.id, n=50).rows)
    await db.commit()

    settings = job_settings.model_copy(update={"rollup_people_from": people_from})
    ctx = JobContext(uuid.uuid4(), rollup_tasks.KIND, {}, None, 1, 3, sessions, settings, utcnow)
    kept = None
    for _ in range(300):  # on PostgreSQL a transaction open elsewhere in the cluster holds the roll back
        await rollup_tasks.roll_up(ctx)
        await db.rollback()
        query = select(UsageRollupAccount.people, UsageRollupAccount.calls)
        kept = (await db.execute(query.where(UsageRollupAccount.account_id == account.id))).first()
        if kept is not None:
            break
        await asyncio.sleep(0.1)
    assert kept is not None
    # Rolled on a loop of its own (not the server's, where the gateway's calls would wait behind it).
    assert "cockpit-rollups" in {thread.name for thread in threading.enumerate()}
    assert tuple(kept) == (people, 50)
    dims = set(await db.scalars(select(UsageRollup.dim).where(UsageRollup.account_id == account.id)))
    assert ("user" in dims) is people
    assert "model" in dims
