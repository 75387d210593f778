"""The demo organisation's gateway: a simulated provider, priced models and ~3,000 recorded calls."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, timedelta
from decimal import Decimal

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent
from cockpit.auth.models import ApiToken
from cockpit.config import Settings
from cockpit.demo import DEMO_EMAIL, SIMULATED_PROVIDER, DemoLogin, seed_demo
from cockpit.kit.time import utcnow
from cockpit.providers.models import Model, Provider, ProviderKind
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User, UserStatus
from tests.builders import bearer

MILLION = Decimal(1_000_000)


async def _usage(db: AsyncSession) -> list[UsageRecord]:
    rows = list(await db.scalars(select(UsageRecord)))
    await db.commit()
    return rows


def _expected_cost(model: Model, row: UsageRecord) -> Decimal:
    cached_price = model.cached_input_price_per_million or model.input_price_per_million
    return (
        (row.input_tokens - row.cached_tokens) * model.input_price_per_million
        + row.cached_tokens * cached_price
        + row.output_tokens * model.output_price_per_million
    ) / MILLION


async def test_the_demo_has_a_simulated_provider_with_priced_models(
    db: AsyncSession, demo: DemoLogin
) -> None:
    [provider] = list(await db.scalars(select(Provider)))
    assert (provider.name, provider.kind) == (SIMULATED_PROVIDER, ProviderKind.simulated)
    assert provider.settings["latency_ms"] > 0
    models = {m.name: m for m in await db.scalars(select(Model))}
    assert set(models) == {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "text-embedding-3-small"}
    assert all(m.provider_id == provider.id and m.enabled for m in models.values())
    assert models["claude-sonnet-4"].upstream_model.startswith("claude-sonnet-4")
    assert models["text-embedding-3-small"].capabilities == ["embeddings"]
    assert "chat" in models["gpt-4o"].capabilities
    # List prices (USD per million tokens), as genai-prices knows them.
    assert models["gpt-4o"].input_price_per_million == Decimal("2.5")
    assert models["gpt-4o"].output_price_per_million == Decimal(10)
    assert models["gpt-4o-mini"].input_price_per_million == Decimal("0.15")
    assert models["claude-sonnet-4"].output_price_per_million == Decimal(15)
    assert models["text-embedding-3-small"].input_price_per_million == Decimal("0.02")
    assert models["text-embedding-3-small"].output_price_per_million == 0
    await db.commit()


async def test_the_demo_records_two_months_of_plausible_calls(db: AsyncSession, demo: DemoLogin) -> None:
    now = utcnow()

    rows = await _usage(db)
    models = {m.id: m for m in await db.scalars(select(Model))}
    users = {u.id: u for u in await db.scalars(select(User))}
    tokens = {t.id: t for t in await db.scalars(select(ApiToken))}
    await db.commit()

    assert 2_000 <= len(rows) <= 5_000
    times = [row.created_at.astimezone(UTC) for row in rows]
    assert min(times) >= now - timedelta(days=60)
    assert max(times) <= now
    assert len({t.date() for t in times}) >= 50
    # Busier on weekdays than at weekends, and growing: the last month has more calls than the first.
    weekday = sum(1 for t in times if t.weekday() < 5) / 5
    weekend = sum(1 for t in times if t.weekday() >= 5) / 2
    assert weekday > 2 * weekend
    middle = now - timedelta(days=30)
    assert sum(1 for t in times if t >= middle) > 1.3 * sum(1 for t in times if t < middle)

    statuses = Counter(row.status for row in rows)
    assert set(statuses) == {"success", "error", "client_disconnected"}
    assert 0.90 <= statuses["success"] / len(rows) <= 0.96
    assert 0.02 <= statuses["error"] / len(rows) <= 0.07
    assert 0.01 <= statuses["client_disconnected"] / len(rows) <= 0.05
    errors = {(row.error_type, row.http_status) for row in rows if row.status == "error"}
    assert errors == {
        ("upstream_rate_limited", 429),
        ("upstream_error", 502),
        ("upstream_timeout", 504),
        ("model_not_found", 404),
    }
    operations = Counter(row.operation for row in rows)
    assert 0.05 <= operations["embedding"] / len(rows) <= 0.15
    chats = [row for row in rows if row.operation == "chat" and row.status == "success"]
    assert 0.5 <= sum(row.stream for row in chats) / len(chats) <= 0.7
    assert any(row.cached_tokens > 0 for row in chats)
    # The project agents' runs are recorded with the agents' ids (named in the views, "Deleted agent"
    # once gone).
    agents = {a.slug: str(a.id) for a in await db.scalars(select(Agent))}
    assert {"cockpit-helper", "support-triage-bot", "release-notes-agent"} <= set(agents)
    assert {row.agent_id for row in rows} == {
        None,
        agents["support-triage-bot"],
        agents["release-notes-agent"],
    }
    assert sum(1 for row in rows if row.project_id is not None) > 100

    callers = Counter(row.user_id for row in rows)
    assert len(callers) >= 10
    assert callers.most_common(1)[0][1] > 4 * len(rows) / len(callers)  # a few heavy users
    for row in rows:
        user = users[row.user_id] if row.user_id else None
        assert user is not None
        assert user.status is UserStatus.active
        assert row.group_id == user.group_id
        token = tokens[row.api_token_id] if row.api_token_id else None
        assert token is not None
        assert token.user_id == user.id
        assert token.scopes == ["gateway"]
        if row.status == "success":
            assert row.http_status == 200
            assert row.error_type is None
        if row.status == "client_disconnected":
            assert (row.http_status, row.tokens_estimated, row.stream) == (499, True, True)
        if row.error_type == "model_not_found":
            assert row.model_id is None
            assert row.model not in {m.name for m in models.values()}
            assert row.cost_usd == 0
            continue
        model = models[row.model_id] if row.model_id else None
        assert model is not None
        assert row.model == model.name
        if row.operation == "embedding":
            assert model.name == "text-embedding-3-small"
            assert row.output_tokens == 0
        else:
            assert "chat" in model.capabilities
        if row.status != "error":
            assert 50 <= row.input_tokens <= 4_000
            assert row.latency_ms > 0
        assert 0 <= row.cached_tokens <= row.input_tokens
        assert row.cost_usd == _expected_cost(model, row)
    assert sum((row.cost_usd for row in rows), Decimal(0)) > Decimal(1)


async def test_a_second_seeding_reuses_the_demo(
    db: AsyncSession, settings: Settings, demo: DemoLogin
) -> None:
    first = demo.gateway_token
    count = await db.scalar(select(func.count()).select_from(UsageRecord))
    await db.commit()

    second = (await seed_demo(db, settings)).gateway_token
    await db.commit()

    assert first is not None
    assert first.startswith("ck_")
    # A token is shown once (only its hash is kept): every run hands out a new one.
    assert second is not None
    assert second.startswith("ck_")
    assert second != first
    assert await db.scalar(select(func.count()).select_from(UsageRecord)) == count
    assert await db.scalar(select(func.count()).select_from(Provider)) == 1
    assert await db.scalar(select(func.count()).select_from(Model)) == 4
    await db.commit()


async def test_the_owner_can_call_the_gateway_with_the_printed_token(
    db: AsyncSession, demo: DemoLogin, client: AsyncClient
) -> None:
    token = demo.gateway_token
    assert token is not None
    owner = await db.scalar(select(User).where(User.email == DEMO_EMAIL))
    await db.commit()
    assert owner is not None

    response = await client.get("/v1/models", headers=bearer(token))

    assert response.status_code == 200, response.text
    assert sorted(m["id"] for m in response.json()["data"]) == [
        "agent:cockpit-helper",  # the owner may run every agent of the account
        "agent:release-notes-agent",
        "agent:support-triage-bot",
        "claude-sonnet-4",
        "gpt-4o",
        "gpt-4o-mini",
        "text-embedding-3-small",
    ]
