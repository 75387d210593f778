"""OPERATIONS → Jobs and Events over the REST API: schedules (enable, disable, run now), the account's
jobs, every execution with its error, retry, ``job.failed`` events, and who may see what."""

from __future__ import annotations

import uuid
from datetime import timedelta

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.audit.models import AuditEntry
from cockpit.config import Settings
from cockpit.events.models import PlatformEvent
from cockpit.jobs import service
from cockpit.jobs.models import Job, JobRun
from cockpit.jobs.registry import JobContext, Registry
from cockpit.jobs.worker import Worker
from cockpit.users.models import UserRole
from tests.builders import bearer, make_account, make_token, make_user
from tests.jobs.conftest import fetch_jobs


def failing_kinds() -> Registry:
    """``test.fail`` raises with a secret in its message; ``test.ok`` does nothing."""
    kinds = Registry()

    async def fail(ctx: JobContext) -> None:
        raise RuntimeError("upstream said no: password=hunter2")

    async def ok(ctx: JobContext) -> None:
        return None

    kinds.register("test.fail", fail, max_attempts=2)
    kinds.register("test.ok", ok)
    return kinds


async def _run_jobs(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    kinds: Registry,
    *jobs: tuple[str, uuid.UUID],
) -> list[uuid.UUID]:
    async with sessions() as session, session.begin():
        ids = [
            (await service.enqueue(session, kind, {}, account_id=account, kinds=kinds)).id
            for kind, account in jobs
        ]
    await Worker(sessions, settings, kinds=kinds, schedules=False).run_until_idle()
    return ids


