"""``cockpit serve`` runs its job worker in a process of its own (jobs/embedded.py): the jobs run
there, not in the server; a worker that dies is started again; it stops with the server, whether
the server stops (SIGTERM) or is killed (SIGKILL). On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.app import create_app
from cockpit.config import Settings
from cockpit.jobs import embedded
from cockpit.jobs.embedded import settings_from_line, settings_line
from cockpit.jobs.models import JobRun
from tests import launcher
from tests.conftest import TEST_SECRET, make_settings


def test_the_settings_reach_the_worker_whole_secrets_included(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        database_url, tmp_path, smtp_password="s3cret-pass", jobs_concurrency=7, credits_scheduler_seconds=0.5
    )
    line = settings_line(settings)

    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    again = settings_from_line(line)
    assert again == settings
    assert isinstance(again.smtp_password, SecretStr)
    assert again.smtp_password.get_secret_value() == "s3cret-pass"
    assert again.resolved_secret_key() == settings.resolved_secret_key()
    with pytest.raises(ValueError, match="not an object"):
        settings_from_line(b"[1, 2]\n")
    with pytest.raises(ValueError, match="Expecting value"):  # the server died before writing them
        settings_from_line(b"")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _parent_of(pid: int) -> int | None:
    """The parent of a running process (None once it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[1])


async def _serve(database_url: str, data_dir: Path) -> tuple[launcher.Launched, str]:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}
    env.update(
        COCKPIT_DATABASE_URL=database_url, COCKPIT_DATA_DIR=str(data_dir), COCKPIT_SECRET_KEY=TEST_SECRET,
        COCKPIT_ENV="test", COCKPIT_BASE_URL=base_url,
        # A credit roll-over job every 0.2 s, looked for every 0.1 s: the worker's runs show who ran them.
        COCKPIT_CREDITS_SCHEDULER_SECONDS="0.2", COCKPIT_JOBS_POLL_SECONDS="0.1",
    )  # fmt: skip
    process = launcher.start(
        ["serve", "--port", str(port)],
        env=env,
        output=data_dir / "server.out",
        errors=data_dir / "server.err",
    )
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            assert process.poll() is None, process.errors.read_text()
            try:
                if (await http.get(f"{base_url}/healthz", timeout=1)).status_code == 200:
                    return process, base_url
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"cockpit serve did not start: {process.errors.read_text()}")


async def _worker_running_jobs(db: AsyncSession, server: launcher.Launched, *, not_pid: int = 0) -> int:
    """The pid of the worker that ran the latest job: a child of the server (not ``not_pid``)."""
    for _ in range(600):
        await db.commit()  # a fresh read
        names = (await db.scalars(select(JobRun.worker).where(JobRun.worker.is_not(None)))).all()
        pids = {int(str(name).split(":")[1]) for name in names} - {not_pid}
        for pid in pids:
            assert pid != server.pid, "a job ran in the server's own process"
            if _parent_of(pid) == server.pid:
                return pid
        assert server.poll() is None, server.errors.read_text()
        await asyncio.sleep(0.05)
    raise AssertionError(f"no job ran in a worker process of the server: {server.errors.read_text()}")


async def _killed(server: launcher.Launched) -> None:
    """After a test: the server killed if it still runs."""
    if server.poll() is None:
        server.kill()
        await asyncio.wait_for(server.exited(), timeout=15)


async def _gone(pid: int) -> bool:
    for _ in range(400):
        if _parent_of(pid) is None:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_the_servers_jobs_run_in_its_worker_process_restarted_and_stopped_with_it(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    server, _ = await _serve(database_url, tmp_path)
    try:
        child = await _worker_running_jobs(db, server)

        # The worker dies: the server starts another, which runs the next jobs.
        os.kill(child, signal.SIGKILL)
        assert await _gone(child)
        second = await _worker_running_jobs(db, server, not_pid=child)
        assert second != child

        # The server stops: so does its worker, cleanly (its input closed).
        server.terminate()
        # (uvicorn ends by raising the signal it stopped on again, hence the code)
        assert await asyncio.wait_for(server.exited(), timeout=40) == -signal.SIGTERM
        assert await _gone(second)
    finally:
        await _killed(server)
    log = server.errors.read_text()
    assert "the job worker process exited (code -9); starting another in 1 s" in log
    assert log.count("stops with the server") == 2
    assert log.count("cockpit worker stopped") == 1  # the second worker's clean stop
    assert "Application shutdown complete" in log
    assert "Traceback" not in log


async def test_a_killed_server_leaves_no_worker_behind(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    server, _ = await _serve(database_url, tmp_path)
    try:
        child = await _worker_running_jobs(db, server)
        server.kill()
        await asyncio.wait_for(server.exited(), timeout=15)
        # Its input closed with the server: it lets its jobs finish and exits.
        assert await _gone(child), "the worker outlived its server"
    finally:
        await _killed(server)
    assert "cockpit worker stopped" in server.errors.read_text()


async def test_with_server_jobs_on_the_loop_the_jobs_run_in_the_servers_process(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url, tmp_path, server_jobs="loop", credits_scheduler_seconds=0.2, jobs_poll_seconds=0.1
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        assert application.state.jobs_process is None
        for _ in range(600):
            await db.commit()
            names = (await db.scalars(select(JobRun.worker).where(JobRun.worker.is_not(None)))).all()
            if names:
                break
            await asyncio.sleep(0.05)
    assert names
    assert {int(str(name).split(":")[1]) for name in names} == {os.getpid()}
    with pytest.raises(ValueError, match="server_jobs"):
        Settings(server_jobs="thread")  # type: ignore[arg-type]


async def test_a_worker_that_keeps_dying_or_cannot_start_is_tried_again_and_the_server_still_stops(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(embedded, "FIRST_PAUSE", 0.05)
    settings = make_settings(database_url, tmp_path)
    dying = embedded.JobsProcess(settings)
    dying.command = (sys.executable, "-c", "import sys; sys.stdin.readline(); sys.exit(3)")
    await dying.start()
    for _ in range(200):
        if dying.starts >= 3:
            break
        await asyncio.sleep(0.05)
    await asyncio.wait_for(dying.stop(), 10)
    assert dying.starts >= 3  # started again after each death, the pause doubling
    assert "the job worker process exited (code 3); starting another in 0.05 s" in caplog.text
    assert "starting another in 0.1 s" in caplog.text

    missing = embedded.JobsProcess(settings)
    missing.command = (str(tmp_path / "no-such-interpreter"),)
    await missing.start()  # logged, not raised: the server serves without its worker meanwhile
    await asyncio.sleep(0.2)
    assert missing.starts == 0
    assert missing.pid is None
    await asyncio.wait_for(missing.stop(), 10)
    assert "the job worker process could not be started" in caplog.text
