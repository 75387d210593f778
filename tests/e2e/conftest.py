"""Browser tests: a real ``cockpit serve`` process driven by Chromium through Playwright.

The server runs in a process of its own (started through ``tests.launcher``) against the session's
test database (SQLite or PostgreSQL, as parametrized by ``database_url``); tests arrange data with
the builders through ``db``, which commits, so the server sees it. Every table is emptied after
each test by ``db``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests import launcher
from tests.conftest import TEST_SECRET

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHROMIUM_FOUND = CHROMIUM.exists()
REQUIRE_BROWSER = os.environ.get("COCKPIT_TEST_REQUIRE_BROWSER") == "1"
STARTUP_TIMEOUT = 30.0
HERE = Path(__file__).parent
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Hooks in a sub-directory conftest still see every collected item: mark ours only.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_healthy(process: launcher.Launched, base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"cockpit serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a process that is still starting, not waiting in a test
    pytest.fail(f"cockpit serve did not answer /healthz within {STARTUP_TIMEOUT:.0f}s:\n{log.read_text()}")


@contextlib.contextmanager
def _serve(database_url: str, data_dir: Path, **env: str) -> Iterator[str]:
    """``cockpit serve`` on a free port against ``database_url``; yields its base URL."""
    log = data_dir / "server.log"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "COCKPIT_DATABASE_URL": database_url,
        "COCKPIT_SECRET_KEY": TEST_SECRET,
        "COCKPIT_DATA_DIR": str(data_dir),
        "COCKPIT_ENV": "test",
        "COCKPIT_BASE_URL": base_url,
        **env,
    }
    process = launcher.start(
        ["serve", "--host", "127.0.0.1", "--port", str(port)], env=environment, output=log
    )
    try:
        _wait_until_healthy(process, base_url, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``cockpit serve`` against the test database for the whole session; yields its base URL.

    Without the server's own job worker: it would run the periodic jobs (and claim any job) in the
    database that every other test of this process uses, long after the browser tests are done —
    the job queue tests would see a second worker. ``live_server_with_worker`` has one.
    """
    with _serve(database_url, tmp_path_factory.mktemp("live-data"), COCKPIT_CREDITS_SCHEDULER="false") as url:
        yield url


@pytest.fixture
def live_server_with_worker(database_url: str, tmp_path: Path) -> Iterator[str]:
    """``cockpit serve`` with its job worker (as ``make demo`` runs it), for one test; the worker
    looks for due jobs every 0.1 s (every second by default)."""
    with _serve(database_url, tmp_path, COCKPIT_JOBS_POLL_SECONDS="0.1") as url:
        yield url


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_FOUND:
        reason = f"Chromium not found at {CHROMIUM}: the browser tests need it"
        if REQUIRE_BROWSER:
            pytest.fail(f"{reason} (COCKPIT_TEST_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A fresh browser context per test; on failure a screenshot lands in test-artifacts/."""
    context = await browser.new_context(viewport={"width": 1366, "height": 850})
    tab = await context.new_page()
    try:
        yield tab
    finally:
        reports = request.node.stash.get(_REPORTS, {})
        if any(r.failed for r in reports.values()):
            artifacts = request.config.rootpath / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
            try:
                await tab.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
            except Exception as exc:  # the screenshot is a courtesy; never hide the real failure
                print(f"could not save a failure screenshot: {exc}")
        await context.close()
