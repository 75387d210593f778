"""Test fixtures: every database test runs on SQLite and, when reachable, on PostgreSQL.

The schema is built by the Alembic migrations. Tests commit for real (the same unit of work
as production, so "nothing is written when a request fails" is observable) and every table
is emptied after each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cockpit.app import create_app
from cockpit.config import Environment, Settings
from cockpit.demo import DemoLogin, seed_demo
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.models import metadata
from tests import demo_copy

PG_ADMIN_URL = os.environ.get("COCKPIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("COCKPIT_TEST_REQUIRE_POSTGRES") == "1"
TEST_SECRET = "test-secret-key-not-for-production"


def _postgres_reachable() -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(PG_ADMIN_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=2):
            return True
    except OSError:
        return False


def _backends() -> list[str]:
    wanted = os.environ.get("COCKPIT_TEST_BACKENDS", "sqlite,postgresql").split(",")
    backends = [b for b in wanted if b == "sqlite"]
    if "postgresql" in wanted:
        if _postgres_reachable():
            backends.append("postgresql")
        elif REQUIRE_POSTGRES:
            raise pytest.UsageError(
                f"PostgreSQL is required (COCKPIT_TEST_REQUIRE_POSTGRES=1) but {PG_ADMIN_URL} is unreachable"
            )
    return backends


BACKENDS = _backends()


def _cheap_argon2() -> None:
    """Argon2 at its cheapest parameters for the whole run (a production hash takes a quarter to half
    a second of CPU, and the suite creates thousands of users). A hash is always verified with the
    parameters written in it, so servers started by the tests check these hashes just as cheaply."""
    from argon2 import PasswordHasher

    from cockpit.auth import passwords

    cheap = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    passwords._hasher = cheap
    passwords._DUMMY_HASH = cheap.hash("cockpit-dummy-password-for-timing")


_cheap_argon2()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgresql_only: a test of something only PostgreSQL has (not run on SQLite, not skipped)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``postgresql_only`` test is not collected for SQLite (rather than skipped there)."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec is not None else None
        if backend == "sqlite" and item.get_closest_marker("postgresql_only") is not None:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str:
    note = "" if "postgresql" in BACKENDS else " — PostgreSQL not reachable, running on SQLite alone"
    return f"cockpit database backends: {', '.join(BACKENDS)}{note}"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    # Alembic's env.py runs its own event loop: keep it off pytest's loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


async def _pg_admin(sql: str) -> None:
    import asyncpg

    dsn = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def pg_create_database(name: str) -> None:
    """Create a test database. Its commits do not wait for the WAL to reach the disk
    (``synchronous_commit = off``): what a crash of PostgreSQL itself could lose, no test looks at,
    and every commit of the suite is a disk flush less (visibility and locking are the same)."""
    await _pg_admin(f'CREATE DATABASE "{name}"')
    await _pg_admin(f'ALTER DATABASE "{name}" SET synchronous_commit = off')


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "cockpit.db"
        url = f"sqlite+aiosqlite:///{path}"
        _in_thread(upgrade, url)
        yield url
        return
    # The process id keeps concurrent runs on one machine (developers, CI) apart.
    name = f"cockpit_test_{_worker()}_{os.getpid()}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    _in_thread(asyncio.run, _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    _in_thread(asyncio.run, pg_create_database(name))
    _in_thread(upgrade, url)
    yield url
    _in_thread(asyncio.run, _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": Environment.test,
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": TEST_SECRET,
        "base_url": "http://testserver",
        # A writer process per test application would start hundreds of interpreters; the process
        # itself is tested in tests/usage/test_writer_process.py and by every `cockpit serve` test.
        "usage_writer": "thread",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(database_url, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    yield application
    await application.state.gateway.aclose()
    await application.state.engine.dispose()


def _delete_everything() -> str:
    # Children before parents; DELETE rather than TRUNCATE: on PostgreSQL a TRUNCATE of every table
    # costs ~0.3 s (new files for each table), a DELETE of the few rows a test wrote ~2 ms.
    return "; ".join(f'DELETE FROM "{table.name}"' for table in reversed(metadata.sorted_tables))


async def _empty_tables(url: str) -> None:
    """Empty every table in one round trip (one script of DELETEs in one transaction)."""
    script = f"BEGIN; {_delete_everything()}; COMMIT"
    if url.startswith("postgresql"):
        import asyncpg

        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(script)  # no arguments: the simple protocol runs every statement
        finally:
            await conn.close()
        return
    path = url.split(":///", 1)[1]
    with contextlib.closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(script)


async def _empty_tables_through(engine: AsyncEngine) -> None:
    """``_empty_tables`` on a connection of ``engine``'s pool (no connection opened for it)."""
    script = f"BEGIN; {_delete_everything()}; COMMIT"
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        if engine.dialect.name == "postgresql":
            await driver.execute(script)  # asyncpg: no arguments, the simple protocol
        else:
            await driver.executescript(script)  # aiosqlite


@pytest.fixture(scope="session")
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The engine of ``db`` sessions: one pool for the session, so that a test connects to nothing.

    It takes SQLite's write lock only when it writes, so a test that is holding a read open does
    not block the app's requests.
    """
    engine = make_engine(database_url, sqlite_immediate=False)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(app, db_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:  # type: ignore[no-untyped-def]
    """A session for arranging and inspecting data; every table is emptied afterwards."""
    async with make_sessionmaker(db_engine)() as session:
        yield session
    await _empty_tables_through(db_engine)


_DEMO_TEMPLATES: dict[str, demo_copy.Template] = {}  # database URL -> the demo's rows kept aside


@pytest.fixture
async def demo(
    db: AsyncSession, settings: Settings, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> DemoLogin:
    """The demo organisation (``make demo``'s) in the test database: seeded by ``seed_demo`` for the
    first test of this process on this backend, and the same rows copied in for every other one
    (seconds saved each time, see tests/demo_copy.py). Emptied after the test like everything else."""
    template = _DEMO_TEMPLATES.get(database_url)
    if template is not None:
        return await demo_copy.restore(database_url, template)
    login = await seed_demo(db, settings)
    await db.commit()
    _DEMO_TEMPLATES[database_url] = await demo_copy.keep(database_url, login, tmp_path_factory.mktemp("demo"))
    return login


@pytest.fixture
async def client(app, db: AsyncSession) -> AsyncIterator[AsyncClient]:  # type: ignore[no-untyped-def]
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with the cheapest parameters, for tests that check many passwords (users created
    meanwhile get cheap hashes, and a hash is always verified with its own parameters)."""
    from argon2 import PasswordHasher

    from cockpit.auth import passwords

    cheap = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", cheap)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", cheap.hash("cockpit-dummy-password-for-timing"))


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
