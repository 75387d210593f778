"""Access policies at the gateway: a denied model is refused (403 model_not_allowed) before any credit
is held, listed nowhere and cannot be retrieved; a user denied ``gateway.api_access`` is refused
everywhere (403 feature_not_allowed); a change of rule or default applies to the very next call;
and decisions are served from the directory's memory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.credits.models import CreditLease, EntryKind, LedgerEntry
from cockpit.policies import service as policies
from cockpit.policies.models import AccessPolicy
from cockpit.users.models import User, UserRole
from tests.builders import bearer, make_token
from tests.gateway.conftest import Org, client_for, fund, records

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
POLICIES = "/api/v1/policies"


@pytest.fixture
async def rest(gateway_app: Any, db: AsyncSession, org: Org) -> AsyncIterator[httpx.AsyncClient]:
    """The REST API of the gateway's app, as the account's owner."""
    owner = await db.scalar(
        select(User).where(User.account_id == org.account_id, User.role == UserRole.owner)
    )
    assert owner is not None
    headers = bearer(await make_token(db, owner))
    transport = httpx.ASGITransport(app=gateway_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as http:
        yield http


async def deny(
    rest: httpx.AsyncClient, scope: str, scope_id: uuid.UUID | None, kind: str, resource: str
) -> str:
    body: dict[str, Any] = {"scope": scope, "resource_type": kind, "resource": resource, "effect": "deny"}
    if scope_id is not None:
        body["scope_id"] = str(scope_id)
    response = await rest.post(POLICIES, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def refusal(call: Any) -> tuple[int, dict[str, Any]]:
    """The status and OpenAI-shaped error of a call that must fail."""
    with pytest.raises(openai.APIStatusError) as caught:
        await call
    body = caught.value.body
    assert isinstance(body, dict), body
    assert set(body) >= {"message", "type", "code", "param"}, body
    return caught.value.status_code, body


async def chat_status(client: openai.AsyncOpenAI, model: str = "gpt-4o-mini") -> int | str:
    try:
        await client.chat.completions.create(model=model, messages=HELLO, max_tokens=5)
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return str(body.get("code"))
    return 200


async def model_id(db: AsyncSession, org: Org, name: str) -> uuid.UUID:
    from cockpit.providers.models import Model

    found = await db.scalar(select(Model.id).where(Model.account_id == org.account_id, Model.name == name))
    assert found is not None
    return found


async def test_a_denied_model_is_refused_before_any_credit_is_held(
    gateway_app: Any, db: AsyncSession, org: Org, rest: httpx.AsyncClient
) -> None:
    await fund(db, org)
    member_id, gpt = (
        org.member.id,
        await model_id(db, org, "gpt-4o-mini"),
    )  # read before a rollback expires them
    rule_id = await deny(rest, "user", member_id, "model", "gpt-4o-mini")
    client = client_for(gateway_app, org.member_token)

    status, error = await refusal(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert status == 403
    assert (error["code"], error["type"], error["param"]) == (
        "model_not_allowed",
        "permission_error",
        "model",
    )
    assert rule_id in error["message"]
    assert "'gpt-4o-mini' is denied by a user-level rule" in error["message"]
    stream_status, stream_error = await refusal(
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    )
    assert (stream_status, stream_error["code"]) == (403, "model_not_allowed")

    await gateway_app.state.recorder.flush()
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(CreditLease)) == 0
    holds = (
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.account_id == org.account_id, LedgerEntry.kind == EntryKind.hold)
    )
    assert await db.scalar(holds) == 0
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.user_id, r.http_status, r.error_type, r.credits) for r in rows] == [
        (member_id, 403, "model_not_allowed", 0)
    ] * 2
    assert rows[0].model_id == gpt

    # Funding works: the same call by someone the rule does not concern holds credits and succeeds,
    # and the member's other models are unaffected.
    await client_for(gateway_app, org.admin_token).chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=5
    )
    assert await chat_status(client, "sim-chat") == 200
    await db.commit()
    assert (await db.scalar(select(func.count()).select_from(CreditLease)) or 0) >= 1
    assert (await db.scalar(holds) or 0) >= 1


async def test_api_access_denied_refuses_every_gateway_call_of_that_user_only(
    gateway_app: Any, db: AsyncSession, org: Org, rest: httpx.AsyncClient
) -> None:
    member_id = org.member.id
    rule_id = await deny(rest, "user", member_id, "feature", "gateway.api_access")
    member = client_for(gateway_app, org.member_token)
    calls = {
        "chat": member.chat.completions.create(model="sim-chat", messages=HELLO),
        "stream": member.chat.completions.create(model="sim-chat", messages=HELLO, stream=True),
        "embeddings": member.embeddings.create(model="embed-small", input="hello"),
        "list": member.models.list(),
        "retrieve": member.models.retrieve("sim-chat"),
    }
    for what, call in calls.items():
        status, error = await refusal(call)
        assert (status, error["code"], error["type"]) == (403, "feature_not_allowed", "permission_error"), (
            what
        )
        assert rule_id in error["message"], what
        assert "gateway.api_access" in error["message"], what

    admin = client_for(gateway_app, org.admin_token)
    assert await chat_status(admin, "sim-chat") == 200
    assert [m.id async for m in admin.models.list()] == [
        "claude-sonnet",
        "embed-small",
        "gpt-4o-mini",
        "sim-chat",
    ]
    assert (await admin.models.retrieve("sim-chat")).id == "sim-chat"
    rows = await records(gateway_app, db, org.account_id)
    refused = [r for r in rows if r.user_id == member_id]
    assert {(r.http_status, r.error_type) for r in refused} == {(403, "feature_not_allowed")}
    assert len(refused) == 3  # chat, stream and embeddings are recorded; listings are not calls


async def test_a_user_without_api_access_cannot_probe_the_catalogue(
    gateway_app: Any, db: AsyncSession, org: Org, rest: httpx.AsyncClient
) -> None:
    """Denied the gateway, a user gets the same answer for a model that exists and one that does not
    (as a chat call already does): the refusal, not a 404 that tells which names exist."""
    await deny(rest, "user", org.member.id, "feature", "gateway.api_access")
    member = client_for(gateway_app, org.member_token)
    for name in ("sim-chat", "no-such-model"):
        chat_status_code, chat_error = await refusal(
            member.chat.completions.create(model=name, messages=HELLO)
        )
        assert (chat_status_code, chat_error["code"]) == (403, "feature_not_allowed"), name
        status, error = await refusal(member.models.retrieve(name))
        assert (status, error["code"]) == (403, "feature_not_allowed"), name


async def test_a_denied_model_is_not_listed_and_cannot_be_retrieved(
    gateway_app: Any, db: AsyncSession, org: Org, rest: httpx.AsyncClient
) -> None:
    group_rule = await deny(rest, "group", org.member.group_id, "model", "claude-sonnet")
    member = client_for(gateway_app, org.member_token)
    assert [m.id async for m in member.models.list()] == ["embed-small", "gpt-4o-mini", "sim-chat"]
    status, error = await refusal(member.models.retrieve("claude-sonnet"))
    assert (status, error["code"], error["param"]) == (403, "model_not_allowed", "model")
    assert group_rule in error["message"]
    assert (await member.models.retrieve("gpt-4o-mini")).id == "gpt-4o-mini"
    # Unknown stays unknown.
    status, error = await refusal(member.models.retrieve("gpt-nope"))
    assert (status, error["code"]) == (404, "model_not_found")
    # The embedding model is governed like the others.
    await deny(rest, "account", None, "model", "embed-small")
    status, error = await refusal(member.embeddings.create(model="embed-small", input="hello"))
    assert (status, error["code"]) == (403, "model_not_allowed")
    assert [m.id async for m in member.models.list()] == ["gpt-4o-mini", "sim-chat"]


async def test_rule_and_default_changes_apply_to_the_very_next_call(
    gateway_app: Any, db: AsyncSession, org: Org, rest: httpx.AsyncClient
) -> None:
    member = client_for(gateway_app, org.member_token)
    assert await chat_status(member) == 200  # the directory is warm

    # Through the API.
    rule_id = await deny(rest, "user", org.member.id, "model", "gpt-4o-mini")
    status, error = await refusal(member.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert (status, error["code"]) == (403, "model_not_allowed")
    assert rule_id in error["message"]
    assert "gpt-4o-mini" not in [m.id async for m in member.models.list()]
    assert (await rest.delete(f"{POLICIES}/{rule_id}")).status_code == 200
    assert await chat_status(member) == 200
    assert "gpt-4o-mini" in [m.id async for m in member.models.list()]

    # Through the service, committed by another session.
    actor = Actor.system(org.account_id)
    row = await policies.create_policy(
        db,
        actor,
        scope="account",
        scope_id=None,
        resource_type="model",
        resource="gpt-4o-mini",
        effect="deny",
    )
    await db.commit()
    assert await chat_status(member) == "model_not_allowed"
    await policies.delete_policy(db, actor, row.policy.id)
    await db.commit()
    assert await chat_status(member) == 200

    # A default.
    assert (await rest.patch(f"{POLICIES}/defaults", json={"model": "deny"})).status_code == 200
    status, error = await refusal(member.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert (status, error["code"]) == (403, "model_not_allowed")
    assert "default" in error["message"]
    assert [m.id async for m in member.models.list()] == []
    assert (await rest.patch(f"{POLICIES}/defaults", json={"model": "allow"})).status_code == 200
    assert await chat_status(member) == 200

    # Moving the user into a group that is denied the model.
    group = await rest.post("/api/v1/groups", json={"name": "Interns"})
    group_id = group.json()["id"]
    group_rule = await deny(rest, "group", uuid.UUID(group_id), "model", "gpt-4o-mini")
    assert await chat_status(member) == 200  # not in the group yet
    moved = await rest.post(f"/api/v1/groups/{group_id}/members", json={"user_ids": [str(org.member.id)]})
    assert moved.status_code == 200
    status, error = await refusal(member.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert (status, error["code"]) == (403, "model_not_allowed")
    assert group_rule in error["message"]
    # Deleting the group deletes its rule (and moves the member back to Default).
    assert (await rest.delete(f"/api/v1/groups/{group_id}")).status_code == 200
    assert await chat_status(member) == 200
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(AccessPolicy)) == 0


async def test_decisions_are_served_from_memory_once_the_directory_is_warm(
    gateway_app: Any, db: AsyncSession, org: Org, rest: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No background refresh however slow the machine: only a change may reload the directory.
    directory = gateway_app.state.gateway.directory
    monkeypatch.setattr(directory, "ttl", 10_000.0)
    await deny(rest, "account", None, "model", "claude-sonnet")
    await deny(rest, "user", org.admin.id, "feature", "gateway.api_access")
    member = client_for(gateway_app, org.member_token)
    admin = client_for(gateway_app, org.admin_token)
    assert await chat_status(member) == 200
    assert await chat_status(admin) == "feature_not_allowed"
    loads = directory.loads

    for _ in range(10):
        assert await chat_status(member) == 200
        assert await chat_status(member, "claude-sonnet") == "model_not_allowed"
        assert await chat_status(admin) == "feature_not_allowed"
        assert [m.id async for m in member.models.list()] == ["embed-small", "gpt-4o-mini", "sim-chat"]
        status, _error = await refusal(member.models.retrieve("claude-sonnet"))
        assert status == 403
    assert directory.loads == loads

    # A change does reload (the counter above counts what it should).
    await deny(rest, "user", org.member.id, "model", "sim-chat")
    assert await chat_status(member, "sim-chat") == "model_not_allowed"
    assert directory.loads > loads
