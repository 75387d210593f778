"""``cockpit worker`` with one more job kind, for the tests that kill a worker in the middle of a job.

``test.blocking`` writes ``started-<pid>`` into the payload's directory, waits until a ``release``
file appears there, then writes ``finished-<pid>``. Run as ``python -m tests.jobs.worker_with_test_jobs
worker [options]`` from the repository's root.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from cockpit import cli
from cockpit.jobs.registry import JobContext, registry


async def blocking(ctx: JobContext) -> None:
    directory = Path(str(ctx.payload["dir"]))
    (directory / f"started-{os.getpid()}").write_text(str(ctx.attempt))
    # The test (another process) creates the file: no in-process event can tell.
    while not (directory / "release").exists():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    (directory / f"finished-{os.getpid()}").write_text(str(ctx.attempt))


registry.register("test.blocking", blocking, max_attempts=3)

if __name__ == "__main__":
    sys.argv[0] = "cockpit"
    cli.main()
