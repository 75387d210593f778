"""Embeddings through the gateway: OpenAI-compatible and simulated providers; Anthropic has none."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import openai
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.gateway.conftest import UPSTREAM_KEY, Org, add_model, client_for, records
from tests.gateway.live import fast_passwords  # noqa: F401
from tests.upstream import Upstream


def expected_vector(i: int) -> list[float]:
    return [(j + 1) / 8 + i for j in range(8)]


async def test_openai_embeddings_base64(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    result = await client.embeddings.create(model="embed-small", input=["first", "second"])

    assert [d.embedding for d in result.data] == [expected_vector(0), expected_vector(1)]
    assert [d.index for d in result.data] == [0, 1]
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (6, 6)

    [sent] = upstream.requests
    assert sent.path == "/v1/embeddings"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.json["model"] == "text-embedding-3-small"
    assert sent.json["input"] == ["first", "second"]
    assert sent.json["encoding_format"] == "base64"  # the openai package's default, passed through

    [row] = await records(gateway_app, db, org.account_id)
    assert (row.operation, row.status, row.http_status, row.stream) == ("embedding", "success", 200, False)
    assert (row.model, row.provider_kind, row.provider_id) == (
        "embed-small",
        "openai",
        org.openai_provider_id,
    )
    assert (row.input_tokens, row.output_tokens, row.cached_tokens) == (6, 0, 0)
    assert row.tokens_estimated is False
    assert row.cost_usd == Decimal("0.00000012")  # 6 x $0.02/M
    assert row.ttft_ms is not None
    assert row.latency_ms >= 0


async def test_openai_embeddings_float(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    result = await client.embeddings.create(model="embed-small", input="only one", encoding_format="float")
    assert [d.embedding for d in result.data] == [expected_vector(0)]
    assert upstream.requests[0].json["encoding_format"] == "float"
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.input_tokens, row.cost_usd) == (3, Decimal("0.00000006"))


async def test_embeddings_need_input(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.post("/embeddings", body={"model": "embed-small"}, cast_to=object)
    assert (caught.value.param, caught.value.code) == ("input", "invalid_request")
    assert upstream.requests == []
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.operation, row.http_status) == ("embedding", 400)


async def test_simulated_embeddings(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await add_model(
        db, org, "sim-embed", org.simulated_provider_id, capabilities=["embeddings"],
        input_price_per_million=Decimal("0.10"), output_price_per_million=Decimal(0),
    )  # fmt: skip
    client = client_for(gateway_app, org.member_token)
    result = await client.embeddings.create(model="sim-embed", input=["a cat", "a dog", "a cat"])
    assert len(result.data) == 3
    dims = {len(d.embedding) for d in result.data}
    assert dims == {256}  # the simulated provider's default dimensions
    assert result.data[0].embedding == result.data[2].embedding  # deterministic
    assert result.data[0].embedding != result.data[1].embedding
    assert math.isclose(math.fsum(x * x for x in result.data[0].embedding), 1.0, rel_tol=1e-3)
    assert result.usage.prompt_tokens > 0

    [row] = await records(gateway_app, db, org.account_id)
    assert (row.operation, row.provider_kind, row.status) == ("embedding", "simulated", "success")
    assert row.input_tokens == result.usage.prompt_tokens
    assert row.output_tokens == 0
    assert row.cost_usd == row.input_tokens * Decimal("0.10") / Decimal(1_000_000)


async def test_anthropic_has_no_embeddings(
    gateway_app: Any, db: AsyncSession, org: Org, anthropic_upstream: Upstream
) -> None:
    await add_model(
        db, org, "claude-embed", org.anthropic_provider_id, "claude-x", capabilities=["embeddings"]
    )
    anthropic_upstream.clear()
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.embeddings.create(model="claude-embed", input="hello")
    assert caught.value.code == "unsupported_operation"
    assert "Anthropic" in caught.value.response.json()["error"]["message"]
    assert anthropic_upstream.requests == []
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.operation, row.http_status, row.error_type, row.provider_kind) == (
        "embedding",
        400,
        "unsupported_operation",
        "anthropic",
    )
    assert (row.input_tokens, row.cost_usd) == (0, Decimal(0))


async def test_embeddings_upstream_error(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "embed-broken", org.openai_provider_id, "text-embedding-error-500",
                    capabilities=["embeddings"])  # fmt: skip
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.embeddings.create(model="embed-broken", input="x")
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.operation, row.http_status, row.error_type) == ("embedding", 502, "upstream_error")
