"""JSON chat completions through the gateway: OpenAI pass-through, Anthropic translation, simulated."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import ApiToken
from cockpit.authz.actor import Actor
from cockpit.gateway import tokencount
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from tests.conftest import TEST_SECRET
from tests.gateway.conftest import ANTHROPIC_KEY, UPSTREAM_KEY, Org, add_model, client_for, records
from tests.gateway.live import fast_passwords  # noqa: F401
from tests.upstream import Upstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


async def token_id(db: AsyncSession, raw: str) -> uuid.UUID:
    token = await db.scalar(select(ApiToken).where(ApiToken.prefix == raw[:10]))
    assert token is not None
    return token.id


# --- OpenAI pass-through ----------------------------------------------------------------------


async def test_openai_chat_answer_usage_and_record(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    answer = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert answer.choices[0].message.content == "Hello from upstream."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.id.startswith("chatcmpl-up-")
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        7,
        5,
        12,
    )

    [row] = await records(gateway_app, db, org.account_id)
    model = await db.scalar(
        select(ApiToken).where(ApiToken.prefix == org.member_token[:10])  # the caller's token
    )
    assert model is not None
    assert row.model == "gpt-4o-mini"
    assert row.model_id is not None
    assert row.provider_id == org.openai_provider_id
    assert row.provider_kind == "openai"
    assert row.operation == "chat"
    assert row.stream is False
    assert row.status == "success"
    assert row.http_status == 200
    assert row.error_type is None
    assert row.error_message is None
    assert (row.input_tokens, row.output_tokens, row.cached_tokens) == (7, 5, 0)
    assert row.tokens_estimated is False
    assert row.cost_usd == Decimal("0.0000675")  # 7 x $2.50/M + 5 x $10/M
    assert row.latency_ms >= 0
    assert row.ttft_ms is not None
    assert row.ttft_ms >= 0
    assert row.user_id == org.member.id
    assert row.group_id == org.member.group_id
    assert row.api_token_id == model.id
    assert row.upstream_id == answer.id
    assert row.project_id is None
    assert row.agent_id is None
    assert row.request_content is None
    assert row.response_content is None


async def test_openai_request_sent_upstream(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "house-model", org.openai_provider_id, "gpt-4o-2024-08-06")
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(
        model="house-model",
        messages=HELLO,
        temperature=0.25,
        max_tokens=17,
        extra_body={"foo": 1, "logit_bias": {"50256": -100}},
    )

    [sent] = upstream.requests
    assert sent.method == "POST"
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert org.member_token not in sent.body.decode()
    assert org.member_token not in json.dumps(sent.headers)
    assert sent.json["model"] == "gpt-4o-2024-08-06"
    assert sent.json["messages"] == HELLO
    assert sent.json["temperature"] == 0.25
    assert sent.json["max_tokens"] == 17
    assert sent.json["foo"] == 1  # unknown parameters pass through to an OpenAI-compatible provider
    assert sent.json["logit_bias"] == {"50256": -100}
    assert "stream_options" not in sent.json

    [row] = await records(gateway_app, db, org.account_id)
    assert row.model == "house-model"
    assert row.cost_usd == Decimal("0.0000675")


async def test_two_messages_double_the_input_tokens(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    client = client_for(gateway_app, org.admin_token)
    answer = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
    )
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == 14
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.input_tokens, row.output_tokens) == (14, 5)
    assert row.cost_usd == Decimal("0.000085")  # 14 x 2.50 + 5 x 10 = 85 micro-dollars
    assert row.user_id == org.admin.id


async def test_cached_tokens_are_priced_at_the_cached_price(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-cached", org.openai_provider_id, "gpt-4o-mini-cached-3")
    client = client_for(gateway_app, org.member_token)
    answer = await client.chat.completions.create(model="gpt-cached", messages=HELLO)
    assert answer.usage is not None
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 3

    [row] = await records(gateway_app, db, org.account_id)
    assert (row.input_tokens, row.output_tokens, row.cached_tokens) == (7, 5, 3)
    # 4 uncached x $2.50/M + 3 cached x $1.25/M + 5 output x $10/M = 63.75 micro-dollars
    assert row.cost_usd == Decimal("0.00006375")


async def test_cached_tokens_without_cached_price_cost_the_input_price(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(
        db,
        org,
        "gpt-nocacheprice",
        org.openai_provider_id,
        "gpt-4o-mini-cached-3",
        cached_input_price_per_million=Decimal(0),
    )
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-nocacheprice", messages=HELLO)
    [row] = await records(gateway_app, db, org.account_id)
    assert row.cached_tokens == 3
    assert row.cost_usd == Decimal("0.0000675")


async def test_json_without_upstream_usage_is_estimated(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-nousage", org.openai_provider_id, "gpt-4o-mini-nousage")
    client = client_for(gateway_app, org.member_token)
    answer = await client.chat.completions.create(model="gpt-nousage", messages=HELLO)
    assert answer.usage is None
    assert answer.choices[0].message.content == "Hello from upstream."
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.http_status) == ("success", 200)
    # The answer reached Cockpit: the tokens are counted instead of reported.
    assert row.tokens_estimated is True
    expected_input = tokencount.count_input(
        {"model": "gpt-nousage", "messages": HELLO}, model="gpt-4o-mini-nousage", operation="chat"
    )
    assert row.input_tokens == expected_input > 0


async def test_json_without_upstream_usage_counts_the_answer_tokens(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-nousage", org.openai_provider_id, "gpt-4o-mini-nousage")
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-nousage", messages=HELLO)
    [row] = await records(gateway_app, db, org.account_id)
    expected = tokencount.count_text("Hello from upstream.", model="gpt-4o-mini-nousage")
    assert expected > 0
    assert row.output_tokens == expected


# --- forbidden fields -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["api_key", "base_url"])
async def test_forbidden_fields_are_refused_before_anything_goes_upstream(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream, field: str
) -> None:
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            extra_body={field: "http://evil.example/v1" if field == "base_url" else "sk-mine"},
        )
    assert caught.value.status_code == 400
    assert caught.value.code == "forbidden_parameter"
    assert caught.value.param == field
    assert upstream.requests == []
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.http_status, row.error_type) == ("error", 400, "forbidden_parameter")
    assert (row.input_tokens, row.output_tokens, row.cost_usd) == (0, 0, Decimal(0))


# --- Anthropic translation --------------------------------------------------------------------


async def test_anthropic_chat_is_translated(
    gateway_app: Any, db: AsyncSession, org: Org, anthropic_upstream: Upstream
) -> None:
    anthropic_upstream.clear()
    client = client_for(gateway_app, org.member_token)
    answer = await client.chat.completions.create(
        model="claude-sonnet",
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        max_tokens=64,
        extra_body={"foo": 1},
    )
    assert answer.object == "chat.completion"
    assert answer.model == "claude-sonnet"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == "Hello from upstream."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    # The system prompt is Anthropic's ``system`` parameter: one message upstream.
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        7,
        5,
        12,
    )

    [sent] = anthropic_upstream.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert org.member_token not in sent.body.decode()
    assert sent.json["model"] == "claude-sonnet-4-5"
    assert sent.json["max_tokens"] == 64
    assert sent.json["system"] == "Be brief."
    assert sent.json["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}]
    assert "foo" not in sent.json  # unknown parameters are not passed to Anthropic

    [row] = await records(gateway_app, db, org.account_id)
    assert row.model == "claude-sonnet"
    assert row.provider_id == org.anthropic_provider_id
    assert row.provider_kind == "anthropic"
    assert (row.status, row.http_status, row.operation) == ("success", 200, "chat")
    assert (row.input_tokens, row.output_tokens, row.cached_tokens) == (7, 5, 0)
    assert row.cost_usd == Decimal("0.0000675")
    assert row.upstream_id is not None
    assert row.upstream_id.startswith("msg_up_")


async def test_anthropic_cached_tokens(
    gateway_app: Any, db: AsyncSession, org: Org, anthropic_upstream: Upstream
) -> None:
    await add_model(db, org, "claude-cached", org.anthropic_provider_id, "claude-cached-4")
    client = client_for(gateway_app, org.member_token)
    answer = await client.chat.completions.create(model="claude-cached", messages=HELLO)
    assert answer.usage is not None
    [row] = await records(gateway_app, db, org.account_id)
    # Anthropic's input_tokens (7) exclude the cache reads (4); OpenAI's prompt_tokens include them.
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (11, 5)
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 4
    assert (row.input_tokens, row.output_tokens, row.cached_tokens) == (11, 5, 4)
    assert row.cost_usd == Decimal("0.0000725")  # 7 x 2.50 + 4 x 1.25 + 5 x 10 micro-dollars


async def test_anthropic_default_max_tokens_is_sent(
    gateway_app: Any, db: AsyncSession, org: Org, anthropic_upstream: Upstream
) -> None:
    anthropic_upstream.clear()
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="claude-sonnet", messages=HELLO)
    [sent] = anthropic_upstream.requests
    assert sent.json["max_tokens"] == 4096  # Anthropic requires one; the default when none is given


# --- simulated --------------------------------------------------------------------------------


async def test_simulated_chat(gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream) -> None:
    upstream.clear()
    anthropic_before = len(upstream.requests)
    client = client_for(gateway_app, org.member_token)
    answer = await client.chat.completions.create(model="sim-chat", messages=HELLO)
    assert answer.model == "sim-chat"
    assert answer.choices[0].message.content
    assert answer.usage is not None
    content = answer.choices[0].message.content
    assert content is not None
    # Around the provider's output_tokens setting (40, +-50%), counted exactly.
    assert answer.usage.completion_tokens == tokencount.count_text(content, model="sim-chat")
    assert 20 <= answer.usage.completion_tokens <= 60
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert len(upstream.requests) == anthropic_before == 0  # nothing leaves the process

    [row] = await records(gateway_app, db, org.account_id)
    assert row.provider_kind == "simulated"
    assert row.provider_id == org.simulated_provider_id
    assert (row.status, row.http_status) == ("success", 200)
    assert (row.input_tokens, row.output_tokens) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    assert row.tokens_estimated is False
    expected = (row.input_tokens * Decimal("2.50") + row.output_tokens * Decimal(10)) / Decimal(1_000_000)
    assert row.cost_usd == expected
    assert row.upstream_id == answer.id


async def test_records_carry_the_caller_token(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await client_for(gateway_app, org.member_token).chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
    )
    await client_for(gateway_app, org.admin_token).chat.completions.create(
        model="sim-chat",
        messages=HELLO,
    )
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.user_id, r.api_token_id, r.model) for r in rows] == [
        (org.member.id, await token_id(db, org.member_token), "gpt-4o-mini"),
        (org.admin.id, await token_id(db, org.admin_token), "sim-chat"),
    ]


async def test_anthropic_max_tokens_is_capped_by_the_model(
    gateway_app: Any, db: AsyncSession, org: Org, anthropic_upstream: Upstream
) -> None:
    await add_model(
        db, org, "claude-short", org.anthropic_provider_id, "claude-short-1", max_output_tokens=100
    )
    client = client_for(gateway_app, org.member_token)
    anthropic_upstream.clear()
    await client.chat.completions.create(model="claude-short", messages=HELLO, max_tokens=500)
    await client.chat.completions.create(model="claude-short", messages=HELLO, max_completion_tokens=50)
    await client.chat.completions.create(model="claude-short", messages=HELLO)
    assert [r.json["max_tokens"] for r in anthropic_upstream.requests] == [100, 50, 100]


async def test_azure_style_key_header_and_query_parameters(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    """Provider settings api_key_header and query_params (Azure-style deployments)."""
    actor = Actor.system(org.account_id)
    provider = await providers.create_provider(
        db,
        actor,
        name="Azure-style",
        kind=ProviderKind.openai,
        secret_key=TEST_SECRET,
        allow_private=True,
        base_url=upstream.base_url + "/v1",
        api_key="azure-key-0123456789",
        settings={"api_key_header": "api-key", "query_params": {"api-version": "2024-10-21"}},
    )
    await db.commit()
    await add_model(db, org, "azure-gpt", provider.id, "gpt-4o-mini")
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.APIStatusError):  # the local upstream wants a Bearer key: refused, as expected
        await client.chat.completions.create(model="azure-gpt", messages=HELLO)

    [sent] = upstream.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.query == "api-version=2024-10-21"
    assert sent.headers["api-key"] == "azure-key-0123456789"
    assert "authorization" not in sent.headers
