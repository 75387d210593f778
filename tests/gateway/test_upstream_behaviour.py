"""Upstreams that misbehave, through the gateway: interim 1xx answers, a connection dropped after a
POST, slow trickling answers, a provider error event that quotes the key, an event that never ends,
a connection closed mid-body, and calls through a forward proxy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.app import create_app
from cockpit.authz.actor import Actor
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from tests.conftest import TEST_SECRET, make_settings
from tests.gateway.conftest import ANTHROPIC_KEY, UPSTREAM_KEY, Org, add_model, client_for, records
from tests.gateway.live import fast_passwords  # noqa: F401
from tests.upstream import ForwardProxy, Upstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


def raw_client(app: Any, token: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"authorization": f"Bearer {token}"},
    )


async def drain(stream: Any, received: list[str]) -> None:
    async for chunk in stream:
        received.append(chunk.choices[0].delta.content or "")


def events(text: str) -> list[Any]:
    """The JSON payloads of an SSE body (``[DONE]`` as the string)."""
    found = []
    for event in text.split("\n\n"):
        for line in event.split("\n"):
            if line.startswith("data: "):
                payload = line[len("data: ") :]
                found.append(payload if payload == "[DONE]" else json.loads(payload))
    return found


async def test_an_interim_103_is_skipped(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await add_model(db, org, "gpt-hints", org.openai_provider_id, "gpt-4o-mini-earlyhints")
    client = client_for(gateway_app, org.member_token)
    answers = [await client.chat.completions.create(model="gpt-hints", messages=HELLO) for _ in range(3)]
    assert [a.choices[0].message.content for a in answers] == ["Hello from upstream."] * 3
    assert len({a.id for a in answers}) == 3  # each call got its own answer, not the previous one's
    stream = await client.chat.completions.create(model="gpt-hints", messages=HELLO, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text.startswith("tok0 tok1 ")
    rows = await records(gateway_app, db, org.account_id)
    assert [r.status for r in rows] == ["success"] * 4


async def test_a_post_is_sent_once_when_the_upstream_drops_the_connection(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-drop", org.openai_provider_id, "gpt-4o-mini-drop")
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # a pooled connection
    before = upstream.received
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="gpt-drop", messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_unavailable"
    assert upstream.received == before + 1  # never sent again on another connection
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.status, r.http_status) for r in rows] == [("success", 200), ("error", 502)]


async def test_a_trickling_answer_longer_than_the_read_timeout(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    """Every silence is short (60 ms), the whole answer takes longer than the 1 s read timeout."""
    provider = await providers.create_provider(
        db, Actor.system(org.account_id), name="Patient", kind=ProviderKind.openai, secret_key=TEST_SECRET,
        allow_private=True, base_url=upstream.base_url + "/v1", api_key=UPSTREAM_KEY,
        settings={"timeout_seconds": 1.0},
    )  # fmt: skip
    await db.commit()
    await add_model(db, org, "gpt-trickle", provider.id, "gpt-4o-mini-chunks-8-trickle-60")
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(
        model="gpt-trickle", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(
        f"tok{i} " for i in range(8)
    )
    assert chunks[-1].usage is not None
    answer = await client.chat.completions.create(model="gpt-trickle", messages=HELLO)
    assert answer.choices[0].message.content == "Hello from upstream."
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.status, r.output_tokens) for r in rows] == [("success", 8), ("success", 5)]


@pytest.mark.parametrize(
    ("model", "upstream_model", "key"),
    [
        ("gpt-leak", "gpt-4o-mini-chunks-4-leak-2", UPSTREAM_KEY),
        ("claude-leak", "claude-sonnet-4-5-chunks-4-leak-2", ANTHROPIC_KEY),
    ],
)
async def test_a_streamed_provider_error_never_carries_the_key(
    gateway_app: Any, db: AsyncSession, org: Org, model: str, upstream_model: str, key: str
) -> None:
    provider_id = org.openai_provider_id if model.startswith("gpt") else org.anthropic_provider_id
    await add_model(db, org, model, provider_id, upstream_model)
    async with raw_client(gateway_app, org.member_token) as http:
        response = await http.post(
            "/v1/chat/completions", json={"model": model, "messages": HELLO, "stream": True}
        )
    assert response.status_code == 200
    assert key not in response.text
    sent = events(response.text)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in sent[:-1] if e["choices"]) == (
        "tok0 tok1 "
    )
    error = sent[-1]["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")
    assert error["message"].startswith("The upstream provider reported an error: quota exceeded for key")
    assert "[api key]" in error["message"]
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.error_type) == ("error", "upstream_error")
    assert row.error_message is not None
    assert key not in row.error_message


async def test_an_event_that_never_ends_is_cut_at_one_mib(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    await add_model(db, org, "gpt-runon", org.openai_provider_id, "gpt-4o-mini-runon-1100")
    async with raw_client(gateway_app, org.member_token) as http:
        response = await http.post(
            "/v1/chat/completions", json={"model": "gpt-runon", "messages": HELLO, "stream": True}
        )
    assert len(response.content) < 64 * 1024  # the run-on event was never sent on
    error = events(response.text)[-1]["error"]
    assert error["code"] == "upstream_stream_interrupted"
    assert "larger than 1 MiB" in error["message"]
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.error_type) == ("error", "upstream_stream_interrupted")


async def test_a_connection_closed_mid_body(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await add_model(db, org, "gpt-halfjson", org.openai_provider_id, "gpt-4o-mini-cut-1")
    await add_model(db, org, "gpt-halfstream", org.openai_provider_id, "gpt-4o-mini-cut-2")
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="gpt-halfjson", messages=HELLO)
    assert caught.value.code == "upstream_unavailable"
    assert "broke in the middle of the answer" in caught.value.message
    stream = await client.chat.completions.create(model="gpt-halfstream", messages=HELLO, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as broke:
        await drain(stream, received)
    assert "".join(received) == "tok0 tok1 "
    assert broke.value.code == "upstream_stream_interrupted"
    # The pool recovers: the next call gets its answer.
    answer = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "Hello from upstream."


async def test_calls_go_through_the_configured_proxy(
    database_url: str, tmp_path: Path, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    async with ForwardProxy() as proxy:
        settings = make_settings(
            database_url,
            tmp_path,
            allow_private_upstreams=True,
            upstream_proxy=proxy.url,
            usage_flush_seconds=3600.0,
        )
        app = create_app(settings)
        try:
            client = client_for(app, org.member_token)
            answer = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            assert answer.choices[0].message.content == "Hello from upstream."
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
            assert len([chunk async for chunk in stream]) > 20
            assert proxy.forwarded == [f"POST {upstream.base_url}/v1/chat/completions"] * 2
            rows = await records(app, db, org.account_id)
            assert [r.status for r in rows] == ["success", "success"]
        finally:
            await app.state.recorder.stop()
            await app.state.gateway.aclose()
            await app.state.engine.dispose()


async def test_a_slow_caller_does_not_make_the_upstream_time_out(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    """The caller takes a piece of the stream longer than the read timeout (1 s) after it came,
    while the upstream sends every 300 ms: the upstream was never silent that long, so the stream
    completes (the old transport counted the caller's time against the upstream)."""
    provider = await providers.create_provider(
        db, Actor.system(org.account_id), name="Steady", kind=ProviderKind.openai, secret_key=TEST_SECRET,
        allow_private=True, base_url=upstream.base_url + "/v1", api_key=UPSTREAM_KEY,
        settings={"timeout_seconds": 1.0},
    )  # fmt: skip
    await db.commit()
    await add_model(db, org, "gpt-steady", provider.id, "gpt-4o-mini-chunks-4-chunkdelay-300")
    gateway = gateway_app.state.gateway
    route = (await gateway.directory.catalog(org.account_id)).routes["gpt-steady"]
    body = {"model": "gpt-steady", "messages": HELLO, "stream": True}
    call = gateway._call(route, body, "chat", True, False)
    chunks = await gateway.upstreams.start_stream(call)
    received = [await anext(chunks)]
    await asyncio.sleep(1.6)  # a caller reading slowly: the relay waits at its first piece
    received += [piece async for piece in chunks]
    text = b"".join(received).decode()
    assert call.failure is None
    assert "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events(text) if e != "[DONE]" and e["choices"]
    ) == ("tok0 tok1 tok2 tok3 ")
    assert text.endswith("data: [DONE]\n\n")
