"""Credits enforced across real gateway processes (``cockpit serve`` subprocesses): two processes
sharing one database never admit more than the budget holds; a killed process's held credits come
back after the sweep; a client that goes away mid-stream leaves nothing held. In every case the
ledger reconciles exactly with the recorded calls."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.authz.actor import Actor
from cockpit.credits import balances, ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.holds import input_token_bound
from cockpit.credits.models import CreditLease
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User, UserRole
from tests.builders import make_account, make_token, make_user
from tests.conftest import TEST_SECRET
from tests.gateway.conftest import UPSTREAM_KEY, fund_account
from tests.gateway.live import (  # noqa: F401
    LiveOrg,
    LiveServer,
    add_live_model,
    fast_passwords,
    live_db_fixture,
    live_server_fixture,
    live_session_fixture,
)
from tests.gateway.test_enforcement import outcome_of
from tests.upstream import Upstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
IN_RATE, OUT_RATE = Decimal("0.00025"), Decimal("0.001")  # $2.50 / $10 per million, 100 credits per $
BOUND = input_token_bound({"messages": HELLO}, operation="chat")
HOLD_10 = BOUND * IN_RATE + 10 * OUT_RATE  # the hold of a call with max_tokens=10
PLENTY = "1000"

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class CreditOrg:
    account_id: uuid.UUID
    group_id: uuid.UUID
    members: list[User]
    tokens: list[str]


async def arrange_credits(sessions: Sessions, upstream: Upstream, members: int = 2) -> CreditOrg:
    """An account with ``members`` members in one group, a gateway token each and an OpenAI provider
    on ``upstream``."""
    async with sessions() as db:
        account, _owner = await make_account(db, name=f"Credits {uuid.uuid4().hex[:6]}")
        users = [await make_user(db, account, role=UserRole.member) for _ in range(members)]
        tokens = [await make_token(db, user, scopes=("gateway",)) for user in users]
        await providers.create_provider(
            db, Actor.system(account.id), name="Live OpenAI", kind=ProviderKind.openai,
            secret_key=TEST_SECRET, allow_private=True, base_url=upstream.base_url + "/v1",
            api_key=UPSTREAM_KEY,
        )  # fmt: skip
        await db.commit()
        assert users[0].group_id is not None
        return CreditOrg(account.id, users[0].group_id, users, tokens)


async def fund(sessions: Sessions, org: CreditOrg, *, account: str, group: str, member: str) -> None:
    async with sessions() as db:
        await fund_account(
            db,
            org.account_id,
            org.group_id,
            {u.id: member for u in org.members},
            account=account,
            group=group,
        )


async def figures(sessions: Sessions, org: CreditOrg) -> tuple[Decimal, Decimal, Decimal, list[str]]:
    """The account's used and held credits in the current cycle, the sum of its recorded calls'
    credits, and what does not reconcile."""
    async with sessions() as db:
        account = await db.get(Account, org.account_id)
        assert account is not None
        cycle_id = (await current_cycle(db, account)).id
        await db.commit()
        used = await ledger.used(db, cycle_id)
        held = await ledger.held(db, cycle_id)
        recorded = await db.scalar(
            select(func.coalesce(func.sum(UsageRecord.credits), 0)).where(
                UsageRecord.account_id == org.account_id
            )
        )
        return used, held, Decimal(recorded or 0), await balances.reconcile(db, cycle_id)


async def settled(sessions: Sessions, org: CreditOrg, wait: float = 30.0) -> tuple[Decimal, Decimal]:
    """Wait until nothing is held any more (records written, idle leases given back or swept) and
    the ledger reconciles; return (used, recorded)."""
    deadline = time.monotonic() + wait
    while True:
        used, held, recorded, problems = await figures(sessions, org)
        if held == 0 and used == recorded and not problems:
            return used, recorded
        if time.monotonic() > deadline:
            pytest.fail(
                f"not settled after {wait} s: used {used}, held {held}, recorded {recorded}, {problems}"
            )
        await asyncio.sleep(0.2)  # the servers write and give back in the background


def client(server: LiveServer, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key=token, max_retries=0, timeout=30)


@pytest.fixture(scope="session")
def second_server(live_db: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A second gateway process on the live database, beside the shared one, for the session (each
    test has an account of its own; starting a server costs seconds)."""
    server = LiveServer(live_db, tmp_path_factory.mktemp("second"), flush_seconds=0.2).start()
    yield server
    server.stop()


