"""A real ``cockpit worker`` is killed with SIGKILL in the middle of a job; another one finishes it
(on a SQLite file and on PostgreSQL: the ``database_url`` fixture runs this on both)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.jobs import service
from cockpit.jobs.models import Job
from tests import launcher
from tests.conftest import TEST_SECRET
from tests.launcher import Launched

ROOT = Path(__file__).resolve().parents[2]


def _env(database_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}
    env.update(
        COCKPIT_DATABASE_URL=database_url, COCKPIT_DATA_DIR=str(data_dir), COCKPIT_SECRET_KEY=TEST_SECRET,
        COCKPIT_ENV="test", **settings,
    )  # fmt: skip
    return env


def _start_worker(database_url: str, data_dir: Path) -> Launched:
    """``python -m tests.jobs.worker_with_test_jobs worker --concurrency 2`` (its output in
    ``data_dir/worker-<n>.out`` and ``.err``)."""
    env = _env(
        database_url, data_dir,
        COCKPIT_JOBS_LEASE_SECONDS="2",  # a dead worker's job is handed back 2 s after its last renewal
        COCKPIT_JOBS_POLL_SECONDS="0.1",
    )  # fmt: skip
    name = f"worker-{len(list(data_dir.glob('worker-*.out')))}"
    return launcher.start(
        ["worker", "--concurrency", "2"], module="tests.jobs.worker_with_test_jobs", env=env, cwd=ROOT,
        output=data_dir / f"{name}.out", errors=data_dir / f"{name}.err",
    )  # fmt: skip


def _stderr(process: Launched) -> str:
    return process.errors.read_text()


async def _until(condition: object, what: str, process: Launched | None = None) -> None:
    """Poll until ``condition()`` holds; the deadline only bounds a hang."""
    for _ in range(1200):
        if await condition():  # type: ignore[operator]
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the worker exited while waiting for {what}: {_stderr(process)}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_job_whose_worker_was_killed_is_finished_by_another_worker(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    job = await service.enqueue(db, "test.blocking", {"dir": str(work)}, max_attempts=3)
    job_id = job.id
    await db.commit()

    first = _start_worker(database_url, tmp_path)
    second: Launched | None = None
    try:

        async def started_by_first() -> bool:
            return (work / f"started-{first.pid}").exists()

        await _until(started_by_first, "the first worker to start the job", first)
        first.kill()  # SIGKILL: no clean-up, no give-back
        await asyncio.wait_for(first.exited(), timeout=60)
        await db.rollback()
        row = await db.get(Job, job_id, populate_existing=True)
        assert row is not None
        assert row.status == "running"
        assert row.locked_by is not None
        assert f":{first.pid}:" in row.locked_by

        second = _start_worker(database_url, tmp_path)
        (work / "release").touch()

        async def finished() -> bool:
            await db.rollback()
            row = await db.get(Job, job_id, populate_existing=True)
            return row is not None and row.status == "done"

        await _until(finished, "the second worker to finish the job", second)
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.exited(), timeout=60)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                await asyncio.wait_for(process.exited(), timeout=60)

    err = _stderr(second)
    assert second.returncode == 0, err
    assert "cockpit worker stopped" in err
    assert (work / f"finished-{second.pid}").read_text() == "2"  # its second attempt
    assert not (work / f"finished-{first.pid}").exists()
    await db.rollback()
    row = await db.get(Job, job_id, populate_existing=True)
    assert row is not None
    assert (row.status, row.attempts, row.locked_by) == ("done", 2, None)


async def test_cockpit_worker_once_runs_what_is_due_and_exits(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "release").touch()  # the job does not wait
    job = await service.enqueue(db, "test.blocking", {"dir": str(work)})
    job_id = job.id
    await db.commit()
    process = launcher.start(
        ["worker", "--once"], module="tests.jobs.worker_with_test_jobs", env=_env(database_url, tmp_path),
        cwd=ROOT, output=tmp_path / "worker.out", errors=tmp_path / "worker.err",
    )  # fmt: skip
    await asyncio.wait_for(process.exited(), timeout=120)
    err = _stderr(process)

    assert process.returncode == 0, err
    # The test job and the periodic jobs of the current periods (roll-over, retention, purges).
    ran = re.search(r"cockpit worker: ran (\d+) job\(s\)", err)
    assert ran is not None, err
    assert int(ran.group(1)) >= 5
    assert (work / f"finished-{process.pid}").exists()
    await db.rollback()
    row = await db.get(Job, job_id, populate_existing=True)
    assert row is not None
    assert row.status == "done"
