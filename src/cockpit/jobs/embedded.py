"""The job worker of a server that runs the queue itself (``COCKPIT_CREDITS_SCHEDULER``, a
single-process deployment such as ``make demo``): a process of its own by default, or a task on the
server's event loop (``COCKPIT_SERVER_JOBS``).

A job is Python work: an export's drawing (seconds of CPU for a large PDF), a CSV import, a rollup's
statements, a webhook's signature. On the server's loop, or in a thread of its process, that work
holds the interpreter lock against the loop that relays the gateway's calls: measured with the worker
on the loop, the gateway served a third fewer calls a second and its added p99 doubled in some runs
(docs/benchmarks.md, "Issue 11: the server's jobs in a process of their own"). In a process of its
own it only shares the machine's cores.

The server starts ``python -m cockpit worker --from-server``, writes its settings to the child's
standard input as one JSON line (secrets included: a pipe, never the command line or the
environment) and keeps that input open. The child is an ordinary queue worker: it stops when its
input closes (the server stopped, or was killed) or on SIGTERM, letting its jobs finish
(``COCKPIT_JOBS_GRACE_SECONDS``); a Ctrl-C in a terminal reaches it too, and is left to the server,
which then closes the input. A child that dies is started again after a pause that doubles from one
second to a minute (a job left unfinished is handed back by its lease, docs/jobs.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from typing import Any

from pydantic import SecretStr

from cockpit.config import Settings

log = logging.getLogger("cockpit.jobs")

FIRST_PAUSE = 1.0
LONGEST_PAUSE = 60.0
# A child that ran at least this long before it died starts again after the first pause.
HEALTHY_SECONDS = 60.0


def settings_line(settings: Settings) -> bytes:
    """``settings`` as one JSON line, secrets in clear (for the child's standard input only)."""
    values: dict[str, Any] = settings.model_dump(mode="json")
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values[name] = value.get_secret_value()
    return json.dumps(values).encode() + b"\n"


def settings_from_line(line: bytes) -> Settings:
    """The settings a server handed its child (``settings_line``)."""
    values = json.loads(line)
    if not isinstance(values, dict):
        raise ValueError("the server's settings are not an object")
    return Settings(**values)


class JobsProcess:
    """The server's side of its job worker process: started with the server, kept running, stopped
    with it."""

    command: tuple[str, ...] = (sys.executable, "-m", "cockpit", "worker", "--from-server")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.starts = 0  # processes started so far (restarts included)
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def start(self) -> None:
        try:
            await self._spawn()
        except OSError:  # the server serves anyway; _keep tries again
            self._process = None
            log.exception("the job worker process could not be started")
        self._task = asyncio.create_task(self._keep(), name="cockpit-jobs-process")

    async def _spawn(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(*self.command, stdin=asyncio.subprocess.PIPE)
        assert process.stdin is not None
        process.stdin.write(settings_line(self.settings))
        with contextlib.suppress(ConnectionError):  # it died at once: _keep sees it exit
            await process.stdin.drain()
        self._process = process
        self.starts += 1
        return process

    async def _keep(self) -> None:
        """Start the worker again whenever it exits while the server runs."""
        pause = FIRST_PAUSE
        while True:
            if self._process is not None:
                started = time.monotonic()
                code = await self._process.wait()
                if self._stopping.is_set():
                    return
                if time.monotonic() - started >= HEALTHY_SECONDS:
                    pause = FIRST_PAUSE
                log.error("the job worker process exited (code %s); starting another in %g s", code, pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
            if self._stopping.is_set():
                return
            pause = min(pause * 2, LONGEST_PAUSE)
            try:
                await self._spawn()
            except OSError:
                self._process = None
                log.exception("the job worker process could not be started")

    async def stop(self) -> None:
        """Close the worker's input (its jobs finish or are handed back) and wait for it to exit."""
        self._stopping.set()
        process = self._process
        if process is not None and process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), self.settings.jobs_grace_seconds + 10)
            except TimeoutError:
                log.error("the job worker process did not stop in time: killed")
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._task is not None:
            await self._task
