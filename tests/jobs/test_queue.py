"""The durable job queue: enqueue in the caller's transaction, exclusive claims, leases handed back
when a worker dies, retries with backoff, dead jobs, periodic jobs enqueued once per period."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.audit.models import AuditEntry
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.jobs import queue, service
from cockpit.jobs.models import Job, JobStatus
from cockpit.jobs.registry import JobContext, PermanentJobError, Registry
from cockpit.jobs.worker import Worker
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.errors import NotFound
from tests.builders import make_account
from tests.jobs.conftest import Clock, fetch_jobs


async def _enqueue(
    sessions: async_sessionmaker[AsyncSession],
    kinds: Registry,
    kind: str,
    n: int = 1,
    *,
    run_at: datetime | None = None,
) -> list[uuid.UUID]:
    async with sessions() as session, session.begin():
        return [
            (await service.enqueue(session, kind, {"n": i}, kinds=kinds, run_at=run_at)).id for i in range(n)
        ]


async def test_a_job_exists_only_if_the_enqueuing_transaction_commits(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        await service.enqueue(session, "test.nothing", {"a": 1})
        await session.rollback()
    assert await fetch_jobs(db) == []

    async with sessions() as session, session.begin():
        await service.enqueue(session, "test.nothing", {"a": 2})
    [job] = await fetch_jobs(db)
    assert (job.kind, job.payload, job.status, job.attempts) == ("test.nothing", {"a": 2}, "queued", 0)


async def test_several_workers_run_every_job_exactly_once(
    db: AsyncSession, database_url: str, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    kinds = Registry()
    ran: list[uuid.UUID] = []

    async def count(ctx: JobContext) -> None:
        ran.append(ctx.job_id)
        await asyncio.sleep(0)  # let the other workers claim meanwhile

    kinds.register("test.count", count)
    ids = await _enqueue(sessions, kinds, "test.count", 40)
    # Four workers, each with its own engine and connections (as separate processes would have).
    engines = [make_engine(database_url) for _ in range(4)]
    try:
        workers = [
            Worker(
                make_sessionmaker(e), job_settings, kinds=kinds, concurrency=3, name=f"w{i}", schedules=False
            )
            for i, e in enumerate(engines)
        ]
        counts = await asyncio.gather(*(w.run_until_idle() for w in workers))
    finally:
        for engine in engines:
            await engine.dispose()

    assert sorted(ran) == sorted(ids)  # every job ran, none twice
    assert sum(counts) == 40
    jobs = await fetch_jobs(db)
    assert {j.status for j in jobs} == {"done"}
    assert {j.attempts for j in jobs} == {1}
    assert all(j.locked_by is None and j.finished_at is not None for j in jobs)


async def test_a_dead_workers_job_is_handed_back_once_its_lease_expires(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings, clock: Clock
) -> None:
    kinds = Registry()
    runs: list[int] = []

    async def work(ctx: JobContext) -> None:
        runs.append(ctx.attempt)

    kinds.register("test.work", work)
    await _enqueue(sessions, kinds, "test.work", run_at=clock.now)
    dead = Worker(sessions, job_settings, kinds=kinds, name="dead", clock=clock, schedules=False)
    [claimed] = await dead.claim(1)  # ... and the process is killed before the handler ran
    assert (claimed.status, claimed.locked_by) == ("running", "dead")

    alive = Worker(sessions, job_settings, kinds=kinds, name="alive", clock=clock, schedules=False)
    assert await alive.run_until_idle() == 0  # the lease still holds: nobody else may run it
    clock.advance(seconds=job_settings.jobs_lease_seconds + 1)
    assert await alive.run_until_idle() == 1

    assert runs == [2]
    [job] = await fetch_jobs(db)
    assert (job.status, job.attempts, job.locked_by) == ("done", 2, None)
    assert job.last_error == queue.LEASE_LOST
    # The dead worker, were it to come back, can no longer touch the job.
    async with sessions() as session, session.begin():
        assert not await queue.finish(session, job.id, "dead", now=clock())
        assert not await queue.renew(session, job.id, "dead", until=clock())


async def test_failures_are_retried_with_backoff_then_the_job_is_dead(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings, clock: Clock
) -> None:
    kinds = Registry()
    given_up: list[str] = []

    async def broken(ctx: JobContext) -> None:
        raise RuntimeError("upstream said no; password=hunter2 at postgresql://cockpit:s3cret@db/x")

    async def on_dead(ctx: JobContext, error: str) -> None:
        given_up.append(error)

    kinds.register("test.broken", broken, max_attempts=3, on_dead=on_dead)
    await _enqueue(sessions, kinds, "test.broken", run_at=clock.now)
    worker = Worker(sessions, job_settings, kinds=kinds, clock=clock, schedules=False)
    base = timedelta(seconds=job_settings.jobs_retry_seconds)

    assert await worker.run_once() == 1
    [job] = await fetch_jobs(db)
    assert (job.status, job.attempts, job.run_at) == ("failed", 1, clock.now + base)
    assert job.last_error is not None
    assert job.last_error.startswith("RuntimeError: upstream said no")
    assert "hunter2" not in job.last_error
    assert "s3cret" not in job.last_error

    assert await worker.run_once() == 0  # not before its time
    clock.advance(seconds=base.total_seconds())
    assert await worker.run_once() == 1
    [job] = await fetch_jobs(db)
    assert (job.status, job.attempts, job.run_at) == ("failed", 2, clock.now + 2 * base)  # doubled

    clock.advance(seconds=2 * base.total_seconds())
    assert await worker.run_once() == 1
    [job] = await fetch_jobs(db)
    assert (job.status, job.attempts, job.finished_at) == ("dead", 3, clock.now)
    assert len(given_up) == 1
    assert "hunter2" not in given_up[0]
    clock.advance(days=1)
    assert await worker.run_once() == 0  # a dead job stays dead


async def test_a_permanent_error_kills_the_job_at_once(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    kinds = Registry()

    async def hopeless(ctx: JobContext) -> None:
        raise PermanentJobError("the thing it works on is gone")

    kinds.register("test.hopeless", hopeless, max_attempts=5)
    await _enqueue(sessions, kinds, "test.hopeless")
    await Worker(sessions, job_settings, kinds=kinds, schedules=False).run_until_idle()
    [job] = await fetch_jobs(db)
    assert (job.status, job.attempts) == ("dead", 1)
    assert job.last_error == "PermanentJobError: the thing it works on is gone"


async def test_a_periodic_job_is_enqueued_once_per_period_however_many_workers_try(
    db: AsyncSession, database_url: str, job_settings: Settings, clock: Clock
) -> None:
    kinds = Registry()
    kinds.register("test.tick", _noop)
    kinds.every("test.tick", lambda _s: timedelta(hours=1))
    engines = [make_engine(database_url) for _ in range(3)]
    try:
        workers = [Worker(make_sessionmaker(e), job_settings, kinds=kinds, clock=clock) for e in engines]
        await asyncio.gather(*(w.enqueue_schedules() for w in workers))
        await asyncio.gather(*(w.enqueue_schedules() for w in workers))
        assert len(await fetch_jobs(db)) == 1
        clock.advance(hours=1)
        await asyncio.gather(*(w.enqueue_schedules() for w in workers))
        # A worker that starts later (no memory of what was enqueued) does not add another.
        late = Worker(make_sessionmaker(engines[0]), job_settings, kinds=kinds, clock=clock)
        await late.enqueue_schedules()
    finally:
        for engine in engines:
            await engine.dispose()
    jobs = await fetch_jobs(db)
    assert len(jobs) == 2
    assert len({j.dedupe_key for j in jobs}) == 2
    assert all(j.kind == "test.tick" and j.account_id is None for j in jobs)


async def test_an_idempotency_key_makes_a_second_enqueue_a_no_op(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        first = await service.enqueue(session, "test.once", {"v": 1}, dedupe_key="once:1")
    async with sessions() as session, session.begin():
        again = await service.enqueue(session, "test.once", {"v": 2}, dedupe_key="once:1")
    assert again.id == first.id
    [job] = await fetch_jobs(db)
    assert job.payload == {"v": 1}


async def test_a_stopping_worker_gives_its_unfinished_job_back(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    kinds = Registry()
    started = asyncio.Event()

    async def endless(ctx: JobContext) -> None:
        started.set()
        await asyncio.Event().wait()

    kinds.register("test.endless", endless)
    await _enqueue(sessions, kinds, "test.endless")
    stop = asyncio.Event()
    settings = job_settings.model_copy(update={"jobs_grace_seconds": 0.0})
    task = asyncio.create_task(Worker(sessions, settings, kinds=kinds, schedules=False).run(stop))
    await asyncio.wait_for(started.wait(), timeout=30)
    stop.set()
    await asyncio.wait_for(task, timeout=30)

    [job] = await fetch_jobs(db)
    assert (job.status, job.attempts, job.locked_by) == ("queued", 0, None)  # the attempt did not count


async def test_the_worker_loop_survives_a_failed_pass(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    job_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kinds = Registry()
    done = asyncio.Event()

    async def work(ctx: JobContext) -> None:
        done.set()

    kinds.register("test.work", work)
    await _enqueue(sessions, kinds, "test.work")
    calls = 0

    def flaky() -> AsyncSession:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database unreachable")
        return sessions()

    stop = asyncio.Event()
    task = asyncio.create_task(Worker(flaky, job_settings, kinds=kinds, schedules=False).run(stop))  # type: ignore[arg-type]
    await asyncio.wait_for(done.wait(), timeout=30)
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert "job queue pass failed" in caplog.text
    assert "database unreachable" in caplog.text
    [job] = await fetch_jobs(db)
    assert job.status == "done"


async def _noop(ctx: JobContext) -> None:
    return None


async def test_an_accounts_jobs_are_listed_inspected_and_retried_only_by_that_account(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    mine, owner = await make_account(db, name="Mine")
    theirs, _ = await make_account(db, name="Theirs")
    await db.commit()
    async with sessions() as session, session.begin():
        job = await service.enqueue(session, "test.tenant", {}, account_id=mine.id)
        other = await service.enqueue(session, "test.tenant", {}, account_id=theirs.id)
        system = await service.enqueue(session, "test.system", {})
        for row in (job, other):
            row.status = JobStatus.dead.value
    actor = Actor.for_user(owner)
    async with sessions() as session, session.begin():
        assert [j.id for j in await service.list_jobs(session, actor)] == [job.id]
        for hidden in (other.id, system.id):
            with pytest.raises(NotFound):
                await service.access_job(session, actor, hidden)
            with pytest.raises(NotFound):
                await service.retry_job(session, actor, hidden)
        retried = await service.retry_job(session, actor, job.id)
        assert (retried.status, retried.attempts) == ("queued", 0)

    jobs = {j.id: j for j in await fetch_jobs(db)}
    assert jobs[job.id].status == "queued"
    assert jobs[other.id].status == "dead"
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "job.retried"))
    assert entry is not None
    assert (entry.account_id, entry.target_id, entry.before) == (
        mine.id,
        str(job.id),
        {"status": "dead", "attempts": 0},
    )


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [queue.backoff(n, 10).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert queue.backoff(30, 10) == timedelta(hours=1)


def test_errors_are_scrubbed_and_bounded() -> None:
    text = queue.scrub_error(ValueError("Bearer abc.def token=xyz sk-abcdefghijklmnop " + "x" * 5000))
    assert "abc.def" not in text
    assert "xyz" not in text
    assert "sk-abcdefghijklmnop" not in text
    assert len(text) == queue.MAX_ERROR
    assert isinstance(Job.__table__.c.last_error.type.length, int)  # type: ignore[attr-defined]


class _GatedSessions:
    """Sessions whose next one, once armed, waits at a gate before it opens (a slow database)."""

    def __init__(self, inner: async_sessionmaker[AsyncSession]) -> None:
        self.inner, self.armed = inner, False
        self.at_gate, self.gate = asyncio.Event(), asyncio.Event()

    def __call__(self) -> Any:
        if not self.armed:
            return self.inner()
        self.armed = False
        return _Gated(self, self.inner())


class _Gated:
    def __init__(self, owner: _GatedSessions, session: AsyncSession) -> None:
        self.owner, self.session = owner, session

    async def __aenter__(self) -> AsyncSession:
        self.owner.at_gate.set()
        await self.owner.gate.wait()
        return await self.session.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        await self.session.__aexit__(*exc)


async def test_a_job_that_finished_while_its_worker_stops_is_recorded_as_done(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    gated = _GatedSessions(sessions)
    kinds = Registry()

    async def quick(ctx: JobContext) -> None:
        gated.armed = True  # the worker's next session is the one that marks the job done

    kinds.register("test.quick", quick)
    await _enqueue(sessions, kinds, "test.quick")
    settings = job_settings.model_copy(update={"jobs_grace_seconds": 0.0, "jobs_poll_seconds": 3600.0})
    stop = asyncio.Event()
    worker = Worker(gated, settings, kinds=kinds, schedules=False)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(gated.at_gate.wait(), timeout=30)
    stop.set()  # no grace: the job's task is cancelled while it records the outcome
    for _ in range(100):  # let the stop reach the job's task
        await asyncio.sleep(0)
    gated.gate.set()
    await asyncio.wait_for(task, timeout=30)

    [job] = await fetch_jobs(db)
    assert (job.status, job.attempts, job.locked_by) == ("done", 1, None)
