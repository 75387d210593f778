"""Gateway errors as the official openai client sees them: exception types, status codes, codes, records."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import ApiToken
from cockpit.auth.tokens import revoke_token
from cockpit.authz.actor import Actor
from cockpit.kit.time import utcnow
from cockpit.membership.service import deactivate_user
from cockpit.providers import service as providers
from cockpit.providers.models import Model, ProviderKind
from cockpit.users.models import User, UserStatus
from tests.builders import make_token
from tests.conftest import TEST_SECRET
from tests.gateway.conftest import UPSTREAM_KEY, Org, add_model, client_for, records
from tests.gateway.live import fast_passwords, free_port  # noqa: F401
from tests.upstream import Upstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


def error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    """The whole JSON body of an error answer, checked for the OpenAI shape."""
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) >= {"message", "type", "code"}
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


async def chat(app: Any, token: str, model: str = "gpt-4o-mini", **kwargs: Any) -> Any:
    return await client_for(app, token).chat.completions.create(model=model, messages=HELLO, **kwargs)


async def drain(stream: Any, received: list[str]) -> None:
    async for chunk in stream:
        received.append(chunk.choices[0].delta.content or "")


def raw_client(app: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gateway")


async def token_row(db: AsyncSession, raw: str) -> ApiToken:
    token = await db.scalar(select(ApiToken).where(ApiToken.prefix == raw[:10]))
    assert token is not None
    return token


# --- who is calling -----------------------------------------------------------------------------


async def test_missing_token(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    async with raw_client(gateway_app) as http:
        response = await http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")
    assert "Missing API token" in error["message"]
    assert await records(gateway_app, db, org.account_id) == []


@pytest.mark.parametrize("token", ["garbage", "ck_not-a-real-token-0123456789abcdef"])
async def test_garbage_token(gateway_app: Any, db: AsyncSession, org: Org, token: str) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        await chat(gateway_app, token)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert error_body(caught.value)["message"].startswith("Invalid API token")
    assert await records(gateway_app, db, org.account_id) == []


async def test_revoked_token_is_refused_at_once(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await chat(gateway_app, org.member_token)  # the caller is now cached
    token = await token_row(db, org.member_token)
    await revoke_token(db, Actor.system(org.account_id), token.id)
    await db.commit()
    with pytest.raises(openai.AuthenticationError) as caught:
        await chat(gateway_app, org.member_token)
    assert caught.value.code == "invalid_api_key"
    rows = await records(gateway_app, db, org.account_id)
    assert [r.status for r in rows] == ["success"]  # the refused call has no record


async def test_deactivated_user_is_refused_at_once(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await chat(gateway_app, org.member_token)
    await deactivate_user(db, Actor.system(org.account_id), org.member.id)
    await db.commit()
    with pytest.raises(openai.AuthenticationError) as caught:
        await chat(gateway_app, org.member_token)
    assert caught.value.status_code == 401
    user = await db.get(User, org.member.id)
    assert user is not None
    assert user.status is UserStatus.deactivated
    # The admin's token is unaffected.
    answer = await chat(gateway_app, org.admin_token)
    assert answer.choices[0].message.content == "Hello from upstream."


async def test_expired_token(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    raw = await make_token(db, org.member, scopes=("gateway",), expires_at=utcnow() + timedelta(hours=1))
    await chat(gateway_app, raw)
    token = await token_row(db, raw)
    token.expires_at = utcnow() - timedelta(seconds=1)
    await db.commit()
    with pytest.raises(openai.AuthenticationError) as caught:
        await chat(gateway_app, raw)
    assert error_body(caught.value)["message"] == "This API token has expired."


async def test_token_without_gateway_scope(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    raw = await make_token(db, org.admin, scopes=("admin",))
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await chat(gateway_app, raw)
    assert caught.value.status_code == 403
    assert caught.value.code == "insufficient_scope"
    assert error_body(caught.value)["type"] == "permission_error"
    assert await records(gateway_app, db, org.account_id) == []


# --- models -------------------------------------------------------------------------------------


async def test_unknown_model_is_404_and_recorded(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await chat(gateway_app, org.member_token, model="gpt-nope")
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert "gpt-nope" in error_body(caught.value)["message"]
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.http_status, row.error_type, row.model) == (
        "error",
        404,
        "model_not_found",
        "gpt-nope",
    )
    assert row.model_id is None
    assert row.provider_id is None
    assert row.provider_kind is None
    assert (row.input_tokens, row.output_tokens, row.cost_usd) == (0, 0, Decimal(0))
    assert row.user_id == org.member.id


async def test_disabled_model_is_404(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    model = await db.scalar(
        select(Model).where(Model.account_id == org.account_id, Model.name == "gpt-4o-mini")
    )
    assert model is not None
    await providers.edit_model(db, Actor.system(org.account_id), model.id, changes={"enabled": False})
    await db.commit()
    with pytest.raises(openai.NotFoundError) as caught:
        await chat(gateway_app, org.member_token)
    assert caught.value.code == "model_not_found"
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.http_status, row.error_type) == (404, "model_not_found")


# --- invalid requests ---------------------------------------------------------------------------


INVALID_BODIES: list[tuple[dict[str, Any], str, str]] = [
    ({"model": "gpt-4o-mini"}, "messages", "'messages' must be a non-empty array."),
    ({"model": "gpt-4o-mini", "messages": []}, "messages", "'messages' must be a non-empty array."),
    ({"model": "gpt-4o-mini", "messages": "hi"}, "messages", "'messages' must be a non-empty array."),
    ({"model": "gpt-4o-mini", "messages": [{"content": "x"}]}, "messages[0]",
     "messages[0] must be an object with a 'role'."),
    ({"model": "gpt-4o-mini", "messages": HELLO, "stream": "yes"}, "stream",
     "'stream' must be true or false."),
    ({"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 0}, "max_tokens",
     "'max_tokens' must be a positive integer."),
    ({"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 2.5}, "max_tokens",
     "'max_tokens' must be a positive integer."),
    ({"model": "gpt-4o-mini", "messages": HELLO, "max_completion_tokens": True}, "max_completion_tokens",
     "'max_completion_tokens' must be a positive integer."),
    ({"model": "gpt-4o-mini", "messages": HELLO, "stream_options": {"include_usage": True}}, "stream_options",
     "'stream_options' is only allowed when 'stream' is true."),
    ({"model": "gpt-4o-mini", "messages": HELLO, "stream": True, "stream_options": [1]}, "stream_options",
     "'stream_options' must be an object."),
    ({"messages": HELLO}, "model", "'model' is required and must be a string."),
    ({"model": 42, "messages": HELLO}, "model", "'model' is required and must be a string."),
]  # fmt: skip


async def test_invalid_bodies(gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream) -> None:
    upstream.clear()
    client = client_for(gateway_app, org.member_token)
    for body, param, message in INVALID_BODIES:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.post("/chat/completions", body=body, cast_to=object)
        assert caught.value.status_code == 400, body
        assert caught.value.param == param, body
        error = error_body(caught.value)
        assert (error["type"], error["message"]) == ("invalid_request_error", message), body
    assert upstream.requests == []
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.status, r.http_status, r.operation) for r in rows] == [("error", 400, "chat")] * len(
        INVALID_BODIES
    )
    assert [r.error_type for r in rows] == [
        "missing_model" if param == "model" else "invalid_request" for _, param, _ in INVALID_BODIES
    ]
    assert {(r.input_tokens, r.output_tokens, r.cost_usd) for r in rows} == {(0, 0, Decimal(0))}


async def test_max_tokens_zero_through_create(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await chat(gateway_app, org.member_token, max_tokens=0)
    assert caught.value.param == "max_tokens"
    assert error_body(caught.value)["message"] == "'max_tokens' must be a positive integer."


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]"])
async def test_malformed_json(gateway_app: Any, db: AsyncSession, org: Org, content: bytes) -> None:
    async with raw_client(gateway_app) as http:
        response = await http.post(
            "/v1/chat/completions",
            content=content,
            headers={"authorization": f"Bearer {org.member_token}", "content-type": "application/json"},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_json")
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.http_status, row.error_type, row.model) == ("error", 400, "invalid_json", "")


async def test_embeddings_on_a_chat_model(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.embeddings.create(model="gpt-4o-mini", input="hello")
    assert caught.value.code == "unsupported_operation"
    assert error_body(caught.value)["message"] == "The model 'gpt-4o-mini' does not support embeddings."
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.operation, row.http_status, row.error_type) == ("embedding", 400, "unsupported_operation")


async def test_chat_on_an_embeddings_model(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await chat(gateway_app, org.member_token, model="embed-small")
    assert caught.value.code == "unsupported_operation"


# --- upstream failures --------------------------------------------------------------------------


UPSTREAM_FAILURES: list[tuple[str, type[openai.APIStatusError], int, str, str, str]] = [
    ("gpt-4o-mini-error-500", openai.InternalServerError, 502, "upstream_error", "upstream_error",
     "(HTTP 500)"),
    ("gpt-4o-mini-error-503", openai.InternalServerError, 502, "upstream_error", "upstream_error",
     "(HTTP 503)"),
    ("gpt-4o-mini-error-429", openai.RateLimitError, 429, "upstream_rate_limited", "rate_limit_error",
     "rate limiting"),
    ("gpt-4o-mini-error-400", openai.BadRequestError, 400, "upstream_bad_request", "invalid_request_error",
     "The upstream provider refused the request: upstream says the request is bad"),
    ("gpt-4o-mini-redirect", openai.InternalServerError, 502, "upstream_redirect", "upstream_error",
     "(HTTP 302)"),
]  # fmt: skip


async def test_upstream_error_statuses(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    client = client_for(gateway_app, org.member_token)
    for n, (upstream_model, exception, status, code, type_, message_part) in enumerate(UPSTREAM_FAILURES):
        await add_model(db, org, f"flaky-{n}", org.openai_provider_id, upstream_model)
        with pytest.raises(exception) as caught:
            await client.chat.completions.create(model=f"flaky-{n}", messages=HELLO)
        assert caught.value.status_code == status, upstream_model
        assert caught.value.code == code, upstream_model
        error = error_body(caught.value)
        assert message_part in error["message"], upstream_model
        assert error["type"] == type_, upstream_model
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.model, r.status, r.http_status, r.error_type) for r in rows] == [
        (f"flaky-{n}", "error", status, code)
        for n, (_, _, status, code, _, _) in enumerate(UPSTREAM_FAILURES)
    ]
    assert all(r.provider_kind == "openai" and r.error_message for r in rows)
    assert {(r.input_tokens, r.output_tokens, r.tokens_estimated, r.cost_usd) for r in rows} == {
        (0, 0, False, Decimal(0))
    }
    assert "upstream says the request is bad" in (rows[3].error_message or "")


async def test_anthropic_upstream_error(
    gateway_app: Any, db: AsyncSession, org: Org, anthropic_upstream: Upstream
) -> None:
    await add_model(db, org, "claude-busy", org.anthropic_provider_id, "claude-error-529")
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(gateway_app, org.member_token, model="claude-busy")
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")
    assert "(HTTP 529)" in error_body(caught.value)["message"]


async def test_wrong_provider_key(gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream) -> None:
    bad_key = "sk-wrong-provider-key-ABCDEF123456"
    provider = await providers.create_provider(
        db, Actor.system(org.account_id), name="Bad key", kind=ProviderKind.openai, secret_key=TEST_SECRET,
        allow_private=True, base_url=upstream.base_url + "/v1", api_key=bad_key,
    )  # fmt: skip
    await db.commit()
    await add_model(db, org, "badkey-model", provider.id, "gpt-4o-mini")
    upstream.clear()
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(gateway_app, org.member_token, model="badkey-model")
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_auth_failed"
    error = error_body(caught.value)
    assert "(HTTP 401)" in error["message"]
    assert bad_key not in caught.value.response.text
    [sent] = upstream.requests
    assert sent.headers["authorization"] == f"Bearer {bad_key}"
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.http_status, row.error_type) == (502, "upstream_auth_failed")
    assert row.error_message is not None
    assert bad_key not in row.error_message
    assert UPSTREAM_KEY not in row.error_message


async def test_hanging_upstream_times_out(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    # The provider's own timeout (here 0.5 s) replaces the configured upstream_read_timeout (3 s).
    provider = await providers.create_provider(
        db, Actor.system(org.account_id), name="Impatient", kind=ProviderKind.openai, secret_key=TEST_SECRET,
        allow_private=True, base_url=upstream.base_url + "/v1", api_key=UPSTREAM_KEY,
        settings={"timeout_seconds": 0.5},
    )  # fmt: skip
    await db.commit()
    await add_model(db, org, "gpt-hang", provider.id, "gpt-4o-mini-hang")
    await add_model(db, org, "gpt-slow", provider.id, "gpt-4o-mini-slow-2000")
    for model in ("gpt-hang", "gpt-slow"):
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            await chat(gateway_app, org.member_token, model=model)
        elapsed = time.monotonic() - started
        assert caught.value.status_code == 504
        assert caught.value.code == "upstream_timeout"
        assert error_body(caught.value)["message"] == "The upstream provider did not answer in time."
        # At least the provider's 0.5 s; well under the 3 s it would take without it (the bound only
        # tells the two apart, with room for a busy machine).
        assert 0.45 <= elapsed < 2.8, elapsed
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.status, r.http_status, r.error_type) for r in rows] == [("error", 504, "upstream_timeout")] * 2
    assert all(r.latency_ms >= 450 for r in rows)


async def test_hanging_stream_times_out(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    provider = await providers.create_provider(
        db, Actor.system(org.account_id), name="Impatient", kind=ProviderKind.openai, secret_key=TEST_SECRET,
        allow_private=True, base_url=upstream.base_url + "/v1", api_key=UPSTREAM_KEY,
        settings={"timeout_seconds": 0.5},
    )  # fmt: skip
    await db.commit()
    # Two chunks, then 2 s of silence: longer than the read timeout.
    await add_model(db, org, "gpt-stall", provider.id, "gpt-4o-mini-chunks-2-chunkdelay-2000")
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(model="gpt-stall", messages=HELLO, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        await drain(stream, received)
    assert "".join(received) == "tok0 "
    assert caught.value.code == "upstream_timeout"
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.http_status, row.error_type, row.tokens_estimated) == (
        "error",
        200,
        "upstream_timeout",
        True,
    )


async def test_unreachable_provider(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    port = free_port()  # nothing listens there any more
    provider = await providers.create_provider(
        db, Actor.system(org.account_id), name="Gone", kind=ProviderKind.openai, secret_key=TEST_SECRET,
        allow_private=True, base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-gone-key-000111222",
    )  # fmt: skip
    await db.commit()
    await add_model(db, org, "gone-model", provider.id, "gpt-4o-mini")
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(gateway_app, org.member_token, model="gone-model")
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_unavailable"
    error = error_body(caught.value)
    assert error["message"].startswith("The upstream provider could not be reached")
    assert "sk-gone-key-000111222" not in error["message"]
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.http_status, row.error_type) == (502, "upstream_unavailable")


async def test_truncated_json_answer(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-halfjson", org.openai_provider_id, "gpt-4o-mini-cut-1")
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(gateway_app, org.member_token, model="gpt-halfjson")
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_unavailable"  # the connection broke mid-body
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.http_status) == ("error", 502)


async def test_an_unexpected_failure_is_answered_500_and_still_recorded(
    gateway_app: Any, db: AsyncSession, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(call: Any) -> bytes:
        raise RuntimeError("a bug in an adapter")

    monkeypatch.setattr(gateway_app.state.gateway.upstreams, "complete", broken)
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 500
    assert caught.value.code == "internal_error"
    assert "a bug" not in str(caught.value)  # internals are logged, not shown
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.http_status, row.error_type, row.model) == (
        "error",
        500,
        "internal_error",
        "gpt-4o-mini",
    )
