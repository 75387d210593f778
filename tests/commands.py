"""Running ``cockpit`` commands in tests: in this process through Click's test runner (in a thread of
their own, as ``asyncio.run`` needs), with the same code, exit codes and output streams as
``python -m cockpit`` but without starting Python and importing Cockpit again for every call (~2 s
each); ``real=True`` starts the real ``python -m cockpit`` (the entry point itself)."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor

from typer.testing import CliRunner

from cockpit import cli as cli_module
from cockpit.config import get_settings


def run(env: dict[str, str], *args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
    if real:
        return subprocess.run(
            [sys.executable, "-m", "cockpit", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_in_process, env, args).result(timeout=120)


def _in_process(env: dict[str, str], args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    # Exactly the subprocess's COCKPIT_* environment: the others are unset while the command runs.
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("COCKPIT_")}
    overrides.update({k: v for k, v in env.items() if k.startswith("COCKPIT_")})
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_module.app, list(args), env=overrides, prog_name="cockpit")
    finally:
        get_settings.cache_clear()
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["cockpit", *args], result.exit_code, result.stdout, stderr)
