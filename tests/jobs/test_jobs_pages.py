"""OPERATIONS → Jobs and Events in the console: schedules with enable/disable and run now, the
executions with filters, an htmx partial, the error and traceback (escaped), retry, and access."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.config import Settings
from cockpit.jobs import service
from cockpit.jobs.models import Job, JobRun, JobSchedule
from cockpit.jobs.registry import JobContext, Registry
from cockpit.jobs.worker import Worker
from cockpit.users.models import UserRole
from tests.builders import console_login, csrf_for, make_account, make_user


async def _failed_run(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, account_id: object
) -> None:
    kinds = Registry()

    async def broken(ctx: JobContext) -> None:
        raise ValueError("<script>alert(1)</script> token=abc123")

    kinds.register("test.broken", broken, max_attempts=3)
    async with sessions() as session, session.begin():
        await service.enqueue(session, "test.broken", {}, account_id=account_id, kinds=kinds)  # type: ignore[arg-type]
    await Worker(sessions, settings, kinds=kinds, schedules=False).run_until_idle()


async def test_an_owner_disables_and_runs_a_schedule_from_the_jobs_page(
    db: AsyncSession, client: AsyncClient
) -> None:
    _, owner = await make_account(db)
    await console_login(client, owner.email)
    page = await client.get("/jobs")
    assert page.status_code == 200
    assert "jobs.prune" in page.text
    assert "every day" in page.text
    assert 'action="/jobs/jobs.prune/disable"' in page.text

    csrf = await csrf_for(client, "/jobs")
    refused = await client.post("/jobs/jobs.prune/disable", data={})
    assert refused.status_code == 403  # no CSRF token
    done = await client.post("/jobs/jobs.prune/disable", data={"csrf_token": csrf})
    assert done.status_code == 303
    await db.rollback()
    row = await db.get(JobSchedule, "jobs.prune", populate_existing=True)
    assert row is not None
    assert row.enabled is False
    page = await client.get("/jobs")
    assert 'action="/jobs/jobs.prune/enable"' in page.text

    for _ in range(2):  # a double click queues one job
        ran = await client.post("/jobs/jobs.prune/run", data={"csrf_token": csrf})
        assert ran.status_code == 303
    await db.rollback()
    jobs = list(await db.scalars(select(Job).where(Job.kind == "jobs.prune")))
    assert len(jobs) == 1


async def test_with_several_accounts_the_schedules_are_read_only(
    db: AsyncSession, client: AsyncClient
) -> None:
    _, owner = await make_account(db)
    await make_account(db, name="Other")
    await console_login(client, owner.email)
    page = await client.get("/jobs")
    assert page.status_code == 200
    assert "jobs.prune" in page.text
    assert "/jobs/jobs.prune/disable" not in page.text
    assert "No jobs yet" in page.text
    csrf = await csrf_for(client, "/jobs")
    assert (await client.post("/jobs/jobs.prune/disable", data={"csrf_token": csrf})).status_code == 403


async def test_the_events_page_shows_executions_with_their_error_and_retries_one(
    db: AsyncSession, client: AsyncClient, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    account, owner = await make_account(db)
    await _failed_run(sessions, job_settings, account.id)
    await console_login(client, owner.email)

    empty = await client.get("/events", params={"status": "done"})
    assert "No executions" in empty.text
    page = await client.get("/events", params={"kind": "test.broken"})
    assert page.status_code == 200
    assert "test.broken" in page.text
    assert "<script>alert(1)</script>" not in page.text
    partial = await client.get(
        "/events", params={"status": "failed"}, headers={"HX-Request": "true", "HX-Target": "events-results"}
    )
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert 'id="events-table"' in partial.text

    await db.rollback()
    run = await db.scalar(select(JobRun).where(JobRun.kind == "test.broken"))
    assert run is not None
    run_id, job_id = run.id, run.job_id
    detail = await client.get(f"/events/{run_id}")
    assert detail.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail.text
    assert "abc123" not in detail.text
    assert 'id="run-traceback"' in detail.text

    csrf = await csrf_for(client, "/events")
    retried = await client.post(f"/events/{run_id}/retry", data={"csrf_token": csrf})
    assert retried.status_code == 303
    await db.rollback()
    job = await db.get(Job, job_id, populate_existing=True)
    assert job is not None
    assert (job.status, job.attempts) == ("queued", 0)


async def test_members_are_refused_and_other_accounts_executions_are_not_found(
    db: AsyncSession, client: AsyncClient, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    account, owner = await make_account(db)
    other, _ = await make_account(db, name="Other")
    await _failed_run(sessions, job_settings, other.id)
    await db.rollback()
    theirs = await db.scalar(select(JobRun.id))
    member = await make_user(db, account, role=UserRole.member)

    await console_login(client, owner.email)
    assert (await client.get(f"/events/{theirs}")).status_code == 404
    assert (await client.get("/events/not-a-uuid")).status_code == 404
    assert "test.broken" not in (await client.get("/events")).text
    csrf = await csrf_for(client, "/events")
    assert (await client.post(f"/events/{theirs}/retry", data={"csrf_token": csrf})).status_code == 404

    await client.post("/logout", data={"csrf_token": csrf})
    client.cookies.clear()
    await console_login(client, member.email)
    assert (await client.get("/jobs")).status_code == 403
    assert (await client.get("/events")).status_code == 403
