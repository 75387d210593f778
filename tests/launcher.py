"""``cockpit`` commands in processes of their own, without paying Python's start-up and imports each time.

``python -m cockpit serve`` spends ~2 s of CPU importing its libraries before it serves (several
seconds of wall time on a busy machine), and the tests start a couple dozen servers and workers.
A launcher process, one per test process, imports Cockpit once; for each command it forks a child
that takes the command's environment, working directory and output files and runs the module as
``python -m <module> <args>`` would (``runpy``, as ``-m`` does). Each command is a process of its
own (its own pid, signalled and killed alone); only its start skips the imports. The launcher does
nothing but import before it forks: no settings read, no event loop, no thread. When the test
process goes away, the launcher stops what it started (no server is left behind).

``start()`` returns a ``Launched``: the part of ``subprocess.Popen`` the tests use (``pid``,
``poll``, ``wait``, ``terminate``, ``kill``, ``returncode``, negative for a signal, as Popen's).
Run as ``python -m tests.launcher``, this module is the launcher: one JSON request per line on
stdin, one answer per line on stdout.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent


class Launched:
    def __init__(self, launcher: _Launcher, pid: int, args: list[str], output: Path, errors: Path) -> None:
        self._launcher, self.pid, self.args = launcher, pid, args
        self.output, self.errors = output, errors  # the files its stdout and stderr go to
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._launcher.poll(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.02)
        return code

    async def exited(self) -> int:
        """``wait`` for asyncio code (bound it with ``asyncio.wait_for``): the exit code."""
        # Another process (the launcher) reaps it: no in-process event can tell.
        while (code := self.poll()) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        # Only while it has not been reaped (poll is what reaps it): the pid is still this process's.
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Launcher:
    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.launcher"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._lock = threading.Lock()

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None
        assert stdout is not None
        with self._lock:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
            line = stdout.readline()
        if not line:
            raise RuntimeError(f"the launcher exited ({self._process.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def poll(self, pid: int) -> int | None:
        code = self.ask({"op": "poll", "pid": pid})["returncode"]
        return None if code is None else int(code)

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()  # the launcher ends at the end of its input
        self._process.wait(timeout=30)


_LAUNCHER: _Launcher | None = None


def start(
    args: list[str],
    *,
    env: dict[str, str],
    output: Path,
    errors: Path | None = None,
    module: str = "cockpit",
    cwd: Path | None = None,
) -> Launched:
    """``python -m <module> *args`` with ``env`` (the whole environment) in ``cwd``: its stdout
    appended to ``output``, its stderr to ``errors`` (by default to ``output`` too)."""
    global _LAUNCHER
    if _LAUNCHER is None:
        _LAUNCHER = _Launcher()
        atexit.register(_LAUNCHER.close)
    request = {
        "op": "start", "module": module, "args": args, "env": env, "cwd": str(cwd or Path.cwd()),
        "stdout": str(output), "stderr": str(errors or output),
    }  # fmt: skip
    pid = int(_LAUNCHER.ask(request)["pid"])
    return Launched(_LAUNCHER, pid, [module, *args], output, errors or output)


# ---- the launcher process ----


def _child(request: dict[str, Any]) -> int:
    """In the forked child: become ``python -m <module> <args>`` and run it."""
    from cockpit.config import get_settings

    def opened(path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    nothing, out = os.open(os.devnull, os.O_RDONLY), opened(request["stdout"])
    err = out if request["stderr"] == request["stdout"] else opened(request["stderr"])
    for fd, target in ((nothing, 0), (out, 1), (err, 2)):  # the launcher's pipes are not the child's
        os.dup2(fd, target)
    for fd in {nothing, out, err}:
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    get_settings.cache_clear()  # (never read by the launcher; the child's environment is another)
    sys.argv = [request["module"], *request["args"]]  # run_module puts the module's file first
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _serve_requests(requests: IO[bytes], answers: IO[bytes]) -> None:
    running: set[int] = set()
    try:
        _answer(requests, answers, running)
    finally:
        _stop(running)


def _answer(requests: IO[bytes], answers: IO[bytes], running: set[int]) -> None:
    for line in requests:
        request = json.loads(line)
        if request["op"] == "start":
            pid = os.fork()
            if pid == 0:
                code = 70
                try:
                    code = _child(request)
                finally:
                    os._exit(code)
            running.add(pid)
            answer: dict[str, Any] = {"pid": pid}
        else:
            reaped, status = os.waitpid(request["pid"], os.WNOHANG)
            if reaped:
                running.discard(reaped)
            answer = {"returncode": None if reaped == 0 else os.waitstatus_to_exitcode(status)}
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()


def _stop(running: set[int]) -> None:
    """The test process is gone (or done) with commands still running: stop them rather than leave
    servers behind (SIGTERM, then SIGKILL after a grace period)."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while running and time.monotonic() < deadline:
            for pid in list(running):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    running.discard(pid)
            time.sleep(0.05)


def _import_everything() -> None:
    """What every command imports (Cockpit, its server and what the server loads as it starts):
    imported here once, this is what each child is spared."""
    import importlib

    for module in (
        "cockpit.cli", "cockpit.app", "cockpit.tasks", "uvicorn.config", "uvicorn.server", "uvicorn.main",
        "uvicorn.loops.uvloop", "uvicorn.protocols.http.httptools_impl", "uvicorn.lifespan.on",
    ):  # fmt: skip
        importlib.import_module(module)


if __name__ == "__main__":
    _import_everything()
    _serve_requests(sys.stdin.buffer, sys.stdout.buffer)
