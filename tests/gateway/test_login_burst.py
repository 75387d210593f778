"""A burst of wrong passwords for one e-mail (200, 64 at a time): no 500, every failure counted, the
throttle holds exactly (no more failures than it allows one after the other), and gateway calls of
that tenant and of another go on meanwhile: the passwords are checked off the event loop while no
lock and no database connection is held."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.app import create_app
from cockpit.audit.models import AuditEntry
from cockpit.audit.service import verify_all
from cockpit.auth import passwords
from cockpit.auth.models import LoginFailure
from cockpit.users.models import UserRole
from tests.builders import csrf_from, make_user
from tests.conftest import make_settings
from tests.gateway.conftest import Org, client_for, make_tenant

ATTEMPTS, AT_ONCE = 200, 64
DELAY_AFTER, MAX_PER_HOUR = 5, 10
WAIT = 60.0  # bounds a hang only


class GatedHasher:
    """Cheap argon2 whose checks wait at a gate, so that a test can look at the server while every
    password thread is busy. A check on the event loop's thread is a failure (it would stall it)."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
        self.gate = threading.Event()
        self.checking = 0
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise AssertionError("a password was checked on the event loop")
        with self._lock:
            self.checking += 1
        self.gate.wait(WAIT)
        return self._hasher.verify(password_hash, password)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> GatedHasher:
    gated = GatedHasher()
    monkeypatch.setattr(passwords, "_hasher", gated)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", gated.hash("cockpit-dummy-password-for-timing"))
    return gated


@pytest.fixture
async def burst_app(database_url: str, tmp_path: Path, org: Org) -> AsyncIterator[Any]:
    """A gateway app of its own (its directory starts cold) with a small hourly maximum."""
    settings = make_settings(
        database_url, tmp_path, allow_private_upstreams=True, usage_flush_seconds=3600.0,
        login_delay_after=DELAY_AFTER, login_max_failures_per_hour=MAX_PER_HOUR,
        gateway_cache_ttl_seconds=3600.0,  # only a change may reload (a slow run outlives the 5 s TTL)
    )  # fmt: skip
    app = create_app(settings)
    yield app
    await app.state.recorder.stop()
    await app.state.gateway.aclose()
    await app.state.engine.dispose()


async def _chat(app: Any, token: str) -> int | str:
    import openai

    try:
        await client_for(app, token).chat.completions.create(
            model="sim-chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=5
        )
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


async def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached within {WAIT} s: {what}")
        await asyncio.sleep(0.01)


async def test_200_wrong_passwords_64_at_a_time(
    burst_app: Any, db: AsyncSession, org: Org, hasher: GatedHasher
) -> None:
    victim = await make_user(db, await _account(db, org), role=UserRole.admin)
    email, account_id = victim.email, victim.account_id
    other = await make_tenant(db)
    transport = httpx.ASGITransport(app=burst_app, client=("203.0.113.50", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        csrf = csrf_from(await browser.get("/login"))
        slots = asyncio.Semaphore(AT_ONCE)

        async def attempt(i: int) -> int:
            async with slots:
                form = {"email": email, "password": f"wrong-password-{i}", "csrf_token": csrf, "next": "/"}
                return (await browser.post("/login", data=form)).status_code

        burst = asyncio.gather(*(attempt(i) for i in range(ATTEMPTS)))
        try:
            # Every password thread is held at the gate, the other attempts of the first wave queue.
            workers = passwords._pool._max_workers
            await _until(lambda: hasher.checking >= workers, "password checks under way")
            # Meanwhile the gateway answers, for the same tenant and another, although its directory is
            # cold (each call loads from the database: the attempts hold no connection while they wait).
            assert await _chat(burst_app, org.member_token) == 200
            assert await _chat(burst_app, other.token) == 200
        finally:
            hasher.gate.set()
        during = [await _chat(burst_app, org.member_token), await _chat(burst_app, other.token)]
        statuses = Counter(await burst)
    assert during == [200, 200]

    assert set(statuses) <= {401, 429}, statuses  # no 500
    assert DELAY_AFTER <= statuses[401] <= MAX_PER_HOUR, statuses
    assert statuses[429] == ATTEMPTS - statuses[401]
    await db.commit()
    failures = await db.scalar(
        select(func.count()).select_from(LoginFailure).where(LoginFailure.email == email)
    )
    assert failures == statuses[401]  # every failure answered is recorded
    actions = Counter(await db.scalars(select(AuditEntry.action).where(AuditEntry.account_id == account_id)))
    assert actions["auth.login_failed"] == statuses[401]
    assert actions["auth.login_throttled"] >= 1
    [report] = await verify_all(db, account_id)
    assert report.problem is None
    await db.commit()
    # Failed sign-ins change nothing the gateway holds: nothing is reloaded.
    loads = burst_app.state.gateway.directory.loads
    assert await _chat(burst_app, org.member_token) == 200
    assert await _chat(burst_app, other.token) == 200
    assert burst_app.state.gateway.directory.loads == loads


async def _account(db: AsyncSession, org: Org) -> Any:
    from cockpit.tenancy.models import Account

    account = await db.get(Account, org.account_id)
    assert account is not None
    return account
