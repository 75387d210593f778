"""Gateway tests over real HTTP: a ``cockpit serve`` process with its own database and data dir
(started through ``tests.launcher``).

Import the fixtures into a test module (``from tests.gateway.live import live_server_fixture``; the
fixtures are named ``live_db``, ``live_server``, ``live_session``).
``LiveServer`` can also be started and killed by hand (the crash test). Data is arranged in the live
database with the ORM (``arrange``), with providers pointing at the in-process upstream.

``fast_passwords`` (autouse where imported) swaps argon2 hashing for one precomputed hash while
accounts and users are built: the gateway never checks passwords, and it makes each fixture
~10x cheaper.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.auth.passwords import hash_password
from cockpit.authz.actor import Actor
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.usage.models import UsageRecord
from cockpit.users.models import UserRole
from tests import launcher
from tests.builders import make_account, make_token, make_user
from tests.conftest import PG_ADMIN_URL, TEST_SECRET, _pg_admin, _worker, pg_create_database
from tests.launcher import Launched
from tests.upstream import Upstream

STARTUP_TIMEOUT = 30.0
_PASSWORD_HASH = hash_password("correct-horse-battery-9")


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    import cockpit.accounts.service as accounts_service
    import tests.builders as builders

    async def cheap(_password: str) -> str:
        return _PASSWORD_HASH

    monkeypatch.setattr(accounts_service, "hash_password_async", cheap)
    monkeypatch.setattr(builders, "hash_password", lambda _password: _PASSWORD_HASH)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """One ``cockpit serve`` process (a single worker: SIGKILL kills the whole server)."""

    def __init__(
        self, database_url: str, data_dir: Path, *, flush_seconds: float, env: dict[str, str] | None = None
    ) -> None:
        self.database_url, self.data_dir, self.flush_seconds = database_url, data_dir, flush_seconds
        self.extra_env = env or {}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"server-{self.port}.log"
        self.process: Launched | None = None

    def start(self) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "COCKPIT_DATABASE_URL": self.database_url,
            "COCKPIT_SECRET_KEY": TEST_SECRET,
            "COCKPIT_DATA_DIR": str(self.data_dir),
            "COCKPIT_ENV": "test",
            "COCKPIT_BASE_URL": self.base_url,
            "COCKPIT_ALLOW_PRIVATE_UPSTREAMS": "true",
            "COCKPIT_USAGE_FLUSH_SECONDS": str(self.flush_seconds),
            # Credits a member's idle lease holds go back after 0.5 s (2 s in production): the
            # tests that wait for "nothing held" wait for this.
            "COCKPIT_CREDIT_LEASE_IDLE_SECONDS": "0.5",
            # Only bounds a hang: admitted calls may wait behind a gate while others are refused.
            "COCKPIT_UPSTREAM_READ_TIMEOUT": "60",
            **self.extra_env,
        }
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = launcher.start(args, env=env, output=self.log)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"cockpit serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling a process that is still starting
        self.stop()
        pytest.fail(f"cockpit serve did not become healthy:\n{self.log.read_text()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


# Module imports of these fixtures make one fixture definition per importing module: the registries
# below make the database and the shared server one per backend for the whole session anyway.
_LIVE_DBS: dict[str, str] = {}  # the session's database URL -> the live database URL
_SHARED: dict[str, LiveServer] = {}  # live database URL -> the shared server


def _in_thread(fn: Callable[..., object], *args: object) -> None:
    # Alembic's env.py runs its own event loop: keep it off pytest's loop (as the main conftest does).
    with ThreadPoolExecutor(1) as pool:
        pool.submit(fn, *args).result()


def _create_live_db(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, config: pytest.Config
) -> str:
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('live-db') / 'live.db'}"
        _in_thread(upgrade, url)
        return url
    name = f"cockpit_test_live_{_worker()}_{os.getpid()}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    _in_thread(asyncio.run, _pg_admin(drop))
    _in_thread(asyncio.run, pg_create_database(name))
    config.add_cleanup(lambda: _in_thread(asyncio.run, _pg_admin(drop)))
    url = f"{base}/{name}"
    _in_thread(upgrade, url)
    return url


@pytest.fixture(scope="session", name="live_db")
def live_db_fixture(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> str:
    """A database of its own for live servers, on the session's backend."""
    url = _LIVE_DBS.get(database_url)
    if url is None:
        url = _LIVE_DBS[database_url] = _create_live_db(database_url, tmp_path_factory, request.config)
    return url


def share(config: pytest.Config, server: LiveServer) -> None:
    """Make ``server`` the shared live server of its database, stopped at the end of the session."""
    _SHARED[server.database_url] = server
    config.add_cleanup(server.stop)


def shared_server(database_url: str) -> LiveServer | None:
    server = _SHARED.get(database_url)
    return server if server is not None and server.alive() else None


@pytest.fixture(scope="session", name="live_server")
def live_server_fixture(
    live_db: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> LiveServer:
    """A live server shared by the tests of a backend; it writes usage records every 0.2 s."""
    server = shared_server(live_db)
    if server is None:
        server = LiveServer(live_db, tmp_path_factory.mktemp("live-data"), flush_seconds=0.2).start()
        share(request.config, server)
    return server


@pytest.fixture(name="live_session")
async def live_session_fixture(live_db: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(live_db, sqlite_immediate=False)
    yield make_sessionmaker(engine)
    await engine.dispose()


@dataclass
class LiveOrg:
    account_id: uuid.UUID
    token: str


async def arrange(sessionmaker: async_sessionmaker[AsyncSession], upstream: Upstream, key: str) -> LiveOrg:
    """An account with a member, a gateway token and an OpenAI provider on ``upstream``; models are
    named after the upstream scenario they use (``gpt-4o-mini-chunks-3``, ...), created on demand by
    ``add_live_model``."""
    async with sessionmaker() as db:
        account, _owner = await make_account(db, name=f"Live {uuid.uuid4().hex[:6]}")
        member = await make_user(db, account, role=UserRole.member)
        token = await make_token(db, member, scopes=("gateway",))
        await providers.create_provider(
            db, Actor.system(account.id), name="Live OpenAI", kind=ProviderKind.openai,
            secret_key=TEST_SECRET, allow_private=True, base_url=upstream.base_url + "/v1", api_key=key,
        )  # fmt: skip
        await db.commit()
        return LiveOrg(account.id, token)


async def add_live_model(sessionmaker: async_sessionmaker[AsyncSession], org: LiveOrg, name: str) -> None:
    from cockpit.providers.models import Provider

    async with sessionmaker() as db:
        provider = await db.scalar(select(Provider).where(Provider.account_id == org.account_id))
        assert provider is not None
        await providers.create_model(
            db, Actor.system(org.account_id), name=name, provider_id=provider.id, upstream_model=name,
            input_price_per_million=Decimal("2.50"), output_price_per_million=Decimal("10.00"),
            cached_input_price_per_million=Decimal("1.25"),
        )  # fmt: skip
        await db.commit()


async def live_records(sessionmaker: async_sessionmaker[AsyncSession], account_id: uuid.UUID) -> list[Any]:
    async with sessionmaker() as db:
        rows = await db.scalars(
            select(UsageRecord).where(UsageRecord.account_id == account_id).order_by(UsageRecord.created_at)
        )
        return list(rows.all())
