"""Running an agent from any OpenAI client: ``POST /v1/chat/completions`` with ``"model": "agent:<slug>"``.

A run is a loop of ordinary gateway calls: the agent's instructions (after the organisation's custom
instructions) and the caller's messages go to the agent's model with the agent's tools offered in the
OpenAI ``tools`` format; each tool call the model makes is executed by Cockpit against its integration
and the result fed back; the loop ends with an answer in words or after ``max_steps`` tool rounds (the
last call offers no tools, so the model must answer).

Every model call is credit-checked (held, then settled) and recorded like any other call, attributed to
the agent (``agent_id`` = the agent's id) and its project. Every tool call is recorded too, as a usage
row with operation ``tool_call``, its integration and tool, latency and status, and the integration's
price in credits when one is set (held before the call, charged when it succeeds).

Before anything is spent the caller must be allowed the agent, its model and each of its integrations
(access policies; 403 naming the deciding rule), and the agent must be active and visible to them.

A stream carries the final answer as ``chat.completion.chunk`` events; each tool step is sent before it
as a chunk with no choices and a ``cockpit.tool_step`` object, which OpenAI clients pass through and
ignore (documented in docs/agents.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from starlette.responses import Response

from cockpit.auth import delegation
from cockpit.credits.enforcement import Hold, InsufficientCredits
from cockpit.gateway.agent_stream import stream_step
from cockpit.gateway.directory import AgentSpec, Catalog, IntegrationSpec, Route
from cockpit.gateway.errors import GatewayError, invalid, model_not_found
from cockpit.gateway.events import EventStream
from cockpit.integrations import client as tools_client
from cockpit.integrations import service as integrations
from cockpit.integrations.models import Integration
from cockpit.kit.time import utcnow
from cockpit.policies.models import ResourceType
from cockpit.usage.models import CallStatus, Operation

if TYPE_CHECKING:
    from cockpit.gateway.service import Context, Gateway

log = logging.getLogger("cockpit.gateway")

AGENT_PREFIX = "agent:"
PICO = Decimal("0.000000000001")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# What a caller may not send with an agent: the agent brings its own tools.
CALLER_TOOL_FIELDS = ("tools", "functions", "tool_choice", "function_call")
DROPPED_FIELDS = ("model", "stream", "stream_options", "messages", "parallel_tool_calls", "n")


@dataclass(frozen=True)
class OfferedTool:
    function: str  # the name the model calls it by: "<integration>__<tool>", OpenAI's alphabet
    integration: IntegrationSpec
    name: str
    description: str
    schema: dict[str, Any]
    confirm: bool  # "ask before running": only from the console, never run from the API

    def as_openai(self) -> dict[str, Any]:
        description = f"{self.description} (from {self.integration.name})".strip()
        return {
            "type": "function",
            "function": {"name": self.function, "description": description[:1024], "parameters": self.schema},
        }


@dataclass
class Run:
    agent: AgentSpec
    route: Route
    tools: dict[str, OfferedTool]
    messages: list[dict[str, Any]]
    base: dict[str, Any]
    usage: list[int] = field(default_factory=lambda: [0, 0, 0])  # input, output, cached
    steps: list[dict[str, Any]] = field(default_factory=list)
    # What the run cost, as its calls were recorded (model calls that reported their usage, and the
    # tool calls' prices): each figure computed and rounded as the gateway records it.
    cost_usd: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)
    # "Ask before running" (a conversation): a call of such a tool pauses the run instead of being
    # refused; ``pending`` is then what resumes it (the calls, and the run's messages after the
    # conversation's). A resumed run first makes ``resume_calls``, with the person's ``decisions``.
    ask: bool = False
    pending: dict[str, Any] | None = None
    resume_calls: list[dict[str, Any]] = field(default_factory=list)
    decisions: dict[str, bool] = field(default_factory=dict)
    start: int = 0  # where the run's own messages begin in ``messages``

    def add_recorded(self, input_tokens: int, output_tokens: int, cost: Decimal, credits: Decimal) -> None:
        """A call of the run was recorded with these figures (one the caller stopped)."""
        self.usage[0] += input_tokens
        self.usage[1] += output_tokens
        self.cost_usd += cost
        self.credits += credits

    def add_call(self, usage: tuple[int, int, int] | None, factor: Decimal) -> None:
        """A model call of the run ended: its tokens, cost and credits are the run's."""
        from cockpit.gateway.service import cost_of, credits_of

        if usage is None:
            return
        for index, value in enumerate(usage):
            self.usage[index] += value
        cost = cost_of(self.route, *usage)
        self.cost_usd += cost
        self.credits += credits_of(cost, factor)


