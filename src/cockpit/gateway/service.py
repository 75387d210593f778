"""The OpenAI-compatible gateway: authenticate, route, call the upstream, record the call.

The hot path does no database round-trip: callers and catalogues come from the in-memory
``Directory`` and the record goes to the ``Recorder`` (a journal append; the database write is
batched in the background).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from cockpit.config import Settings
from cockpit.credits.enforcement import CreditKeeper, Hold, InsufficientCredits
from cockpit.gateway import tokencount
from cockpit.gateway.agent_run import AGENT_PREFIX, AgentRunner, model_entry, runnable
from cockpit.gateway.directory import Caller, Catalog, Directory, Route
from cockpit.gateway.errors import GatewayError, invalid, model_not_found, unauthenticated
from cockpit.gateway.events import EventStream
from cockpit.gateway.inputs import FORBIDDEN_FIELDS, check_chat, check_common, read_body
from cockpit.gateway.upstreams import Call, Upstreams
from cockpit.kit.time import utcnow
from cockpit.kit.upstream_http import UpstreamClient
from cockpit.policies.engine import Decision
from cockpit.policies.models import ResourceType
from cockpit.providers.models import OUTPUT_LIMIT_FIELDS
from cockpit.usage.models import CallStatus, Operation
from cockpit.usage.recorder import Recorder
from cockpit.users.models import UserRole

log = logging.getLogger("cockpit.gateway")

# A record whose tokens must be counted by Cockpit from more text than this is completed in a
# thread: tokenizing megabytes on the event loop would hold up every other call.
INLINE_COUNT_BYTES = 16 * 1024
MAX_STORED_REQUEST_BYTES = 256 * 1024
MILLION = Decimal(1_000_000)
ADMIN_ROLES = frozenset({UserRole.owner, UserRole.admin})
JSON_TYPE = "application/json"


def cost_of(route: Route, input_tokens: int, output_tokens: int, cached_tokens: int) -> Decimal:
    """Exact USD cost. Cached input tokens are part of the input tokens and cost the cached-input
    price; a model without a cached-input price (0) charges them the input price."""
    cached = min(max(cached_tokens, 0), input_tokens)
    cached_price = route.cached_price if route.cached_price > 0 else route.input_price
    micro = (
        (input_tokens - cached) * route.input_price
        + cached * cached_price
        + output_tokens * route.output_price
    )
    return micro / MILLION


MICRO = Decimal("0.000001")


def credits_of(cost: Decimal, factor: Decimal) -> Decimal:
    """A call's credits: its cost x the credit factor, rounded half up to the millionth."""
    if factor <= 0 or cost <= 0:
        return Decimal(0)
    return (cost * factor).quantize(MICRO, rounding=ROUND_HALF_UP)


INTERNAL_ERROR = GatewayError(
    500,
    "Something went wrong in the gateway. The error was logged.",
    type="server_error",
    code="internal_error",
)


class Attribution:
    __slots__ = ("agent_id", "project_id")

    def __init__(self, project_id: uuid.UUID | None, agent_id: str | None) -> None:
        self.project_id, self.agent_id = project_id, agent_id


@dataclass(slots=True)
class Context:
    """What is known about a call so far, for its record."""

    caller: Caller
    operation: str
    created_at: datetime
    started: float
    attribution: Attribution
    catalog: Catalog | None = None
    body: dict[str, Any] = field(default_factory=dict)
    model_name: str = ""
    route: Route | None = None
    call: Call | None = None
    hold: Hold | None = None
    recorded: bool = False
    body_bytes: int = 0
    ended: float = 0.0
    # Told the tokens, cost and credits the call is recorded with (an agent run's stopped step).
    on_recorded: Callable[[int, int, Decimal, Decimal], None] | None = None