@pytest.mark.parametrize("level", ["member", "group", "account"])
async def test_two_processes_sharing_one_database_admit_at_most_the_budget(
    live_server: LiveServer,
    second_server: LiveServer,
    live_session: Sessions,
    upstream: Upstream,
    level: str,
) -> None:
    """The allowance covers exactly 10 calls' holds. 200 calls, half streaming, go to two gateway
    processes at once and stay in flight (the upstream answers once every call has been admitted
    or refused): 10 are admitted, the rest get 402, and used never exceeds the allowance."""
    model = "gpt-4o-mini-gate-chunks-5"
    org = await arrange_credits(live_session, upstream, members=1 if level == "member" else 2)
    await add_live_model(live_session, LiveOrg(org.account_id, org.tokens[0]), model)
    allowance = str(10 * HOLD_10)
    if level == "member":
        await fund(live_session, org, account=PLENTY, group=PLENTY, member=allowance)
    elif level == "group":
        await fund(live_session, org, account=PLENTY, group=allowance, member=PLENTY)
    else:
        await fund(live_session, org, account=allowance, group=PLENTY, member=PLENTY)
    servers = [live_server, second_server]
    clients = [client(servers[i % 2], org.tokens[(i // 2) % len(org.tokens)]) for i in range(4)]
    upstream.close_gate()
    try:
        calls = [
            asyncio.ensure_future(outcome_of(clients[i % 4], model, stream=i % 3 == 0)) for i in range(200)
        ]
        for _ in range(400):  # until every refused call has its answer (at most 8 s)
            if sum(c.done() for c in calls) >= 190:
                break
            await asyncio.sleep(0.02)
    finally:
        upstream.open_gate()
    outcomes = await asyncio.gather(*calls)
    for c in clients:
        await c.close()
    assert outcomes.count(200) == 10, outcomes
    assert outcomes.count("402 insufficient_credits") == 190
    used, _ = await settled(live_session, org)
    assert 0 < used <= Decimal(allowance)
    async with live_session() as db:
        succeeded = await db.scalar(
            select(func.count())
            .select_from(UsageRecord)
            .where(UsageRecord.account_id == org.account_id, UsageRecord.http_status == 200)
        )
    assert succeeded == 10


async def test_a_killed_process_s_held_credits_are_swept_and_the_ledger_reconciles(
    live_db: str, live_session: Sessions, upstream: Upstream, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A process dies (SIGKILL) holding a lease and calls nobody wrote yet. Restarted on its data
    dir, it writes the journaled calls (debiting their credits); once the dead lease expires it is
    swept: held is 0 and usage debits equal the recorded calls' credits."""
    org = await arrange_credits(live_session, upstream, members=1)
    await add_live_model(live_session, LiveOrg(org.account_id, org.tokens[0]), "gpt-4o-mini")
    await fund(live_session, org, account=PLENTY, group=PLENTY, member=PLENTY)
    data_dir = tmp_path / "data"
    env = {"COCKPIT_CREDIT_LEASE_TTL_SECONDS": "3", "COCKPIT_CREDIT_LEASE_IDLE_SECONDS": "600"}
    server = LiveServer(live_db, data_dir, flush_seconds=3600, env=env).start()
    try:
        gateway = client(server, org.tokens[0])
        for _ in range(5):
            assert await outcome_of(gateway, "gpt-4o-mini", stream=False) == 200
        await gateway.close()
        server.kill()
    finally:
        server.stop()

    used, held, recorded, _ = await figures(live_session, org)
    assert used == recorded == 0  # nothing was written before the kill
    assert held > 0  # the dead process's lease
    async with live_session() as db:
        assert (
            await db.scalar(
                select(func.count()).select_from(CreditLease).where(CreditLease.account_id == org.account_id)
            )
            == 1
        )

    again = LiveServer(live_db, data_dir, flush_seconds=0.2, env=env).start()
    request.addfinalizer(again.stop)
    used, recorded = await settled(live_session, org)
    assert used == recorded > 0
    async with live_session() as db:
        rows = await db.scalar(
            select(func.count()).select_from(UsageRecord).where(UsageRecord.account_id == org.account_id)
        )
        leases = await db.scalar(
            select(func.count()).select_from(CreditLease).where(CreditLease.account_id == org.account_id)
        )
    assert rows == 5
    assert leases == 0


async def test_a_client_that_goes_away_mid_stream_leaves_nothing_held(
    live_server: LiveServer, live_session: Sessions, upstream: Upstream
) -> None:
    org = await arrange_credits(live_session, upstream, members=1)
    name = "gpt-4o-mini-chunks-50-chunkdelay-100"
    await add_live_model(live_session, LiveOrg(org.account_id, org.tokens[0]), name)
    await fund(live_session, org, account=PLENTY, group=PLENTY, member=PLENTY)
    gateway = client(live_server, org.tokens[0])
    stream = await gateway.chat.completions.create(model=name, messages=HELLO, stream=True)
    received = 0
    async for _chunk in stream:
        received += 1
        if received == 3:
            break
    await stream.close()
    await gateway.close()
    used, recorded = await settled(live_session, org)
    async with live_session() as db:
        [row] = list(await db.scalars(select(UsageRecord).where(UsageRecord.account_id == org.account_id)))
    assert row.status == "client_disconnected"
    assert row.credits > 0  # it is charged for the tokens relayed before the caller went away
    assert used == recorded == row.credits
