"""Model calls that Cockpit makes for a person in the console (the agent wizard's draft, its preview
chat): the same path as an API call — access policies, credits held and settled, the call recorded and
attributed to the person — without an HTTP request or an API token."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from cockpit.gateway.agent_run import AGENT_PREFIX, Run
from cockpit.gateway.directory import AgentSpec, Caller
from cockpit.gateway.errors import GatewayError
from cockpit.gateway.inputs import check_chat, check_common
from cockpit.gateway.service import Attribution, Context, Gateway
from cockpit.kit.errors import CockpitError
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


async def _prepared(
    gateway: Gateway, caller: Caller, body: dict[str, Any], agent: AgentSpec | None
) -> tuple[Context, Run]:
    """The run of a call made for a person: a saved agent (``"model": "agent:<slug>"``: visibility,
    status, policies), a draft (``agent``, the wizard's preview) or a bare model (one call, no tools).
    A refusal is recorded and raised before anything is spent."""
    ctx = Context(caller, Operation.chat.value, utcnow(), time.perf_counter(), Attribution(None, None))
    ctx.body = body
    try:
        ctx.catalog = catalog = await gateway.directory.catalog(caller.account_id)
        ctx.model_name = check_common(body)[:200]
        check_chat(body)
        if agent is not None:
            return ctx, gateway.agents.prepare_spec(ctx, agent, body, preview=True)
        if ctx.model_name.startswith(AGENT_PREFIX):
            return ctx, gateway.agents.prepare(ctx, body)
        route = gateway._route(catalog, ctx.model_name, "chat")
        return ctx, gateway.agents.prepare_spec(
            ctx, bare_model(route.model_id, route.name), body, preview=True
        )
    except GatewayError as exc:
        gateway._record(ctx, status=CallStatus.error, http_status=exc.status, error=exc)
        raise


@dataclass
class Pause:
    """How a conversation's run treats "ask before running" tools: it pauses at such a call
    (``ask``), or goes on from a pause (``resume``: the ``pending`` of the paused run's completion)
    with the person's ``decisions`` (tool call id → approved)."""

    ask: bool = True
    resume: dict[str, Any] | None = None
    decisions: dict[str, bool] = field(default_factory=dict)
    run: Run | None = None  # the run, once prepared: what it has cost so far, even if stopped

    def apply(self, run: Run) -> None:
        self.run = run
        run.ask = self.ask
        if self.resume is not None:
            run.messages.extend(self.resume.get("messages") or [])
            run.resume_calls = [c for c in self.resume.get("calls") or [] if isinstance(c, dict)]
            run.decisions = dict(self.decisions)


async def complete_for(
    gateway: Gateway,
    caller: Caller,
    body: dict[str, Any],
    *,
    agent: AgentSpec | None = None,
    pause: Pause | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` for ``body`` (``"model": "agent:<slug>"`` runs a saved agent; ``agent`` a
    draft, as the wizard's preview), with ``cockpit.cost_usd`` and ``cockpit.credits`` as its calls
    were recorded; raises GatewayError (402 without credits, 403 refused by a policy, 404 unknown
    model, 5xx upstream failures). Every model and tool call is recorded by the run."""
    ctx, run = await _prepared(gateway, caller, body, agent)
    if pause is not None:
        pause.apply(run)
    return await gateway.agents.complete(ctx, run)


def cockpit_error(exc: GatewayError) -> CockpitError:
    """A gateway refusal or failure in the shape of the REST API and the console: its code, message
    and status."""
    error = CockpitError(exc.code or "model_call_failed", exc.message)
    error.status = exc.status
    return error


def bare_model(route_model_id: uuid.UUID, name: str) -> AgentSpec:
    """A bare model as a run without instructions or tools (one model call), so that a conversation
    with a model streams through the same path as one with an agent."""
    return AgentSpec(
        id=uuid.uuid4(), slug=name, name=name, active=True, project_id=None, model_id=route_model_id,
        instructions="", temperature=None, max_output_tokens=None, integration_ids=(), tools={},
        visibility="account", group_ids=frozenset(), max_steps=1,
    )  # fmt: skip


async def stream_for(
    gateway: Gateway, caller: Caller, body: dict[str, Any], *, pause: Pause | None = None
) -> AsyncGenerator[tuple[str, Any]]:
    """A streamed answer for a person: ("delta", text) as the model writes, ("step", tool step) as
    each tool call ends, then ("final", the whole ``chat.completion``); raises GatewayError (a refusal
    before anything is spent, or a failure on the way: each call recorded as it ended)."""
    ctx, run = await _prepared(gateway, caller, body, None)
    if pause is not None:
        pause.apply(run)
    async for kind, value in gateway.agents.events(ctx, run):
        yield kind, value