class Gateway:
    def __init__(
        self, settings: Settings, directory: Directory, recorder: Recorder, keeper: CreditKeeper | None = None
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.recorder = recorder
        self.keeper = keeper or CreditKeeper(
            directory.sessionmaker,
            generation=directory.generation,
            ttl_seconds=settings.credit_lease_ttl_seconds,
            idle_seconds=settings.credit_lease_idle_seconds,
        )
        # The upstream pool (aiohttp): made in the running loop on the first call, closed by aclose().
        self.client = UpstreamClient.from_settings(settings)
        self.upstreams = Upstreams(self.client)
        self.agents = AgentRunner(self)
        # Records waiting for Cockpit's own token count (see _record).
        self._counting: set[asyncio.Future[None]] = set()

    async def aclose(self) -> None:
        await self.drain()
        await self.client.aclose()

    # ---- who is calling ----

    async def authenticate(self, request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise unauthenticated(
                "Missing API token: send it as 'Authorization: Bearer <token>' (a Cockpit token with the "
                "gateway scope)."
            )
        caller = await self.directory.caller(raw.strip())
        if caller is None:
            raise unauthenticated("Invalid API token: it is unknown, revoked, or its user is deactivated.")
        if caller.expires_at is not None and caller.expires_at <= utcnow():
            raise unauthenticated("This API token has expired.")
        if "gateway" not in caller.scopes:
            raise GatewayError(
                403,
                "This API token does not have the gateway scope.",
                type="permission_error",
                code="insufficient_scope",
            )
        return caller

    def attribution(self, request: Request, caller: Caller, catalog: Catalog) -> Attribution:
        project_id = caller.project_id
        wanted = request.headers.get("x-cockpit-project", "").strip()
        if wanted:
            try:
                found: uuid.UUID | None = uuid.UUID(wanted)
                if found not in catalog.projects_by_id:
                    found = None
            except ValueError:
                found = catalog.projects_by_name.get(wanted.lower())
            if found is None:
                raise invalid(
                    f"Unknown project '{wanted[:100]}' in X-Cockpit-Project.", code="unknown_project"
                )
            if project_id is not None and found != project_id:
                raise invalid(
                    "This API token belongs to another project than the one in X-Cockpit-Project.",
                    code="project_mismatch",
                )
            if caller.role not in ADMIN_ROLES and (found, caller.user_id) not in catalog.members:
                raise GatewayError(
                    403,
                    f"You are not a member of the project '{catalog.projects_by_id[found]}'.",
                    type="permission_error",
                    code="not_project_member",
                )
            project_id = found
        agent = request.headers.get("x-cockpit-agent", "").strip() or None
        if agent is not None and (len(agent) > 100 or not agent.isprintable()):
            raise invalid("X-Cockpit-Agent must be at most 100 printable characters.", code="invalid_agent")
        return Attribution(project_id, agent)

    # ---- requests ----

    def _route(self, catalog: Catalog, name: str, capability: str) -> Route:
        route = catalog.routes.get(name)
        if route is None:
            raise model_not_found(name)
        caps = route.capabilities or frozenset({"chat"})
        if capability not in caps:
            what = "chat completions" if capability == "chat" else "embeddings"
            raise invalid(
                f"The model '{name}' does not support {what}.", param="model", code="unsupported_operation"
            )
        return route

    def _call(
        self, route: Route, body: dict[str, Any], operation: str, stream: bool, include_usage: bool
    ) -> Call:
        read_timeout = self.settings.upstream_read_timeout
        custom = route.upstream.settings.get("timeout_seconds")
        if isinstance(custom, int | float) and not isinstance(custom, bool) and custom > 0:
            read_timeout = float(custom)
        return Call(
            route=route,
            body=body,
            operation=operation,
            stream=stream,
            include_usage=include_usage,
            connect_timeout=self.settings.upstream_connect_timeout,
            read_timeout=read_timeout,
        )

    async def chat_completions(self, request: Request) -> Response:
        return await self._handle(request, Operation.chat)

    async def embeddings(self, request: Request) -> Response:
        return await self._handle(request, Operation.embedding)

    async def _handle(self, request: Request, operation: Operation) -> Response:
        created_at = utcnow()
        started = time.perf_counter()
        try:
            caller = await self.authenticate(request)
        except GatewayError as exc:
            return exc.response()  # no account to record it under
        ctx = Context(caller, operation.value, created_at, started, Attribution(caller.project_id, None))
        try:
            ctx.catalog = catalog = await self.directory.catalog(caller.account_id)
            self._require_api_access(caller, catalog)
            ctx.body = body = await read_body(request, self.settings.max_body_bytes_gateway, ctx)
            ctx.attribution = self.attribution(request, caller, catalog)
            model_name = check_common(body)
            if operation is Operation.chat:
                stream, include_usage = check_chat(body)
                if model_name.startswith(AGENT_PREFIX):  # a run of one of the account's agents
                    return await self.agents.respond(
                        ctx, self.agents.prepare(ctx, body), stream, include_usage
                    )
                ctx.route = route = self._route(catalog, model_name, "chat")
            else:
                if "input" not in body:
                    raise invalid("'input' is required.", param="input")
                stream = include_usage = False
                ctx.route = route = self._route(catalog, model_name, "embeddings")
            self._require_model(caller, catalog, route)  # before any credit is held
            if catalog.credit_factor > 0:
                ctx.hold = await self._hold(ctx, route, body)
            ctx.call = call = self._call(route, body, operation.value, stream, include_usage)
            call.started = started
            if operation is Operation.embedding:
                content = await self.upstreams.embed(call)
            elif stream:
                chunks = await self.upstreams.start_stream(call)
                return EventStream(self._relay(chunks, ctx, call), on_close=lambda: self._closed(ctx))
            else:
                content = await self.upstreams.complete(call)
        except GatewayError as exc:
            self._record(ctx, status=CallStatus.error, http_status=exc.status, error=exc)
            return exc.response()
        except Exception:
            # A bug, not the caller's fault: still recorded, then answered with a 500 by the app.
            self._record(ctx, status=CallStatus.error, http_status=500, error=INTERNAL_ERROR)
            raise
        self._record(ctx, status=CallStatus.success, http_status=200)
        return Response(content, media_type=JSON_TYPE)

    # ---- access policies (decided in memory from the directory's catalogue) ----

    @staticmethod
    def _decide(caller: Caller, catalog: Catalog, kind: ResourceType, resource: str) -> Decision:
        return catalog.policies.decide(
            account_id=caller.account_id,
            user_id=caller.user_id,
            group_id=caller.group_id,
            role=caller.role,
            resource_type=kind,
            resource=resource,
        )

    def _require_api_access(self, caller: Caller, catalog: Catalog) -> None:
        decision = self._decide(caller, catalog, ResourceType.feature, "gateway.api_access")
        if not decision.allowed:
            raise GatewayError(
                403,
                decision.explain("gateway.api_access"),
                type="permission_error",
                code="feature_not_allowed",
            )

    def _require_model(self, caller: Caller, catalog: Catalog, route: Route) -> None:
        decision = self._decide(caller, catalog, ResourceType.model, str(route.model_id))
        if not decision.allowed:
            raise GatewayError(
                403,
                decision.explain(route.name),
                type="permission_error",
                code="model_not_allowed",
                param="model",
            )

    async def _hold(self, ctx: Context, route: Route, body: dict[str, Any]) -> Hold | None:
        """Reserve the call's credits (member, group and account) and clamp its output limit so that
        it cannot cost more; 402 when they cannot cover it."""
        caller = ctx.caller
        assert ctx.catalog is not None
        try:
            hold = await self.keeper.hold(
                account_id=caller.account_id,
                user_id=caller.user_id,
                group_id=caller.group_id,
                factor=ctx.catalog.credit_factor,
                pricing=route.pricing,
                body=body,
                operation=ctx.operation,
            )
        except InsufficientCredits as exc:
            raise GatewayError(
                402, str(exc), type="insufficient_credits", code="insufficient_credits"
            ) from None
        except (SQLAlchemyError, OSError):
            # Credits cannot be checked (the database is unreachable): the call is not made.
            log.exception("could not hold credits for a gateway call")
            raise GatewayError(
                503,
                "Credits cannot be checked just now; the call was not made. Try again shortly.",
                type="server_error",
                code="credits_unavailable",
            ) from None
        if hold is not None and hold.max_output_tokens is not None:
            # Every output-limit field the caller sent is clamped (an upstream may read any of
            # them); with none, the provider's own field carries the limit.
            limit = hold.max_output_tokens
            sent = [name for name in OUTPUT_LIMIT_FIELDS if isinstance(body.get(name), int)]
            for name in sent:
                body[name] = min(body[name], limit)
            if not sent:
                param = route.upstream.settings.get("output_limit_param")
                body[param if param in OUTPUT_LIMIT_FIELDS else "max_tokens"] = limit
        return hold

    def _closed(self, ctx: Context) -> None:
        """A stream's response ended; if its relay never ran (the caller left first), record it now."""
        if not ctx.recorded:
            self._record(ctx, status=CallStatus.client_disconnected, http_status=499)

    async def _relay(self, chunks: AsyncIterator[bytes], ctx: Context, call: Call) -> AsyncIterator[bytes]:
        status, error = CallStatus.client_disconnected, None
        try:
            async for chunk in chunks:
                yield chunk
            if call.failure is not None:
                status, error = CallStatus.error, call.failure
            else:
                status = CallStatus.success
        finally:
            if status is CallStatus.client_disconnected:
                aclose = getattr(chunks, "aclose", None)
                if aclose is not None:
                    # The caller is gone; closing the upstream must not stop the call being recorded.
                    with contextlib.suppress(BaseException):
                        await aclose()
            http_status = 499 if status is CallStatus.client_disconnected else 200
            self._record(ctx, status=status, http_status=http_status, error=error)

    # ---- recording ----

    def _record(
        self, ctx: Context, *, status: CallStatus, http_status: int, error: GatewayError | None = None
    ) -> None:
        """Hand the call's record to the recorder (a journal append; no database round-trip), and
        settle its hold: what it did not use goes back to its member's lease.

        When the upstream reported no usage, Cockpit counts the tokens itself; from a large body
        that is done in a thread and the record follows when it is done (``drain`` waits for it)."""
        if ctx.recorded:
            return
        ctx.recorded = True
        ctx.ended = time.perf_counter()
        call, route = ctx.call, ctx.route
        answer = ""
        if call is not None and route is not None and call.usage is None:
            answer = call.answer()
            reached_upstream = call.first_token is not None or bool(answer)
            if reached_upstream or call.failure is not None or status is CallStatus.client_disconnected:
                # The upstream reported no usage (e.g. a stream cut short): count what was sent and
                # what came back, and say so.
                model = route.upstream_model
                if ctx.body_bytes + len(answer) <= INLINE_COUNT_BYTES:
                    counted = (
                        tokencount.count_input(ctx.body, model=model, operation=ctx.operation),
                        tokencount.count_text(answer, model=model),
                    )
                    self._write_record(ctx, status, http_status, error, counted)
                else:
                    task = asyncio.ensure_future(
                        self._record_counted(ctx, status, http_status, error, answer)
                    )
                    self._counting.add(task)
                    task.add_done_callback(self._counting.discard)
                return
        self._write_record(ctx, status, http_status, error, None)

    async def _record_counted(
        self, ctx: Context, status: CallStatus, http_status: int, error: GatewayError | None, answer: str
    ) -> None:
        assert ctx.route is not None
        model = ctx.route.upstream_model

        def count() -> tuple[int, int]:
            return (
                tokencount.count_input(ctx.body, model=model, operation=ctx.operation),
                tokencount.count_text(answer, model=model),
            )

        try:
            counted = await asyncio.to_thread(count)
        except Exception:  # never lose the record (nor its hold) over an estimate
            log.exception("could not count the tokens of a gateway call")
            counted = (0, 0)
        self._write_record(ctx, status, http_status, error, counted)

    async def drain(self) -> None:
        """Wait for records whose tokens are being counted (before the recorder stops)."""
        while self._counting:
            await asyncio.gather(*self._counting, return_exceptions=True)

    def _write_record(
        self,
        ctx: Context,
        status: CallStatus,
        http_status: int,
        error: GatewayError | None,
        counted: tuple[int, int] | None,
    ) -> None:
        caller, route, call = ctx.caller, ctx.route, ctx.call
        input_tokens = output_tokens = cached = 0
        estimated = False
        cost = Decimal(0)
        ttft_ms: int | None = None
        if call is not None and route is not None:
            if call.first_token is not None:
                ttft_ms = round((call.first_token - ctx.started) * 1000)
            if call.usage is not None:
                input_tokens, output_tokens, cached = call.usage
            elif counted is not None:
                estimated = True
                input_tokens, output_tokens = counted
            cost = cost_of(route, input_tokens, output_tokens, cached)
        credits = credits_of(cost, ctx.catalog.credit_factor) if ctx.catalog is not None else Decimal(0)
        if ctx.on_recorded is not None:
            ctx.on_recorded(input_tokens, output_tokens, cost, credits)
        record: dict[str, Any] = {
            "id": uuid.uuid4(),
            "account_id": caller.account_id,
            "created_at": ctx.created_at,
            "user_id": caller.user_id,
            "group_id": caller.group_id,
            "project_id": ctx.attribution.project_id,
            "agent_id": ctx.attribution.agent_id,
            "api_token_id": caller.token_id,
            "model_id": route.model_id if route else None,
            "model": ctx.model_name[:200],
            "provider_id": route.upstream.provider_id if route else None,
            "provider_kind": route.upstream.kind.value if route else None,
            "operation": ctx.operation,
            "stream": call.stream if call else ctx.body.get("stream") is True,
            "status": status.value,
            "error_type": error.code if error else None,
            "error_message": error.message[:500] if error else None,
            "http_status": http_status,
            "latency_ms": round(((ctx.ended or time.perf_counter()) - ctx.started) * 1000),
            "ttft_ms": ttft_ms,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cached_tokens": cached,
            "tokens_estimated": estimated,
            "cost_usd": cost,
            "credits": credits,
            "upstream_id": call.upstream_id if call else None,
        }
        if ctx.hold is not None:
            self.keeper.settle(ctx.hold, credits)
            record["credit_lease_id"] = ctx.hold.lease.id
        if ctx.catalog is not None and ctx.catalog.store_content and ctx.body:
            self._store_content(record, ctx.catalog, ctx.created_at, ctx.body, call)
        self.recorder.record(record)

    @staticmethod
    def _store_content(
        record: dict[str, Any],
        catalog: Catalog,
        created_at: datetime,
        body: dict[str, Any],
        call: Call | None,
    ) -> None:
        # A body refused for naming credentials must not have them kept.
        stored = {k: ("[redacted]" if k in FORBIDDEN_FIELDS else v) for k, v in body.items()}
        text = json.dumps(stored, default=str)
        if len(text) > MAX_STORED_REQUEST_BYTES:
            record["request_content"] = {"truncated": True, "bytes": len(text)}
        else:
            record["request_content"] = stored
        output: str | None = None
        if call is not None:
            output = call.answer()
            if call.operation == Operation.embedding.value and call.usage is not None:
                output = "(embedding vectors)"
        record["response_content"] = output[:MAX_STORED_REQUEST_BYTES] if output else None
        record["content_expires_at"] = created_at + timedelta(days=catalog.retention_days)

    # ---- models ----

    async def list_models(self, request: Request) -> Response:
        try:
            caller = await self.authenticate(request)
        except GatewayError as exc:
            return exc.response()
        catalog = await self.directory.catalog(caller.account_id)
        try:
            self._require_api_access(caller, catalog)
        except GatewayError as exc:
            return exc.response()
        data = [
            {"id": r.name, "object": "model", "created": r.created, "owned_by": r.upstream.name}
            for r in sorted(catalog.routes.values(), key=lambda r: r.name)
            if self._decide(caller, catalog, ResourceType.model, str(r.model_id)).allowed
        ]
        ctx = Context(caller, "", utcnow(), 0.0, Attribution(None, None), catalog=catalog)
        data += [model_entry(a) for _, a in sorted(catalog.agents.items()) if runnable(self, ctx, a)]
        return Response(json.dumps({"object": "list", "data": data}).encode(), media_type=JSON_TYPE)

    async def retrieve_model(self, request: Request) -> Response:
        try:
            caller = await self.authenticate(request)
        except GatewayError as exc:
            return exc.response()
        catalog = await self.directory.catalog(caller.account_id)
        name = request.path_params["model"]
        try:
            self._require_api_access(caller, catalog)  # before the catalogue says what exists
            agent = catalog.agents.get(name[len(AGENT_PREFIX) :]) if name.startswith(AGENT_PREFIX) else None
            ctx = Context(caller, "", utcnow(), 0.0, Attribution(None, None), catalog=catalog)
            if agent is not None and runnable(self, ctx, agent):
                return Response(json.dumps(model_entry(agent)).encode(), media_type=JSON_TYPE)
            route = catalog.routes.get(name)
            if route is None:
                raise model_not_found(name)
            self._require_model(caller, catalog, route)
        except GatewayError as exc:
            return exc.response()
        payload = {
            "id": route.name,
            "object": "model",
            "created": route.created,
            "owned_by": route.upstream.name,
        }
        return Response(json.dumps(payload).encode(), media_type=JSON_TYPE)