def offered_tools(catalog: Catalog, agent: AgentSpec) -> dict[str, OfferedTool]:
    """The tools of the agent's enabled integrations that it may call, by function name."""
    found: dict[str, OfferedTool] = {}
    for integration_id in agent.integration_ids:
        integration = catalog.integrations.get(integration_id)
        if integration is None or not integration.enabled:
            continue
        chosen = agent.tools.get(str(integration_id))
        chosen = chosen if isinstance(chosen, dict) else {}
        listed = chosen.get("names")
        names: list[Any] = listed if isinstance(listed, list) else []
        every = bool(chosen.get("all", True)) or not isinstance(listed, list)
        confirm = set(chosen.get("confirm") or [])
        for tool in integration.tools:
            name = tool["name"]
            if not every and name not in names:
                continue
            function = _UNSAFE.sub("_", f"{integration.slug}__{name}")[:64]
            while function in found:
                function = f"{function[:58]}_{secrets.token_hex(2)}"
            schema = tool.get("input_schema")
            found[function] = OfferedTool(
                function=function,
                integration=integration,
                name=name,
                description=str(tool.get("description") or ""),
                schema=schema if isinstance(schema, dict) else {"type": "object", "properties": {}},
                confirm=name in confirm,
            )
    return found


def visible(ctx: Context, agent: AgentSpec) -> bool:
    from cockpit.gateway.service import ADMIN_ROLES

    caller, catalog = ctx.caller, ctx.catalog
    assert catalog is not None
    if caller.role in ADMIN_ROLES:
        return True
    if agent.project_id is not None and (agent.project_id, caller.user_id) not in catalog.members:
        return False
    if agent.visibility == "groups":
        return caller.group_id in agent.group_ids
    return True


def runnable(gateway: Gateway, ctx: Context, agent: AgentSpec) -> bool:
    """Whether the caller may run this agent now (listed by ``GET /v1/models``)."""
    catalog = ctx.catalog
    assert catalog is not None
    if not agent.active or not visible(ctx, agent):
        return False
    return gateway._decide(ctx.caller, catalog, ResourceType.agent, agent.slug).allowed


def model_entry(agent: AgentSpec) -> dict[str, Any]:
    return {
        "id": AGENT_PREFIX + agent.slug,
        "object": "model",
        "created": agent.created,
        "owned_by": "cockpit-agent",
    }


