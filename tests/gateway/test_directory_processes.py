"""Invalidation across machines (PostgreSQL's LISTEN/NOTIFY): two ``cockpit serve`` processes with
data directories of their own (no stamp file in common) and no background reload (a TTL of an hour):
a token revoked, a user deactivated or a model denied through process A is refused by process B
(normally at the first call after A answered: A answers once its own notification came back, see
gateway/directory.py; B is polled with a deadline that only bounds a hang, since B reads its
notification on its own schedule). A listener whose connection drops comes back and drops what it
may have missed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.auth.models import ApiToken
from cockpit.authz.actor import Actor
from cockpit.gateway.directory import Directory
from cockpit.gateway.invalidation import CHANNEL, DirectoryListener
from cockpit.kit import pglisten
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.users.models import UserRole
from tests.builders import bearer, make_account, make_token, make_user
from tests.conftest import PG_ADMIN_URL, TEST_SECRET
from tests.gateway.live import (  # noqa: F401
    LiveServer,
    fast_passwords,
    live_db_fixture,
    live_session_fixture,
)

WAIT = 30.0  # bounds a hang only

Sessions = async_sessionmaker[AsyncSession]

pytestmark = pytest.mark.postgresql_only  # LISTEN/NOTIFY: SQLite deployments share a stamp file


@dataclass
class People:
    account_id: uuid.UUID
    admin: str  # the owner's token, admin scope
    revoked: str  # gateway tokens of three members
    deactivated: str
    denied: str
    revoked_token_id: uuid.UUID
    deactivated_user_id: uuid.UUID


async def _arrange(sessions: Sessions) -> People:
    async with sessions() as db:
        account, owner = await make_account(db, name=f"Far {uuid.uuid4().hex[:6]}")
        members = [await make_user(db, account, role=UserRole.member) for _ in range(3)]
        tokens = [await make_token(db, member, scopes=("gateway",)) for member in members]
        actor = Actor.system(account.id)
        provider = await providers.create_provider(
            db, actor, name="Simulated", kind=ProviderKind.simulated, secret_key=TEST_SECRET,
            allow_private=True, settings={"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 5},
        )  # fmt: skip
        for name in ("sim-chat", "sim-other"):
            await providers.create_model(
                db, actor, name=name, provider_id=provider.id, upstream_model=name,
                input_price_per_million=Decimal(1), output_price_per_million=Decimal(1),
            )  # fmt: skip
        await db.commit()
        revoked_token_id = await db.scalar(select(ApiToken.id).where(ApiToken.user_id == members[0].id))
        assert revoked_token_id is not None
        return People(account.id, await make_token(db, owner), *tokens, revoked_token_id, members[1].id)


@pytest.fixture
def servers(live_db: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = {"COCKPIT_GATEWAY_CACHE_TTL_SECONDS": "3600"}  # only a notification may drop an entry
    a = LiveServer(live_db, tmp_path / "machine-a", flush_seconds=0.2, env=env).start()
    try:
        b = LiveServer(live_db, tmp_path / "machine-b", flush_seconds=0.2, env=env).start()
    except BaseException:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


async def _chat(http: httpx.AsyncClient, server: LiveServer, token: str, model: str = "sim-chat") -> int:
    response = await http.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5},
        headers=bearer(token),
    )
    return response.status_code


async def _refused(http: httpx.AsyncClient, server: LiveServer, token: str, model: str, status: int) -> None:
    deadline = time.monotonic() + WAIT
    while (answer := await _chat(http, server, token, model)) != status:
        assert answer == 200
        if time.monotonic() > deadline:
            pytest.fail(f"still {answer} after {WAIT} s, not {status}")
        await asyncio.sleep(0.01)


async def test_a_change_through_one_machine_is_refused_by_the_other_at_the_next_call(
    servers: tuple[LiveServer, LiveServer], live_session: Sessions
) -> None:
    a, b = servers
    people = await _arrange(live_session)
    async with httpx.AsyncClient(timeout=WAIT) as http:
        # B knows every caller and the catalogue (in memory from here on).
        for token in (people.revoked, people.deactivated, people.denied):
            assert await _chat(http, b, token) == 200
        assert await _chat(http, b, people.denied, "sim-other") == 200
        admin = bearer(people.admin)

        revoked = await http.delete(f"{a.base_url}/api/v1/tokens/{people.revoked_token_id}", headers=admin)
        assert revoked.status_code == 200, revoked.text
        await _refused(http, b, people.revoked, "sim-chat", 401)

        deactivated = await http.post(
            f"{a.base_url}/api/v1/users/{people.deactivated_user_id}/deactivate", headers=admin
        )
        assert deactivated.status_code == 200, deactivated.text
        await _refused(http, b, people.deactivated, "sim-chat", 401)

        rule = {"scope": "account", "resource_type": "model", "resource": "sim-other", "effect": "deny"}
        denied = await http.post(f"{a.base_url}/api/v1/policies", json=rule, headers=admin)
        assert denied.status_code == 201, denied.text
        await _refused(http, b, people.denied, "sim-other", 403)
        assert await _chat(http, b, people.denied) == 200  # the other model still works


async def test_a_listener_that_loses_its_connection_comes_back_and_forgets_what_it_may_have_missed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lost connection and the stop are acted on at once, not at the next periodic check.
    monkeypatch.setattr(pglisten, "CHECK_SECONDS", 3600.0)
    engine = make_engine(database_url)
    directory = Directory(make_sessionmaker(engine), TEST_SECRET)
    listener = DirectoryListener(directory, engine)
    account, other = uuid.uuid4(), uuid.uuid4()
    try:
        await listener.start(wait=WAIT)
        assert listener.connected
        # Another process's commit names an account: that account only is forgotten.
        before = directory.generation(other)
        await _notify(engine, f"elsewhere:1 {account.hex}")
        await _until(lambda: directory.generation(account) > before, "the notification is applied")
        assert directory.generation(other) == before

        # The connection is killed: everything is forgotten, and it listens again.
        before = directory.generation(other)
        admin = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND query LIKE 'LISTEN%'",
                engine.url.database,
            )
        finally:
            await admin.close()
        assert killed == 1
        await _until(lambda: directory.generation(other) > before, "everything is forgotten")
        await _until(lambda: listener.connected, "listening again")
        before = directory.generation(account)
        await _notify(engine, f"elsewhere:2 {account.hex}")
        await _until(lambda: directory.generation(account) > before, "notifications are heard again")
    finally:
        await asyncio.wait_for(listener.stop(), WAIT)
        await engine.dispose()


async def _notify(engine: Any, payload: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


async def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT} s: {what}")
        await asyncio.sleep(0.01)
