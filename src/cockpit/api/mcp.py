"""Cockpit's own MCP server at ``/mcp`` (Streamable HTTP, stateless, JSON answers).

Any MCP client — an external one, or an agent of this account through an integration — can ask it,
with a Cockpit API token (``Authorization: Bearer``, a token with the gateway or admin scope), about
what that token's person may already see: their credits and allowance, their usage, their latest
requests, the models they may use; administrators also the account's cost summary and top spenders.
Every tool is read-only and answers with JSON text. A call without a valid token gets 401.

An agent of the account reaches it through an integration whose ``auth_settings`` has
``"on_behalf_of": true``: the agent runner then sends a short-lived assertion for the person running
the agent (``auth.delegation``) instead of a stored credential.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from cockpit.analytics import service as analytics
from cockpit.analytics.filters import Dimension, Filters
from cockpit.analytics.filters import Scope as ViewScope
from cockpit.analytics.labels import names
from cockpit.analytics.schemas import BreakdownOut, SummaryOut
from cockpit.analytics.service import Metric
from cockpit.auth import delegation, tokens
from cockpit.authz.actor import Actor, TokenScope
from cockpit.authz.permissions import Permission
from cockpit.credits import settings as credits
from cockpit.credits.schemas.settings import OverviewOut
from cockpit.kit.pagination import PageParams
from cockpit.kit.time import utcnow
from cockpit.kit.web import client_ip, user_agent
from cockpit.policies import service as policies
from cockpit.policies.models import ResourceType
from cockpit.usage import service as usage
from cockpit.usage.queries import RequestFilters

ACTOR_KEY = "cockpit.actor"
MAX_DAYS = 90
SCOPES = frozenset({TokenScope.gateway, TokenScope.admin})


def _actor(ctx: Context) -> Actor:
    request = ctx.request_context.request
    actor = request.scope.get(ACTOR_KEY) if isinstance(request, Request) else None
    if not isinstance(actor, Actor):
        raise PermissionError("Not signed in.")
    return actor


def _dump(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _period(days: int) -> Filters:
    days = max(1, min(int(days), MAX_DAYS))
    end = utcnow()
    return Filters(start=end - timedelta(days=days), end=end)


class CockpitMCP:
    """The ASGI app served at /mcp: authenticates the bearer token, then hands over to the SDK."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], secret_key: str) -> None:
        self.sessionmaker = sessionmaker
        self.secret_key = secret_key
        # The SDK configures the root logger (a rich console handler at INFO) when nothing has yet:
        # Cockpit's logging is its own, so the SDK finds a handler there and leaves it alone.
        root, placeholder = logging.getLogger(), logging.NullHandler()
        root.addHandler(placeholder)
        try:
            self.server: MCPServer[Any] = MCPServer(
                "Cockpit",
                instructions="Read-only answers about the caller's credits, usage, requests and models.",
                log_level="WARNING",
            )
        finally:
            root.removeHandler(placeholder)
        self._tools()
        self.app = self._build()

    def _build(self) -> Starlette:
        return self.server.streamable_http_app(
            streamable_http_path="/mcp",
            stateless_http=True,
            json_response=True,
            # Cockpit serves behind any host name; the token, not the Host header, authorises.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve while in this block (the SDK's session manager runs once per app: a new one each time)."""
        self.app = self._build()
        async with self.server.session_manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        header = request.headers.get("authorization", "")
        kind, _, raw = header.partition(" ")
        actor = None
        if kind.lower() == "bearer" and raw.strip():
            async with self.sessionmaker() as session:
                if raw.strip().startswith(delegation.PREFIX):  # an agent run on behalf of its person
                    actor = await delegation.authenticate(session, raw.strip(), self.secret_key)
                else:
                    actor = await tokens.authenticate_token(
                        session, raw.strip(), ip=client_ip(request), user_agent=user_agent(request)
                    )
                await session.commit()
        if actor is None or not SCOPES.intersection(actor.scopes):
            response = JSONResponse(
                {
                    "error": {
                        "code": "invalid_token",
                        "message": "Send a valid Cockpit API token as a bearer token.",
                    }
                },
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="cockpit"'},
            )
            await response(scope, receive, send)
            return
        scope[ACTOR_KEY] = actor
        await self.app(scope, receive, send)

    def _tools(self) -> None:
        server, sessions = self.server, self.sessionmaker

        @server.tool()
        async def my_credits(ctx: Context) -> str:
            """My credits this cycle: allowance, extra credits, used, held and what is left."""
            actor = _actor(ctx)
            async with sessions() as session:
                overview = await credits.overview(session, actor)
                data = OverviewOut.of(overview).model_dump(mode="json")
            return _dump({"cycle": data.get("cycle"), "tracking_enabled": data.get("tracking_enabled"),
                          "me": data.get("me")})  # fmt: skip

        @server.tool()
        async def my_usage_summary(ctx: Context, days: int = 30) -> str:
            """My calls over the last `days` days (1-90): cost, requests, errors, tokens, and the change
            against the previous period."""
            actor = _actor(ctx)
            async with sessions() as session:
                scope = ViewScope(actor.account_id, user_id=actor.user_id)
                found = await analytics.summary(session, scope, _period(days))
            return _dump(SummaryOut.of_summary(found).model_dump(mode="json", by_alias=True))

        @server.tool()
        async def my_requests(ctx: Context, limit: int = 10) -> str:
            """My latest gateway calls (at most 50): time, model, status, tokens, cost."""
            actor = _actor(ctx)
            async with sessions() as session:
                filters = RequestFilters(user_id=actor.user_id)
                page = await usage.search_requests(
                    session, actor, filters, PageParams(page=1, per_page=max(1, min(int(limit), 50)))
                )
            rows = [
                {"at": r.created_at, "model": r.model, "status": r.status, "operation": r.operation,
                 "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                 "cost_usd": str(r.cost_usd), "credits": str(r.credits)}
                for r in (row.record for row in page.items)
            ]  # fmt: skip
            return _dump({"requests": rows, "total": page.total})

        @server.tool()
        async def my_models(ctx: Context) -> str:
            """The models I may use through the gateway."""
            actor = _actor(ctx)
            async with sessions() as session:
                if actor.user_id is None:
                    return _dump({"models": []})
                _user, rows = await policies.effective_access(
                    session, actor, actor.user_id, resource_type=ResourceType.model
                )
            return _dump({"models": sorted(r.label for r in rows if r.decision.allowed)})

        @server.tool()
        async def account_cost_summary(ctx: Context, days: int = 30) -> str:
            """Administrators: the whole account's cost, requests and people over the last `days` days."""
            actor = _actor(ctx)
            actor.require(Permission.usage_read_all)
            async with sessions() as session:
                found = await analytics.summary(session, ViewScope(actor.account_id), _period(days))
            return _dump(SummaryOut.of_summary(found).model_dump(mode="json", by_alias=True))

        @server.tool()
        async def top_spenders(ctx: Context, days: int = 30) -> str:
            """Administrators: the ten people who cost the most over the last `days` days."""
            actor = _actor(ctx)
            actor.require(Permission.usage_read_all)
            async with sessions() as session:
                found = await analytics.top_users(
                    session, ViewScope(actor.account_id), _period(days), names, metric=Metric.cost
                )
                data = BreakdownOut.of(found).model_dump(mode="json")
            return _dump({"by": Dimension.user.value, "items": data.get("items")})


async def tool_specs() -> list[dict[str, Any]]:
    """The tools this server offers, as an integration lists them (the demo connects it)."""
    server = CockpitMCP(async_sessionmaker(), secret_key="")  # only the tool list: no database, no key
    tools = await server.server.list_tools()
    return [
        {"name": t.name, "description": t.description or "", "input_schema": t.input_schema} for t in tools
    ]
