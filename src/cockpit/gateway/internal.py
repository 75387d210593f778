"""Model calls that Cockpit makes for a person in the console (the agent wizard's draft, its preview
chat): the same path as an API call — access policies, credits held and settled, the call recorded and
attributed to the person — without an HTTP request or an API token."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from cockpit.gateway.agent_run import AGENT_PREFIX
from cockpit.gateway.directory import AgentSpec, Caller
from cockpit.gateway.errors import GatewayError, invalid
from cockpit.gateway.inputs import check_chat, check_common
from cockpit.gateway.service import Attribution, Context, Gateway
from cockpit.kit.time import utcnow
from cockpit.usage.models import CallStatus, Operation
from cockpit.users.models import UserRole


def person(
    *, account_id: uuid.UUID, user_id: uuid.UUID, email: str, role: UserRole, group_id: uuid.UUID
) -> Caller:
    """A console user as a gateway caller (no API token; every scope a person has in the console)."""
    return Caller(
        token_id=None,
        account_id=account_id,
        user_id=user_id,
        email=email,
        role=role,
        group_id=group_id,
        scopes=frozenset({"gateway"}),
        expires_at=None,
        project_id=None,
    )


async def complete_for(
    gateway: Gateway, caller: Caller, body: dict[str, Any], *, agent: AgentSpec | None = None
) -> dict[str, Any]:
    """A ``chat.completion`` for ``body`` (``"model": "agent:<slug>"`` runs a saved agent; ``agent`` a
    draft, as the wizard's preview); raises GatewayError
    (402 without credits, 403 refused by a policy, 404 unknown model, 5xx upstream failures)."""
    ctx = Context(caller, Operation.chat.value, utcnow(), time.perf_counter(), Attribution(None, None))
    ctx.body = body
    try:
        ctx.catalog = catalog = await gateway.directory.catalog(caller.account_id)
        ctx.model_name = check_common(body)[:200]
        stream, _usage = check_chat(body)
        if stream:
            raise invalid("A call made for the console is not streamed.", param="stream")
        if agent is not None:
            run = gateway.agents.prepare_spec(ctx, agent, body, preview=True)
        elif ctx.model_name.startswith(AGENT_PREFIX):  # a saved agent: visibility, status, policies
            run = gateway.agents.prepare(ctx, body)
        else:
            ctx.route = route = gateway._route(catalog, ctx.model_name, "chat")
            gateway._require_model(caller, catalog, route)
    except GatewayError as exc:
        gateway._record(ctx, status=CallStatus.error, http_status=exc.status, error=exc)
        raise
    if agent is not None or ctx.model_name.startswith(AGENT_PREFIX):
        return await gateway.agents.complete(ctx, run)  # each model and tool call is recorded by the run
    try:
        if catalog.credit_factor > 0:
            ctx.hold = await gateway._hold(ctx, route, body)
        ctx.call = call = gateway._call(route, body, Operation.chat.value, False, False)
        call.started = ctx.started
        content = await gateway.upstreams.complete(call)
        answer = json.loads(content)
    except GatewayError as exc:
        gateway._record(ctx, status=CallStatus.error, http_status=exc.status, error=exc)
        raise
    except ValueError:
        error = GatewayError(
            502,
            "The model answered with something that is not JSON.",
            type="server_error",
            code="upstream_invalid_response",
        )
        gateway._record(ctx, status=CallStatus.error, http_status=502, error=error)
        raise error from None
    gateway._record(ctx, status=CallStatus.success, http_status=200)
    if not isinstance(answer, dict):
        raise GatewayError(
            502,
            "The model's answer is not a chat completion.",
            type="server_error",
            code="upstream_invalid_response",
        )
    return answer


def bare_model(route_model_id: uuid.UUID, name: str) -> AgentSpec:
    """A bare model as a run without instructions or tools (one model call), so that a conversation
    with a model streams through the same path as one with an agent."""
    return AgentSpec(
        id=uuid.uuid4(), slug=name, name=name, active=True, project_id=None, model_id=route_model_id,
        instructions="", temperature=None, max_output_tokens=None, integration_ids=(), tools={},
        visibility="account", group_ids=frozenset(), max_steps=1,
    )  # fmt: skip


async def stream_for(
    gateway: Gateway, caller: Caller, body: dict[str, Any]
) -> AsyncIterator[tuple[str, Any]]:
    """A streamed answer for a person: ("delta", text) as the model writes, ("step", tool step) as
    each tool call ends, then ("final", the whole ``chat.completion``); raises GatewayError (a refusal
    before anything is spent, or a failure on the way: each call recorded as it ended)."""
    ctx = Context(caller, Operation.chat.value, utcnow(), time.perf_counter(), Attribution(None, None))
    ctx.body = body
    try:
        ctx.catalog = catalog = await gateway.directory.catalog(caller.account_id)
        ctx.model_name = check_common(body)[:200]
        check_chat(body)
        if ctx.model_name.startswith(AGENT_PREFIX):
            run = gateway.agents.prepare(ctx, body)
        else:
            route = gateway._route(catalog, ctx.model_name, "chat")
            run = gateway.agents.prepare_spec(ctx, bare_model(route.model_id, route.name), body, preview=True)
    except GatewayError as exc:
        gateway._record(ctx, status=CallStatus.error, http_status=exc.status, error=exc)
        raise
    async for kind, value in gateway.agents.events(ctx, run):
        yield kind, value
