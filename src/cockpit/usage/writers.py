"""Where the usage recorder's batches are written: a process of their own (the default), or a thread.

Writing a batch is Python work (the rows' values, the usage debits, SQLAlchemy's statements): about
25 to 40 ms of CPU for a few hundred calls, four times a second under load. In a thread of the gateway's
process, that work holds the interpreter lock against the event loop that serves the calls; in a
process of its own it only shares the machine's cores (docs/usage-recording.md, docs/benchmarks.md).

The writer process (``python -m cockpit.usage.writers``) is started by the recorder when it first
has records, reads batches on its standard input (journal lines, framed by their length) and answers
each with one JSON line: written, or why not. It stops when its input closes — the gateway stopped,
or was killed — and ignores SIGINT and SIGTERM meanwhile, so that the gateway's own shutdown can
still hand it the last batch. If it dies, the batch it had stays in the journal and is retried; a
writer that keeps dying is replaced by a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from typing import Any, TypeVar

from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.loop_thread import LoopThread

log = logging.getLogger("cockpit.usage")
T = TypeVar("T")
URL_VARIABLE = "COCKPIT_USAGE_WRITER_URL"  # the database URL: in the environment, not on a command line
_HEADER = 8  # a frame's length, big-endian
# A writer that dies this many times within RESTARTS_WINDOW seconds is replaced by a thread.
MAX_RESTARTS = 3
RESTARTS_WINDOW = 60.0


class WriterUnavailable(ConnectionError):
    """The batch was not written for a reason that is not the records' (the writer or the database
    is unavailable just now): every record waits for the next round."""


class BatchRefused(Exception):
    """Something about the batch's records made the writer refuse it: they are written one by one
    (and the one that cannot be, set aside)."""


class WriterThread(LoopThread):
    """An event loop in a thread of its own, with its own engine, where batches are written."""

    name = "cockpit-usage-writer"


class WriterProcess:
    """The gateway's side of the writer process."""

    command: tuple[str, ...] = (sys.executable, "-m", "cockpit.usage.writers")
    # A batch not answered within this long (the database hangs) is taken back: the process is
    # stopped (its transaction rolls back) and the records wait for the next round.
    answer_seconds = 120.0

    def __init__(self, url: str) -> None:
        self.url = url
        self._process: asyncio.subprocess.Process | None = None
        self._deaths: list[float] = []
        self.given_up = False  # it kept dying: the recorder writes from a thread instead

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def _ensure(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        self._process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, URL_VARIABLE: self.url},
        )
        return self._process

    async def write(self, lines: list[bytes]) -> None:
        """Write one batch (its journal lines); raises WriterUnavailable or BatchRefused."""
        process = await self._ensure()
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(sum(map(len, lines)).to_bytes(_HEADER, "big"))
            process.stdin.writelines(lines)
            await process.stdin.drain()
            answer = await asyncio.wait_for(process.stdout.readline(), self.answer_seconds)
            reply = json.loads(answer) if answer else None
            if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
                raise ConnectionError("the usage writer process gave no answer")
        except BaseException as exc:
            # Whatever it may still answer would be taken for the next batch's answer: it goes.
            self._died()
            if isinstance(exc, OSError | TimeoutError | ValueError):
                raise WriterUnavailable(f"the usage writer process failed ({type(exc).__name__})") from exc
            raise
        if reply["ok"]:
            return
        if reply.get("unavailable"):
            raise WriterUnavailable(str(reply.get("error")))
        raise BatchRefused(str(reply.get("error")))

    def _died(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < RESTARTS_WINDOW] + [now]
        log.error("the usage writer process stopped (%d time(s) in the last minute)", len(self._deaths))
        if len(self._deaths) >= MAX_RESTARTS:
            self.given_up = True
            log.error("usage records are written from a thread of the gateway's process from now on")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        process.stdin.close()  # its input ends: it exits (nothing of ours is in flight by now)
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


# ---- the writer process itself ----


async def _serve(reader: asyncio.StreamReader, out: Any) -> None:
    from cockpit.usage.recorder import BatchWriter, unavailable

    engine = make_engine(os.environ[URL_VARIABLE])
    sessionmaker = make_sessionmaker(engine)
    writer = BatchWriter()
    watchdog = asyncio.create_task(_exit_without_parent(os.getppid()))
    try:
        while True:
            try:
                header = await reader.readexactly(_HEADER)
                payload = await reader.readexactly(int.from_bytes(header, "big"))
            except asyncio.IncompleteReadError:
                return  # the gateway closed our input: it stopped
            try:
                batch = [json.loads(line) for line in payload.splitlines() if line]
                await writer.write(sessionmaker, batch)
                reply: dict[str, Any] = {"ok": True}
            except Exception as exc:
                reply = {"ok": False, "unavailable": unavailable(exc), "error": type(exc).__name__}
                log.warning("usage batch not written (%s)", type(exc).__name__)
            try:
                out.write(json.dumps(reply).encode() + b"\n")
                out.flush()
            except BrokenPipeError:
                return  # the gateway is gone (killed): what it gave us is in its journal
    finally:
        watchdog.cancel()
        await engine.dispose()


async def _exit_without_parent(parent: int) -> None:
    """The gateway died (killed) while a batch hangs on the database: nobody waits for it, and its
    records are in the gateway's journal, replayed at the next start. Leave at once."""
    while True:
        await asyncio.sleep(1)
        if os.getppid() != parent:
            os._exit(0)


def main() -> None:
    # The gateway decides when this process stops (it closes our input): a Ctrl-C in a terminal or a
    # SIGTERM sent to the whole group must not cut the gateway's last batch short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s cockpit-usage-writer: %(message)s")
    # Answers go to a private copy of standard output; anything else printed goes to standard error.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)

    async def run() -> None:
        reader = asyncio.StreamReader(limit=2**20)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
        await _serve(reader, out)

    asyncio.run(run())


if __name__ == "__main__":
    main()
