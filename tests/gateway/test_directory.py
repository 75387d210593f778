"""The gateway's in-memory directory: invalidation within and across processes, per account."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import ApiToken
from cockpit.gateway.directory import Directory
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.time import utcnow
from cockpit.users.models import User, UserRole
from tests.builders import bearer, console_login, make_token
from tests.conftest import TEST_SECRET
from tests.gateway.conftest import Org, client_for, fund, make_tenant


async def test_a_change_committed_by_another_process_is_seen_on_the_next_call(
    database_url: str, db: AsyncSession, org: Org, tmp_path: Path, gateway_app: Any
) -> None:
    """Two directories sharing a stamp file stand for two worker processes of one deployment."""
    stamp = tmp_path / "gateway-cache.stamp"
    engine = make_engine(database_url)
    try:
        worker_a = Directory(make_sessionmaker(engine), TEST_SECRET, stamp)
        worker_b = Directory(make_sessionmaker(engine), TEST_SECRET, stamp)
        assert (await worker_a.caller(org.member_token)) is not None
        assert (await worker_b.caller(org.member_token)) is not None
        loads = worker_b.loads

        # Worker A's process revokes the token (a commit there invalidates A and touches the stamp).
        await db.execute(
            update(ApiToken).values(revoked_at=utcnow()).where(ApiToken.user_id == org.member.id)
        )
        await db.commit()
        worker_a.invalidate()

        assert await worker_b.caller(org.member_token) is None  # no TTL wait
        assert worker_b.loads == loads + 1
    finally:
        await engine.dispose()


async def test_without_changes_calls_are_served_from_memory(
    database_url: str, org: Org, tmp_path: Path, gateway_app: Any
) -> None:
    engine = make_engine(database_url)
    try:
        directory = Directory(make_sessionmaker(engine), TEST_SECRET, tmp_path / "stamp")
        caller = await directory.caller(org.member_token)
        assert caller is not None
        assert caller.user_id == org.member.id
        catalog = await directory.catalog(caller.account_id)
        assert "gpt-4o-mini" in catalog.routes
        loads = directory.loads
        for _ in range(50):
            assert await directory.caller(org.member_token) == caller
            assert await directory.catalog(caller.account_id) is catalog
        assert directory.loads == loads
        assert await directory.caller("ck_" + uuid.uuid4().hex) is None
        # A touched stamp (another process changed something) drops everything.
        stamp = tmp_path / "stamp"
        stamp.touch()
        os.utime(stamp, ns=(1, 1))
        await directory.caller(org.member_token)
        assert directory.loads > loads + 1
    finally:
        await engine.dispose()


async def _chat(client: openai.AsyncOpenAI) -> int | str:
    try:
        await client.chat.completions.create(
            model="sim-chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=5
        )
    except openai.APIStatusError as exc:
        return str(exc.body.get("code") if isinstance(exc.body, dict) else exc.status_code)
    return 200


async def test_a_change_in_one_account_leaves_the_other_accounts_entries_and_credit_leases(
    gateway_app: Any, db: AsyncSession, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sign-in, a new group and an access policy in account A: account B's caller, catalogue and
    credit lease stay in memory (no load, no lease transaction); A's changes apply to A's next call."""
    directory, keeper = gateway_app.state.gateway.directory, gateway_app.state.gateway.keeper
    monkeypatch.setattr(directory, "ttl", 10_000.0)  # only a change may reload
    await fund(db, org)
    other = await make_tenant(db, credits=True)
    owner = await db.scalar(
        select(User).where(User.account_id == org.account_id, User.role == UserRole.owner)
    )
    assert owner is not None
    owner_email, owner_token = owner.email, await make_token(db, owner)
    a_member, b_member = client_for(gateway_app, org.member_token), client_for(gateway_app, other.token)
    assert await _chat(a_member) == 200
    assert await _chat(b_member) == 200
    leases = keeper.stats.acquisitions
    a_generation, b_generation = directory.generation(org.account_id), directory.generation(other.account_id)

    transport = httpx.ASGITransport(app=gateway_app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        assert (await console_login(browser, owner_email)).status_code == 303
        # Nothing the gateway holds depends on a sign-in (it writes users.last_login_at).
        assert directory.generation(org.account_id) == a_generation
        rest = {"headers": bearer(owner_token)}
        assert (await browser.post("/api/v1/groups", json={"name": "Interns"}, **rest)).status_code == 201
        policy = {"scope": "account", "resource_type": "model", "resource": "claude-sonnet", "effect": "deny"}
        assert (await browser.post("/api/v1/policies", json=policy, **rest)).status_code == 201

    assert directory.generation(org.account_id) > a_generation
    # (The REST calls above loaded the owner's token into the directory: count from here.)
    loads = directory.loads
    assert await _chat(b_member) == 200
    assert directory.loads == loads  # B's caller and catalogue were not dropped
    assert keeper.stats.acquisitions == leases  # B's call was served from its lease
    assert directory.generation(other.account_id) == b_generation
    assert await _chat(a_member) == 200
    assert directory.loads > loads  # A's were
    assert keeper.stats.acquisitions > leases


async def test_a_bulk_statement_forgets_its_account_only_when_it_names_it(
    gateway_app: Any, db: AsyncSession, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = gateway_app.state.gateway.directory
    monkeypatch.setattr(directory, "ttl", 10_000.0)
    other = await make_tenant(db)
    a_member, b_member = client_for(gateway_app, org.member_token), client_for(gateway_app, other.token)
    assert await _chat(a_member) == 200
    assert await _chat(b_member) == 200
    b_generation = directory.generation(other.account_id)

    # Limited to account A by its WHERE clause: only A is forgotten.
    await db.execute(
        update(ApiToken)
        .where(ApiToken.account_id == org.account_id, ApiToken.user_id == org.member.id)
        .values(revoked_at=utcnow())
    )
    await db.commit()
    assert directory.generation(other.account_id) == b_generation
    assert await _chat(a_member) == "invalid_api_key"

    # No account in the WHERE clause: everything is forgotten (the safe side).
    await db.execute(update(ApiToken).where(ApiToken.user_id == other.member_id).values(name="renamed"))
    await db.commit()
    assert directory.generation(other.account_id) > b_generation
    assert await _chat(b_member) == 200