async def test_the_schedules_and_the_accounts_jobs_are_listed_and_filtered(
    db: AsyncSession, client: AsyncClient, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    account, owner = await make_account(db)
    other, _ = await make_account(db, name="Other")
    token = await make_token(db, owner)
    kinds = failing_kinds()
    mine_ok, mine_fail, _theirs = await _run_jobs(
        sessions,
        job_settings,
        kinds,
        ("test.ok", account.id),
        ("test.fail", account.id),
        ("test.ok", other.id),
    )

    listed = await client.get("/api/v1/jobs", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    schedules = {s["kind"]: s for s in body["schedules"]}
    assert schedules["jobs.prune"]["every"] == "every day"
    assert schedules["jobs.prune"]["enabled"] is True
    assert schedules["jobs.prune"]["next_run_at"] is not None
    assert body["can_manage_schedules"] is False  # two accounts: nobody changes the system's schedules
    assert {j["id"] for j in body["items"]} == {str(mine_ok), str(mine_fail)}
    assert body["meta"]["total"] == 2

    failed = await client.get("/api/v1/jobs", params={"status": "failed"}, headers=bearer(token))
    assert [j["id"] for j in failed.json()["items"]] == [str(mine_fail)]
    by_kind = await client.get("/api/v1/jobs", params={"kind": "test.ok"}, headers=bearer(token))
    assert [j["id"] for j in by_kind.json()["items"]] == [str(mine_ok)]


async def test_executions_are_recorded_with_duration_error_and_a_scrubbed_traceback(
    db: AsyncSession, client: AsyncClient, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    account, owner = await make_account(db)
    token = await make_token(db, owner)
    kinds = failing_kinds()
    [job_id] = await _run_jobs(sessions, job_settings, kinds, ("test.fail", account.id))
    # The second attempt, after the backoff: the job gives up.
    later = Worker(sessions, job_settings, kinds=kinds, schedules=False, clock=lambda: _in(job_settings))
    await later.run_until_idle()

    events = await client.get("/api/v1/events", params={"kind": "test.fail"}, headers=bearer(token))
    assert events.status_code == 200, events.text
    items = events.json()["items"]
    assert [(r["attempt"], r["status"]) for r in items] == [(2, "dead"), (1, "failed")]
    for run in items:
        assert run["job_id"] == str(job_id)
        assert run["duration_ms"] is not None
        assert run["duration_ms"] >= 0
        assert run["finished_at"] is not None
        assert run["error"] == "RuntimeError: upstream said no: password=[redacted]"
        assert "hunter2" not in run["traceback"]
        assert "RuntimeError" in run["traceback"]
        assert "in fail" in run["traceback"]

    dead = await client.get("/api/v1/events", params={"status": "dead"}, headers=bearer(token))
    assert [r["attempt"] for r in dead.json()["items"]] == [2]
    future = await client.get(
        "/api/v1/events", params={"since": "2999-01-01T00:00:00Z"}, headers=bearer(token)
    )
    assert future.json()["items"] == []


def _in(settings: Settings):  # type: ignore[no-untyped-def]
    from cockpit.kit.time import utcnow

    return utcnow() + timedelta(seconds=settings.jobs_retry_seconds * 4)


async def test_a_dead_account_job_emits_job_failed_once_and_a_system_job_none(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    account, _ = await make_account(db)
    kinds = failing_kinds()
    async with sessions() as session, session.begin():
        await service.enqueue(session, "test.fail", {}, account_id=account.id, kinds=kinds, max_attempts=1)
        await service.enqueue(session, "test.fail", {}, kinds=kinds, max_attempts=1)  # the system's
    worker = Worker(sessions, job_settings, kinds=kinds, schedules=False)
    await worker.run_until_idle()
    await worker.recover()  # nothing to recover: no second event

    await db.rollback()
    events = list(await db.scalars(select(PlatformEvent).where(PlatformEvent.name == "job.failed")))
    assert len(events) == 1
    assert events[0].account_id == account.id
    assert events[0].data["job"] == "test.fail"
    assert events[0].data["attempts"] == 1
    assert "hunter2" not in events[0].data["error"]
    statuses = sorted(j.status for j in await fetch_jobs(db) if j.kind == "test.fail")
    assert statuses == ["dead", "dead"]


async def test_a_failed_execution_is_retried(
    db: AsyncSession, client: AsyncClient, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    account, owner = await make_account(db)
    token = await make_token(db, owner)
    kinds = failing_kinds()
    [job_id] = await _run_jobs(sessions, job_settings, kinds, ("test.fail", account.id))
    [run] = (await client.get("/api/v1/events", headers=bearer(token))).json()["items"]

    retried = await client.post(f"/api/v1/events/{run['id']}/retry", headers=bearer(token))
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("queued", 0)
    again = await client.post(f"/api/v1/events/{run['id']}/retry", headers=bearer(token))
    assert again.status_code == 409  # queued already

    await Worker(sessions, job_settings, kinds=kinds, schedules=False).run_until_idle()
    await db.rollback()
    runs = list(await db.scalars(select(JobRun).where(JobRun.job_id == job_id)))
    assert len(runs) == 2
    audits = await db.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "job.retried")
    )
    assert audits == 1

    done = (await client.get("/api/v1/events", params={"status": "failed"}, headers=bearer(token))).json()
    ok_run = next(r for r in done["items"] if r["id"] == run["id"])
    assert ok_run["status"] == "failed"


async def test_a_disabled_schedule_is_not_queued_by_a_worker(
    db: AsyncSession, client: AsyncClient, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    _, owner = await make_account(db)  # the only account: its owner is the system operator
    token = await make_token(db, owner)

    off = await client.patch("/api/v1/jobs/jobs.prune", json={"enabled": False}, headers=bearer(token))
    assert off.status_code == 200, off.text
    assert (off.json()["enabled"], off.json()["next_run_at"]) == (False, None)
    await Worker(sessions, job_settings).enqueue_schedules()
    kinds = {j.kind for j in await fetch_jobs(db)}
    assert "jobs.prune" not in kinds
    assert "credits.roll_over" in kinds  # the others still run

    on = await client.patch("/api/v1/jobs/jobs.prune", json={"enabled": True}, headers=bearer(token))
    assert on.json()["enabled"] is True
    await Worker(sessions, job_settings).enqueue_schedules()
    assert "jobs.prune" in {j.kind for j in await fetch_jobs(db)}

    actions = list(
        await db.scalars(
            select(AuditEntry.action).where(AuditEntry.action.like("job_schedule.%")).order_by(AuditEntry.seq)
        )
    )
    assert actions == ["job_schedule.disabled", "job_schedule.enabled"]
    unknown = await client.patch("/api/v1/jobs/nope.nope", json={"enabled": False}, headers=bearer(token))
    assert unknown.status_code == 404


async def test_run_now_queues_one_job_however_often_it_is_clicked(
    db: AsyncSession, client: AsyncClient
) -> None:
    _, owner = await make_account(db)
    token = await make_token(db, owner)
    first = await client.post("/api/v1/jobs/auth.purge_login_failures/run", headers=bearer(token))
    second = await client.post("/api/v1/jobs/auth.purge_login_failures/run", headers=bearer(token))
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["queued"] is True
    assert second.json()["queued"] is False
    assert first.json()["job"]["id"] == second.json()["job"]["id"]
    await db.rollback()
    count = await db.scalar(
        select(func.count()).select_from(Job).where(Job.kind == "auth.purge_login_failures")
    )
    assert count == 1
    audits = await db.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "job.run_now")
    )
    assert audits == 1


async def test_with_several_accounts_nobody_changes_the_system_schedules(
    db: AsyncSession, client: AsyncClient
) -> None:
    _, owner = await make_account(db)
    await make_account(db, name="Other")
    token = await make_token(db, owner)
    patched = await client.patch("/api/v1/jobs/jobs.prune", json={"enabled": False}, headers=bearer(token))
    ran = await client.post("/api/v1/jobs/jobs.prune/run", headers=bearer(token))
    assert (patched.status_code, ran.status_code) == (403, 403)
    assert patched.json()["error"]["code"] == "system_schedules_shared"
    await db.rollback()
    assert await db.scalar(select(func.count()).select_from(Job)) == 0


async def test_another_accounts_executions_are_not_found_and_members_are_refused(
    db: AsyncSession, client: AsyncClient, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    account, owner = await make_account(db)
    other, _ = await make_account(db, name="Other")
    token = await make_token(db, owner)
    member = await make_user(db, account, role=UserRole.member)
    member_token = await make_token(db, member)
    admin = await make_user(db, account, role=UserRole.admin)
    admin_token = await make_token(db, admin)
    kinds = failing_kinds()
    await _run_jobs(sessions, job_settings, kinds, ("test.fail", other.id), ("test.fail", None))
    await db.rollback()
    theirs, system = [
        (await db.scalar(select(JobRun.id).where(JobRun.account_id == other.id))),
        (await db.scalar(select(JobRun.id).where(JobRun.account_id.is_(None)))),
    ]
    for run_id in (theirs, system):
        assert (await client.get(f"/api/v1/events/{run_id}", headers=bearer(token))).status_code == 404
        retry = await client.post(f"/api/v1/events/{run_id}/retry", headers=bearer(admin_token))
        assert retry.status_code == 404
    assert (await client.get("/api/v1/events", headers=bearer(token))).json()["items"] == []
    for method, path in (
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/events"),
        ("PATCH", "/api/v1/jobs/jobs.prune"),
        ("POST", "/api/v1/jobs/jobs.prune/run"),
        ("POST", f"/api/v1/events/{theirs}/retry"),
    ):
        response = await client.request(
            method, path, headers=bearer(member_token), json={"enabled": False} if method == "PATCH" else None
        )
        assert response.status_code == 403, (method, path)
