"""Streamed chat completions: pass-through of the upstream's events, usage, estimates, breaks, timing."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.gateway import tokencount
from tests.gateway.conftest import Org, add_model, client_for, records
from tests.gateway.live import (  # noqa: F401
    LiveServer,
    add_live_model,
    arrange,
    fast_passwords,
    live_db_fixture,
    live_server_fixture,
    live_session_fixture,
)
from tests.upstream import Upstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
MILLION = Decimal(1_000_000)


def toks(n: int) -> list[str]:
    return [f"tok{i} " for i in range(n)]


def cost(input_tokens: int, output_tokens: int) -> Decimal:
    return (input_tokens * Decimal("2.50") + output_tokens * Decimal(10)) / MILLION


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


async def drain(stream: Any, received: list[str]) -> None:
    """Read a stream to its end, keeping the text that arrived (also when it ends with an error)."""
    async for chunk in stream:
        received.append(chunk.choices[0].delta.content or "")


# --- OpenAI pass-through ----------------------------------------------------------------------


async def test_stream_without_include_usage(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    chunks = await collect(stream)

    # role chunk, 20 content chunks, finish chunk; no usage chunk since the caller did not ask for it
    assert len(chunks) == 22
    assert all(c.usage is None for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:21]] == toks(20)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" for c in chunks)

    # Cockpit always asks the upstream for usage, for metering.
    [sent] = upstream.requests
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.headers["accept"] == "text/event-stream"

    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.http_status, row.stream, row.operation) == ("success", 200, True, "chat")
    assert (row.input_tokens, row.output_tokens, row.cached_tokens) == (7, 20, 0)
    assert row.tokens_estimated is False
    assert row.cost_usd == Decimal("0.0002175")  # 7 x 2.50 + 20 x 10 micro-dollars
    assert row.ttft_ms is not None
    assert 0 <= row.ttft_ms <= row.latency_ms
    assert row.upstream_id == chunks[0].id
    assert row.error_type is None


async def test_stream_with_include_usage(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-five", org.openai_provider_id, "gpt-4o-mini-chunks-5")
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(
        model="gpt-five",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = await collect(stream)
    assert len(chunks) == 8  # role, 5 contents, finish, usage
    assert [c.choices[0].delta.content for c in chunks[1:6]] == toks(5)
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (7, 5)
    assert all(c.usage is None for c in chunks[:-1])
    [sent] = upstream.requests
    assert sent.json["model"] == "gpt-4o-mini-chunks-5"
    assert sent.json["stream_options"] == {"include_usage": True}

    [row] = await records(gateway_app, db, org.account_id)
    assert (row.input_tokens, row.output_tokens) == (7, 5)
    assert row.cost_usd == cost(7, 5) == Decimal("0.0000675")
    assert row.model == "gpt-five"


async def test_stream_include_usage_false_is_kept_and_usage_hidden(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-two", org.openai_provider_id, "gpt-4o-mini-chunks-2")
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(
        model="gpt-two",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": False},
    )
    chunks = await collect(stream)
    assert len(chunks) == 4
    assert all(c.usage is None for c in chunks)
    [sent] = upstream.requests
    assert sent.json["stream_options"] == {"include_usage": True}
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.input_tokens, row.output_tokens, row.tokens_estimated) == (7, 2, False)


async def test_stream_without_upstream_usage_is_estimated(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-nousage", org.openai_provider_id, "gpt-4o-mini-nousage-chunks-6")
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(
        model="gpt-nousage",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = await collect(stream)
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(toks(6))

    [row] = await records(gateway_app, db, org.account_id)
    assert row.status == "success"
    assert row.tokens_estimated is True
    upstream_model = "gpt-4o-mini-nousage-chunks-6"
    expected_output = tokencount.count_text("".join(toks(6)), model=upstream_model)
    expected_input = tokencount.count_input(
        {
            "model": "gpt-nousage",
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        model=upstream_model,
        operation="chat",
    )
    assert row.output_tokens == expected_output > 0
    assert row.input_tokens == expected_input > 0
    assert row.cost_usd == cost(expected_input, expected_output)


async def test_stream_cut_by_the_upstream(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-cut", org.openai_provider_id, "gpt-4o-mini-cut-3")
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(model="gpt-cut", messages=HELLO, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        await drain(stream, received)
    # The chunks that arrived, then an error event that the openai client raises.
    assert "".join(received) == "".join(toks(3))
    assert caught.value.code == "upstream_stream_interrupted"
    assert caught.value.type == "upstream_error"
    assert not isinstance(caught.value, openai.APIStatusError)  # the status line was already 200

    [row] = await records(gateway_app, db, org.account_id)
    assert row.status == "error"
    assert row.error_type == "upstream_stream_interrupted"
    assert row.http_status == 200
    assert row.tokens_estimated is True
    assert row.output_tokens == tokencount.count_text("".join(toks(3)), model="gpt-4o-mini-cut-3") > 0
    body = {"model": "gpt-cut", "messages": HELLO, "stream": True}
    assert row.input_tokens == tokencount.count_input(body, model="gpt-4o-mini-cut-3", operation="chat")
    assert row.cost_usd == cost(row.input_tokens, row.output_tokens)


async def test_stream_upstream_error_before_the_first_byte(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-broken", org.openai_provider_id, "gpt-4o-mini-error-503")
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-broken", messages=HELLO, stream=True)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_error"
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.http_status, row.stream, row.error_type) == ("error", 502, True, "upstream_error")
    assert (row.input_tokens, row.output_tokens, row.tokens_estimated) == (0, 0, False)


# --- Anthropic and simulated --------------------------------------------------------------------


async def test_anthropic_stream_is_translated(
    gateway_app: Any, db: AsyncSession, org: Org, anthropic_upstream: Upstream
) -> None:
    await add_model(db, org, "claude-four", org.anthropic_provider_id, "claude-chunks-4")
    anthropic_upstream.clear()
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(
        model="claude-four",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = await collect(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert text == toks(4)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1
    assert (usage[0].prompt_tokens, usage[0].completion_tokens, usage[0].total_tokens) == (7, 4, 11)
    assert all(c.model == "claude-four" for c in chunks)

    [sent] = anthropic_upstream.requests
    assert sent.path == "/v1/messages"
    assert sent.json["stream"] is True
    assert sent.json["model"] == "claude-chunks-4"

    [row] = await records(gateway_app, db, org.account_id)
    assert (row.provider_kind, row.status, row.stream) == ("anthropic", "success", True)
    assert (row.input_tokens, row.output_tokens, row.tokens_estimated) == (7, 4, False)
    assert row.cost_usd == cost(7, 4)
    assert row.ttft_ms is not None
    assert row.ttft_ms >= 0
    assert row.upstream_id is not None
    assert row.upstream_id.startswith("msg_up_")


async def test_anthropic_stream_without_usage_chunk(
    gateway_app: Any, db: AsyncSession, org: Org, anthropic_upstream: Upstream
) -> None:
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(model="claude-sonnet", messages=HELLO, stream=True)
    chunks = await collect(stream)
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(toks(20))
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.input_tokens, row.output_tokens) == (7, 20)


async def test_simulated_stream(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(
        model="sim-chat",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = await collect(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    usage = chunks[-1].usage
    assert usage is not None
    assert chunks[-1].choices == []
    assert usage.completion_tokens == tokencount.count_text(text, model="sim-chat")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"

    [row] = await records(gateway_app, db, org.account_id)
    assert (row.provider_kind, row.status, row.stream) == ("simulated", "success", True)
    assert (row.input_tokens, row.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert row.tokens_estimated is False
    assert row.cost_usd == cost(usage.prompt_tokens, usage.completion_tokens)
    assert row.ttft_ms is not None


async def test_simulated_stream_hides_usage_unless_asked(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(model="sim-chat", messages=HELLO, stream=True)
    chunks = await collect(stream)
    assert all(c.usage is None for c in chunks)
    [row] = await records(gateway_app, db, org.account_id)
    assert row.output_tokens > 0
    assert row.tokens_estimated is False


# --- timing, over real HTTP ---------------------------------------------------------------------


async def test_chunks_are_relayed_as_they_arrive(
    live_server: LiveServer, live_session: Any, upstream: Upstream
) -> None:
    from tests.gateway.conftest import UPSTREAM_KEY

    org = await arrange(live_session, upstream, UPSTREAM_KEY)
    name = "gpt-4o-mini-chunks-3-chunkdelay-1000"
    await add_live_model(live_session, org, name)
    client = openai.AsyncOpenAI(base_url=live_server.base_url + "/v1", api_key=org.token, max_retries=0)
    try:
        started = time.perf_counter()
        stream = await client.chat.completions.create(model=name, messages=HELLO, stream=True)
        arrivals: list[tuple[float, str | None]] = []
        async for chunk in stream:
            arrivals.append((time.perf_counter() - started, chunk.choices[0].delta.content))
        total = time.perf_counter() - started
    finally:
        await client.close()
    assert [text for _, text in arrivals][1:4] == toks(3)
    first_content = arrivals[1][0]
    assert total >= 2.0, arrivals
    # Two 1 s gaps upstream: a gateway that buffered the stream would hand the three chunks over
    # together. Lower bounds only (a busy machine can delay a chunk, never bring it forward); the
    # 0.5 s of slack absorbs a stalled first chunk.
    assert arrivals[3][0] - first_content >= 1.5, arrivals


async def test_anthropic_stream_cut_by_the_upstream(
    gateway_app: Any, db: AsyncSession, org: Org, anthropic_upstream: Upstream
) -> None:
    await add_model(db, org, "claude-cut", org.anthropic_provider_id, "claude-cut-2")
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(model="claude-cut", messages=HELLO, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        await drain(stream, received)
    assert "".join(received) == "".join(toks(2))
    assert caught.value.code == "upstream_stream_interrupted"
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.error_type, row.provider_kind) == (
        "error",
        "upstream_stream_interrupted",
        "anthropic",
    )
    assert row.output_tokens == tokencount.count_text("".join(toks(2)), model="claude-cut-2")
    assert row.output_tokens > 0
    assert row.tokens_estimated is True
    assert row.input_tokens > 0