class AgentRunner:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    # ---- before anything is spent ----

    def prepare(self, ctx: Context, body: dict[str, Any]) -> Run:
        catalog = ctx.catalog
        assert catalog is not None
        name = str(body["model"])
        agent = catalog.agents.get(name[len(AGENT_PREFIX) :])
        if agent is None or not visible(ctx, agent):
            raise model_not_found(name)
        if not agent.active:
            raise GatewayError(
                403,
                f"The agent '{agent.name}' is deactivated.",
                type="permission_error",
                code="agent_inactive",
            )
        return self.prepare_spec(ctx, agent, body)

    def prepare_spec(
        self, ctx: Context, agent: AgentSpec, body: dict[str, Any], *, preview: bool = False
    ) -> Run:
        """A run of ``agent`` (saved, or a draft tried in the console's wizard when ``preview``)."""
        gw, caller, catalog = self.gateway, ctx.caller, ctx.catalog
        assert catalog is not None
        if not preview:  # a saved agent's calls (refusals too) are its own; a preview's, the person's
            project = agent.project_id or ctx.attribution.project_id
            ctx.attribution = type(ctx.attribution)(project, str(agent.id))
        decision = gw._decide(caller, catalog, ResourceType.agent, agent.slug)
        if not decision.allowed and not preview:
            raise GatewayError(
                403,
                decision.explain(agent.name),
                type="permission_error",
                code="agent_not_allowed",
                param="model",
            )
        route = next((r for r in catalog.routes.values() if r.model_id == agent.model_id), None)
        if route is None:
            raise GatewayError(
                503,
                f"The agent '{agent.name}' has no model available; an administrator must choose one.",
                type="server_error",
                code="agent_model_unavailable",
            )
        gw._require_model(caller, catalog, route)
        tools = offered_tools(catalog, agent)
        for integration in {t.integration.id: t.integration for t in tools.values()}.values():
            decision = gw._decide(caller, catalog, ResourceType.integration, integration.slug)
            if not decision.allowed:
                raise GatewayError(
                    403,
                    decision.explain(integration.name),
                    type="permission_error",
                    code="integration_not_allowed",
                )
        sent = [f for f in CALLER_TOOL_FIELDS if body.get(f) is not None]
        if sent:
            raise invalid(f"'{sent[0]}' cannot be sent to an agent: it brings its own tools.", param=sent[0])
        if body.get("n") not in (None, 1):
            raise invalid("An agent answers with one choice ('n' must be 1).", param="n")
        system = "\n\n".join(
            t for t in (catalog.custom_instructions.strip(), agent.instructions.strip()) if t
        )
        messages = list(body["messages"])
        if system:
            messages.insert(0, {"role": "system", "content": system})
        base = {k: v for k, v in body.items() if k not in DROPPED_FIELDS}
        base["model"] = route.name
        if agent.temperature is not None and "temperature" not in base:
            base["temperature"] = agent.temperature
        if agent.max_output_tokens is not None:
            for limit in ("max_completion_tokens", "max_tokens"):
                if isinstance(base.get(limit), int):
                    base[limit] = min(base[limit], agent.max_output_tokens)
            if not any(isinstance(base.get(k), int) for k in ("max_completion_tokens", "max_tokens")):
                base["max_tokens"] = agent.max_output_tokens
        return Run(agent, route, tools, messages, base, start=len(messages))

    # ---- the loop ----

    async def respond(self, ctx: Context, run: Run, stream: bool, include_usage: bool) -> Response:
        if stream:
            return EventStream(self._events(ctx, run, include_usage))
        try:
            payload = await self.complete(ctx, run)
        except GatewayError as exc:
            return exc.response()
        return Response(json.dumps(payload).encode(), media_type="application/json")

    async def events(self, ctx: Context, run: Run) -> AsyncIterator[tuple[str, Any]]:
        """The run streamed: ("delta", text), ("step", tool step), then ("final", the completion)."""
        async for kind, value in self._loop(ctx, run, stream=True):
            yield (kind, self._completion(run, *value)) if kind == "final" else (kind, value)

    async def complete(self, ctx: Context, run: Run) -> dict[str, Any]:
        """The whole run answered as one ``chat.completion`` (raises GatewayError)."""
        final: tuple[dict[str, Any], str] | None = None
        async for kind, value in self._loop(ctx, run):
            if kind == "final":
                final = value
        assert final is not None
        return self._completion(run, *final)

    async def _loop(self, ctx: Context, run: Run, *, stream: bool = False) -> AsyncIterator[tuple[str, Any]]:
        """Yields ("step", a tool step) as each tool call ends, then ("final", (message, finish));
        when ``stream``, also ("delta", text) as the model writes."""
        for call in run.resume_calls:  # a paused run goes on where it stopped
            result = await self._tool_step(ctx, run, call)
            run.messages.append({"role": "tool", "tool_call_id": str(call.get("id")), "content": result})
            yield "step", run.steps[-1]
        for step in range(run.agent.max_steps + 1):
            offer = list(run.tools.values()) if step < run.agent.max_steps else []
            if stream:
                answered: tuple[dict[str, Any], str] | None = None
                async for kind, value in stream_step(self, ctx, run, offer):
                    if kind == "delta":
                        yield kind, value
                    else:
                        answered = value
                assert answered is not None
                message, finish = answered
            else:
                message, finish = await self._model_step(ctx, run, offer)
            calls = message.get("tool_calls") if offer else None
            calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
            if not calls:
                yield "final", (message, finish)
                return
            run.messages.append({"role": "assistant", "content": message.get("content"), "tool_calls": calls})
            asks = [self._ask_of(run, call) for call in calls if self._asks(run, call)] if run.ask else []
            if asks:
                run.pending = {"calls": calls, "messages": run.messages[run.start :], "asks": asks}
                yield "final", (message, "approval_required")
                return
            for call in calls:
                result = await self._tool_step(ctx, run, call)
                run.messages.append({"role": "tool", "tool_call_id": str(call.get("id")), "content": result})
                yield "step", run.steps[-1]

    def step_body(self, run: Run, offer: list[OfferedTool]) -> dict[str, Any]:
        body = dict(run.base, messages=list(run.messages))
        if offer:
            body["tools"] = [t.as_openai() for t in offer]
            body["tool_choice"] = "auto"
        return body

    async def _model_step(
        self, ctx: Context, run: Run, offer: list[OfferedTool]
    ) -> tuple[dict[str, Any], str]:
        from cockpit.gateway.service import INTERNAL_ERROR, Context

        gw = self.gateway
        body = self.step_body(run, offer)
        step = Context(
            ctx.caller, Operation.chat.value, utcnow(), time.perf_counter(), ctx.attribution,
            catalog=ctx.catalog, body=body, model_name=run.route.name, route=run.route,
        )  # fmt: skip
        step.body_bytes = ctx.body_bytes
        try:
            if ctx.catalog is not None and ctx.catalog.credit_factor > 0:
                step.hold = await gw._hold(step, run.route, body)
            step.call = call = gw._call(run.route, body, Operation.chat.value, False, False)
            call.started = step.started
            content = await gw.upstreams.complete(call)
            data = json.loads(content)
            choice = data["choices"][0]
            message = choice["message"]
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
        except GatewayError as exc:
            gw._record(step, status=CallStatus.error, http_status=exc.status, error=exc)
            raise
        except (ValueError, KeyError, IndexError, TypeError):
            error = GatewayError(
                502, "The agent's model answered with something that is not a chat completion.",
                type="server_error", code="upstream_invalid_response",
            )  # fmt: skip
            gw._record(step, status=CallStatus.error, http_status=502, error=error)
            raise error from None
        except Exception:
            gw._record(step, status=CallStatus.error, http_status=500, error=INTERNAL_ERROR)
            raise
        gw._record(step, status=CallStatus.success, http_status=200)
        run.add_call(call.usage, ctx.catalog.credit_factor if ctx.catalog is not None else Decimal(0))
        return message, str(choice.get("finish_reason") or "stop")

    async def _tool_step(self, ctx: Context, run: Run, call: dict[str, Any]) -> str:
        """Run one tool call; its result (or what went wrong) as text for the model."""
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        assert isinstance(function, dict)
        tool = run.tools.get(str(function.get("name")))
        if tool is None:
            return f"There is no tool named {str(function.get('name'))[:64]!r}."
        started, created = time.perf_counter(), utcnow()
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(arguments, dict):
                raise ValueError
        except ValueError:
            arguments = None
        outcome: tools_client.ToolOutcome
        hold: Hold | None = None
        if arguments is None:
            outcome = tools_client.ToolOutcome(False, "", "The arguments are not a JSON object.")
        elif tool.confirm and not run.decisions.get(str(call.get("id"))):
            declined = str(call.get("id")) in run.decisions
            outcome = tools_client.ToolOutcome(
                False, "", "The person declined to run this tool." if declined
                else "This tool runs only after the person approves it in a Cockpit conversation.",
            )  # fmt: skip
        else:
            hold = await self._hold_price(ctx, tool)
            try:
                outcome = await self._call_tool(ctx, tool, arguments)
            except BaseException:  # the caller went away mid-call: recorded, its hold released
                gone = tools_client.ToolOutcome(False, "", "The caller went away before the tool answered.")
                self._record_tool(ctx, tool, created, started, gone, Decimal(0), hold)
                raise
        price = tool.integration.price_credits if outcome.ok else Decimal(0)
        cost, credits = self._record_tool(ctx, tool, created, started, outcome, price, hold)
        run.cost_usd += cost
        run.credits += credits
        run.steps.append({
            "type": "tool_call", "integration": tool.integration.name, "tool": tool.name,
            "arguments": arguments if arguments is not None else raw,
            "ok": outcome.ok, "error": outcome.error,
            "duration_ms": round((time.perf_counter() - started) * 1000),
        })  # fmt: skip
        return outcome.text if outcome.ok else f"The tool failed: {outcome.error or 'no result'}"

    @staticmethod
    def _asks(run: Run, call: dict[str, Any]) -> bool:
        """A call of an "ask before running" tool that the person has not decided on yet."""
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        tool = run.tools.get(str((function or {}).get("name")))
        return tool is not None and tool.confirm and str(call.get("id")) not in run.decisions

    @staticmethod
    def _ask_of(run: Run, call: dict[str, Any]) -> dict[str, Any]:
        """What the person is asked to approve: the integration, the tool and its arguments."""
        function = call["function"]
        tool = run.tools[str(function.get("name"))]
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            arguments = raw
        return {"call_id": str(call.get("id")), "integration": tool.integration.name, "tool": tool.name,
                "arguments": arguments}  # fmt: skip

    async def _hold_price(self, ctx: Context, tool: OfferedTool) -> Hold | None:
        catalog, caller = ctx.catalog, ctx.caller
        if catalog is None or catalog.credit_factor <= 0 or tool.integration.price_credits <= 0:
            return None
        try:
            return await self.gateway.keeper.hold_credits(
                account_id=caller.account_id, user_id=caller.user_id, group_id=caller.group_id,
                factor=catalog.credit_factor, credits=tool.integration.price_credits,
            )  # fmt: skip
        except InsufficientCredits as exc:
            raise GatewayError(
                402, str(exc), type="insufficient_credits", code="insufficient_credits"
            ) from None

    async def _call_tool(
        self, ctx: Context, tool: OfferedTool, arguments: dict[str, Any]
    ) -> tools_client.ToolOutcome:
        gw = self.gateway
        try:
            async with gw.directory.sessionmaker() as session:
                integration = await session.scalar(
                    select(Integration).where(
                        Integration.account_id == ctx.caller.account_id, Integration.id == tool.integration.id
                    )
                )
                if integration is None or not integration.enabled:
                    return tools_client.ToolOutcome(False, "", "The integration is no longer available.")
                connection = await integrations.connection(
                    session, integration, user_id=ctx.caller.user_id, settings=gw.settings
                )
                await session.commit()  # a fetched or refreshed OAuth token is kept
                if (integration.auth_settings or {}).get("on_behalf_of") is True and integration.url == (
                    f"{gw.settings.base_url}/mcp"
                ):
                    # Cockpit's own MCP server (only there): it answers for the person running the agent.
                    token = delegation.mint(
                        ctx.caller.account_id, ctx.caller.user_id, gw.directory.secret_key
                    )
                    headers = {**connection.headers, "Authorization": f"Bearer {token}"}
                    connection = dataclasses.replace(connection, headers=headers, allow_private=True)
            return await tools_client.call_tool(connection, tool.name, arguments)
        except tools_client.IntegrationFailure as exc:
            return tools_client.ToolOutcome(False, "", exc.message)
        except Exception as exc:  # an integration's failure must not end the run with a 500
            message = getattr(exc, "message", None)
            if isinstance(message, str):  # a Cockpit error (e.g. the person must connect first)
                return tools_client.ToolOutcome(False, "", message)
            log.exception("tool call to integration %s failed", tool.integration.id)
            return tools_client.ToolOutcome(False, "", "The integration could not be called.")

    def _record_tool(
        self,
        ctx: Context,
        tool: OfferedTool,
        created: Any,
        started: float,
        outcome: tools_client.ToolOutcome,
        price: Decimal,
        hold: Hold | None,
    ) -> tuple[Decimal, Decimal]:
        caller, catalog = ctx.caller, ctx.catalog
        factor = catalog.credit_factor if catalog is not None else Decimal(0)
        cost = (price / factor).quantize(PICO) if factor > 0 and price > 0 else Decimal(0)
        record: dict[str, Any] = {
            "id": uuid.uuid4(), "account_id": caller.account_id, "created_at": created,
            "user_id": caller.user_id, "group_id": caller.group_id,
            "project_id": ctx.attribution.project_id, "agent_id": ctx.attribution.agent_id,
            "api_token_id": caller.token_id, "model_id": None, "model": tool.integration.slug[:200],
            "provider_id": None, "provider_kind": None, "operation": Operation.tool_call.value,
            "integration_id": tool.integration.id, "tool": tool.name[:200], "stream": False,
            "status": (CallStatus.success if outcome.ok else CallStatus.error).value,
            "error_type": None if outcome.ok else "tool_failed",
            "error_message": None if outcome.ok else (outcome.error or "")[:500],
            "http_status": 200 if outcome.ok else 502,
            "latency_ms": round((time.perf_counter() - started) * 1000), "ttft_ms": None,
            "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "tokens_estimated": False,
            "cost_usd": cost, "credits": price if factor > 0 else Decimal(0), "upstream_id": None,
        }  # fmt: skip
        if hold is not None:
            self.gateway.keeper.settle(hold, record["credits"])
            record["credit_lease_id"] = hold.lease.id
        self.gateway.recorder.record(record)
        return cost, record["credits"]

    # ---- answers ----

    def _usage(self, run: Run) -> dict[str, Any]:
        prompt, completion, cached = run.usage
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }

    def _completion(self, run: Run, message: dict[str, Any], finish: str) -> dict[str, Any]:
        content = message.get("content")
        return {
            "id": f"chatcmpl-agent-{secrets.token_hex(10)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": AGENT_PREFIX + run.agent.slug,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content if isinstance(content, str) else ""},
                    "finish_reason": "stop" if finish == "tool_calls" else finish,
                    "logprobs": None,
                }
            ],
            "usage": self._usage(run),
            "cockpit": {
                "agent": run.agent.slug,
                "steps": run.steps,
                "cost_usd": str(run.cost_usd),
                "credits": str(run.credits),
                **({"pending": run.pending} if run.pending is not None else {}),
            },
        }

    def _chunk(self, run: Run, ident: str, **extra: Any) -> bytes:
        payload: dict[str, Any] = {
            "id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": AGENT_PREFIX + run.agent.slug, "choices": [], **extra,
        }  # fmt: skip
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    def _step_event(self, run: Run, step: dict[str, Any]) -> bytes:
        return self._chunk(run, "cockpit-step", cockpit={"tool_step": step})

    async def _events(self, ctx: Context, run: Run, include_usage: bool) -> AsyncIterator[bytes]:
        ident = f"chatcmpl-agent-{secrets.token_hex(10)}"
        finish = "stop"

        def delta(value: dict[str, Any], reason: str | None) -> bytes:
            return self._chunk(run, ident, choices=[{"index": 0, "delta": value, "finish_reason": reason}])

        yield delta({"role": "assistant", "content": ""}, None)
        try:
            async for kind, value in self._loop(ctx, run, stream=True):
                if kind == "step":
                    yield self._step_event(run, value)
                elif kind == "delta":
                    yield delta({"content": value}, None)
                else:
                    finish = value[1]
        except GatewayError as exc:
            yield b"data: " + json.dumps(exc.body()).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
            return
        yield delta({}, "stop" if finish == "tool_calls" else finish)
        if include_usage:
            yield self._chunk(run, ident, usage=self._usage(run))
        yield b"data: [DONE]\n\n"
