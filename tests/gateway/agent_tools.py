"""A real MCP server (the official SDK, Streamable HTTP) for agent runs, served by uvicorn in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent, AgentStatus, Visibility
from cockpit.integrations.models import AuthType, Integration, IntegrationKind, Transport
from cockpit.providers.models import Model
from tests.gateway.conftest import Org

ORDERS = {"42": "Order 42 shipped on 3 December by parcel post.", "7": "Order 7 is waiting for payment."}


def build_server() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("Orders")

    @server.tool()
    def lookup_order(order_id: str) -> str:
        """Look up an order by its id: where the order is and when it shipped."""
        for key, text in ORDERS.items():
            if key in order_id:
                return text
        return f"No order matches {order_id!r}."

    @server.tool()
    def refund_payment(payment: str) -> str:
        """Refund a payment (fails: the payments service is down)."""
        raise ToolError("the payments service is down")

    @server.tool()
    async def slow_report(topic: str) -> str:
        """Build a slow report about a topic."""
        await asyncio.sleep(30)
        return "late"

    return server


class ToolServer:
    def __init__(self) -> None:
        app = build_server().streamable_http_app(
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
        )
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ToolServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/mcp"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


TOOLS = [
    {
        "name": "lookup_order",
        "description": "Look up an order by its id: where the order is and when it shipped.",
        "input_schema": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
    {
        "name": "refund_payment",
        "description": "Refund a payment (fails: the payments service is down).",
        "input_schema": {
            "type": "object",
            "properties": {"payment": {"type": "string"}},
            "required": ["payment"],
        },
    },
]


async def setup_agent(
    db: AsyncSession,
    org: Org,
    tool_server: ToolServer,
    *,
    status: AgentStatus = AgentStatus.active,
    **agent: Any,
) -> tuple[Agent, Integration]:
    integration = Integration(
        account_id=org.account_id, name="Order desk", slug="orders", kind=IntegrationKind.mcp,
        transport=Transport.streamable_http, url=tool_server.url, auth_type=AuthType.none, auth_settings={},
        tools=TOOLS, enabled=True,
    )  # fmt: skip
    db.add(integration)
    await db.flush()
    model = await db.scalar(select(Model).where(Model.account_id == org.account_id, Model.name == "sim-chat"))
    assert model is not None
    values: dict[str, Any] = {
        "account_id": org.account_id, "name": "Support", "slug": "support",
        "instructions": "You help customers.",
        "model_id": model.id, "integration_ids": [str(integration.id)], "tools": {}, "starters": [],
        "visibility": Visibility.account, "group_ids": [], "max_steps": 4, "status": status,
    }  # fmt: skip
    values.update(agent)
    row = Agent(**values)
    db.add(row)
    await db.commit()
    return row, integration
