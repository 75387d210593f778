"""Gateway fixtures: a local upstream speaking the OpenAI and Anthropic protocols, an app allowed to
reach it, an account with providers and models, and official ``openai`` clients for its tokens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.app import create_app
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import GroupBudget, MemberAllocation
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User, UserRole
from tests.builders import make_account, make_token, make_user
from tests.conftest import TEST_SECRET, make_settings
from tests.upstream import Upstream

UPSTREAM_KEY = "sk-upstream-secret-key-0123456789"
ANTHROPIC_KEY = "sk-ant-upstream-secret-9876543210"


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    up = Upstream.start_in_thread(api_key=UPSTREAM_KEY)
    yield up
    up.stop()


@pytest.fixture(scope="session")
def anthropic_upstream() -> Iterator[Upstream]:
    up = Upstream.start_in_thread(api_key=ANTHROPIC_KEY)
    yield up
    up.stop()


@pytest.fixture(scope="session")
def gateway_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        database_url,
        tmp_path_factory.mktemp("gateway-data"),
        allow_private_upstreams=True,
        upstream_read_timeout=3.0,
        usage_flush_seconds=3600.0,  # tests flush explicitly
    )


@pytest.fixture(scope="session")
async def gateway_app(gateway_settings: Settings) -> AsyncIterator[Any]:
    application = create_app(gateway_settings)
    yield application
    await application.state.recorder.stop()
    await application.state.gateway.aclose()
    await application.state.engine.dispose()


@dataclass
class Org:
    account_id: uuid.UUID
    admin: User
    member: User
    admin_token: str
    member_token: str
    openai_provider_id: uuid.UUID
    anthropic_provider_id: uuid.UUID
    simulated_provider_id: uuid.UUID


def client_for(app: Any, token: str, **headers: str) -> openai.AsyncOpenAI:
    """The official OpenAI client, talking to the app in-process."""
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gateway")
    return openai.AsyncOpenAI(
        base_url="http://gateway/v1",
        api_key=token,
        http_client=http,
        max_retries=0,
        default_headers=headers or None,
    )


async def add_model(
    db: AsyncSession,
    org: Org,
    name: str,
    provider_id: uuid.UUID,
    upstream_model: str | None = None,
    **fields: Any,
) -> None:
    actor = Actor.system(org.account_id)
    values: dict[str, Any] = {
        "input_price_per_million": Decimal("2.50"),
        "output_price_per_million": Decimal("10.00"),
        "cached_input_price_per_million": Decimal("1.25"),
    }
    values.update(fields)
    await providers.create_model(
        db, actor, name=name, provider_id=provider_id, upstream_model=upstream_model or name, **values
    )
    await db.commit()


@pytest.fixture
async def org(
    db: AsyncSession, gateway_app: Any, upstream: Upstream, anthropic_upstream: Upstream
) -> AsyncIterator[Org]:
    account, _owner = await make_account(db, name="Gateway Co")
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, role=UserRole.member)
    actor = Actor.system(account.id)
    openai_provider = await providers.create_provider(
        db, actor, name="Local OpenAI", kind=ProviderKind.openai, secret_key=TEST_SECRET, allow_private=True,
        base_url=upstream.base_url + "/v1", api_key=UPSTREAM_KEY,
    )  # fmt: skip
    anthropic_provider = await providers.create_provider(
        db, actor, name="Local Anthropic", kind=ProviderKind.anthropic, secret_key=TEST_SECRET,
        allow_private=True, base_url=anthropic_upstream.base_url, api_key=ANTHROPIC_KEY,
    )  # fmt: skip
    simulated_provider = await providers.create_provider(
        db, actor, name="Simulated", kind=ProviderKind.simulated, secret_key=TEST_SECRET, allow_private=True,
        settings={"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 40},
    )  # fmt: skip
    await db.commit()
    result = Org(
        account_id=account.id,
        admin=admin,
        member=member,
        admin_token=await make_token(db, admin, scopes=("admin", "gateway")),
        member_token=await make_token(db, member, scopes=("gateway",)),
        openai_provider_id=openai_provider.id,
        anthropic_provider_id=anthropic_provider.id,
        simulated_provider_id=simulated_provider.id,
    )
    await add_model(db, result, "gpt-4o-mini", openai_provider.id)
    await add_model(db, result, "claude-sonnet", anthropic_provider.id, "claude-sonnet-4-5")
    await add_model(db, result, "sim-chat", simulated_provider.id)
    await add_model(
        db,
        result,
        "embed-small",
        openai_provider.id,
        "text-embedding-3-small",
        capabilities=["embeddings"],
        input_price_per_million=Decimal("0.02"),
        output_price_per_million=Decimal(0),
        cached_input_price_per_million=Decimal(0),
    )
    yield result
    await gateway_app.state.recorder.flush()


async def records(app: Any, db: AsyncSession, account_id: uuid.UUID) -> list[UsageRecord]:
    """What the gateway recorded for an account, oldest first (after writing what waits)."""
    await app.state.recorder.flush()
    await db.rollback()
    rows = await db.scalars(
        select(UsageRecord)
        .where(UsageRecord.account_id == account_id)
        .order_by(UsageRecord.created_at)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


def journal_dir(settings: Settings) -> Path:
    return settings.usage_journal_dir


async def fund(
    db: AsyncSession,
    org: Org,
    *,
    factor: str = "100",
    account: str = "1000000",
    group: str = "100000",
    members: dict[uuid.UUID, str] | None = None,
) -> None:
    """Turn credit tracking on for ``org`` with a budget: credits per cycle, the group's budget (the
    admin and the member share one group) and each member's monthly allocation (default: the
    member and the admin get 10,000 credits each)."""
    allocations = members if members is not None else {org.member.id: "10000", org.admin.id: "10000"}
    await fund_account(
        db, org.account_id, org.member.group_id, allocations, factor=factor, account=account, group=group
    )


async def fund_account(
    db: AsyncSession,
    account_id: uuid.UUID,
    group_id: uuid.UUID | None,
    allocations: dict[uuid.UUID, str],
    *,
    factor: str = "100",
    account: str = "1000000",
    group: str = "100000",
) -> None:
    """``fund`` for any account: the factor, credits per cycle, one group's budget and the monthly
    allocations of some members; the current cycle is created."""
    row = await db.get(Account, account_id)
    assert row is not None
    assert group_id is not None
    row.credit_factor = Decimal(factor)
    row.credits_per_cycle = Decimal(account)
    budget = await db.get(GroupBudget, group_id)
    if budget is None:
        budget = GroupBudget(group_id=group_id, account_id=account_id)
        db.add(budget)
    budget.monthly = Decimal(group)
    for user_id, monthly in allocations.items():
        allocation = await db.get(MemberAllocation, user_id)
        if allocation is None:
            allocation = MemberAllocation(user_id=user_id, account_id=account_id)
            db.add(allocation)
        allocation.monthly = Decimal(monthly)
    await db.commit()
    await current_cycle(db, row)  # the cycle exists before the first call
    await db.commit()


@dataclass
class Tenant:
    """Another account: one member with a gateway token, and a simulated chat model ``sim-chat``."""

    account_id: uuid.UUID
    member_id: uuid.UUID
    group_id: uuid.UUID
    token: str


async def make_tenant(db: AsyncSession, *, name: str = "Other Co", credits: bool = False) -> Tenant:
    account, _owner = await make_account(db, name=name)
    member = await make_user(db, account, role=UserRole.member)
    token = await make_token(db, member, scopes=("gateway",))
    actor = Actor.system(account.id)
    provider = await providers.create_provider(
        db, actor, name="Simulated", kind=ProviderKind.simulated, secret_key=TEST_SECRET, allow_private=True,
        settings={"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 40},
    )  # fmt: skip
    await providers.create_model(
        db, actor, name="sim-chat", provider_id=provider.id, upstream_model="sim-chat",
        input_price_per_million=Decimal("2.50"), output_price_per_million=Decimal("10.00"),
        cached_input_price_per_million=Decimal("1.25"),
    )  # fmt: skip
    await db.commit()
    tenant = Tenant(account.id, member.id, member.group_id, token)
    if credits:
        await fund_account(db, tenant.account_id, tenant.group_id, {tenant.member_id: "10000"})
    return tenant


@pytest.fixture(scope="session")
def tool_server() -> Iterator[Any]:
    """A real MCP server (orders: look up, refund that fails, a slow report) for agent runs."""
    from tests.gateway.agent_tools import ToolServer

    server = ToolServer().start()
    yield server
    server.stop()
