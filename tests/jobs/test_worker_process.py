"""A real ``cockpit worker`` is killed with SIGKILL in the middle of a job; another one finishes it
(on a SQLite file and on PostgreSQL: the ``database_url`` fixture runs this on both)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.jobs import service
from cockpit.jobs.models import Job
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


async def _start_worker(database_url: str, data_dir: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}
    env.update(
        COCKPIT_DATABASE_URL=database_url,
        COCKPIT_DATA_DIR=str(data_dir),
        COCKPIT_SECRET_KEY=TEST_SECRET,
        COCKPIT_ENV="test",
        COCKPIT_JOBS_LEASE_SECONDS="2",  # a dead worker's job is handed back 2 s after its last renewal
        COCKPIT_JOBS_POLL_SECONDS="0.1",
    )
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.jobs.worker_with_test_jobs", "worker", "--concurrency", "2",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _until(condition: object, what: str, process: asyncio.subprocess.Process | None = None) -> None:
    """Poll until ``condition()`` holds; the deadline only bounds a hang."""
    for _ in range(1200):
        if await condition():  # type: ignore[operator]
            return
        if process is not None and process.returncode is not None:
            _, err = await process.communicate()
            raise AssertionError(f"the worker exited while waiting for {what}: {err.decode()}")
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

    first = await _start_worker(database_url, tmp_path)
    second: asyncio.subprocess.Process | None = None
    try:

        async def started_by_first() -> bool:
            return (work / f"started-{first.pid}").exists()

        await _until(started_by_first, "the first worker to start the job", first)
        first.kill()  # SIGKILL: no clean-up, no give-back
        await first.wait()
        await db.rollback()
        row = await db.get(Job, job_id, populate_existing=True)
        assert row is not None
        assert row.status == "running"
        assert row.locked_by is not None
        assert f":{first.pid}:" in row.locked_by

        second = await _start_worker(database_url, tmp_path)
        (work / "release").touch()

        async def finished() -> bool:
            await db.rollback()
            row = await db.get(Job, job_id, populate_existing=True)
            return row is not None and row.status == "done"

        await _until(finished, "the second worker to finish the job", second)
        second.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(second.communicate(), timeout=60)
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.communicate()

    assert second.returncode == 0, err.decode()
    assert "cockpit worker stopped" in err.decode()
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}
    env.update(
        COCKPIT_DATABASE_URL=database_url, COCKPIT_DATA_DIR=str(tmp_path), COCKPIT_SECRET_KEY=TEST_SECRET,
        COCKPIT_ENV="test",
    )  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.jobs.worker_with_test_jobs", "worker", "--once",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=120)

    assert process.returncode == 0, err.decode()
    # The test job and the periodic jobs of the current periods (roll-over, retention, purges).
    ran = re.search(r"cockpit worker: ran (\d+) job\(s\)", err.decode())
    assert ran is not None, err.decode()
    assert int(ran.group(1)) >= 5
    assert (work / f"finished-{process.pid}").exists()
    await db.rollback()
    row = await db.get(Job, job_id, populate_existing=True)
    assert row is not None
    assert row.status == "done"
