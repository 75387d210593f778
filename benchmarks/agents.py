"""Agent runs through Cockpit against the equivalent direct calls, and tool calls through Cockpit
against calling the MCP server directly, in one run.

    python benchmarks/agents.py [--backend sqlite|postgresql] [--runs 200]

Set-up: a fresh database; an account whose model ``sim`` is the built-in simulated provider with no
delay (so that what is measured is Cockpit, not a model); a local MCP server (the official SDK,
Streamable HTTP, uvicorn in a thread) with one tool; an agent ``orders`` using it; one ``cockpit
serve`` process. Each run asks "Where is my order 42?": the simulated model calls the tool, then
answers with its result (2 model calls + 1 tool call).

1. **Agent run vs the equivalent direct calls**: the agent run (one request) is interleaved with the
   same work done by the client: model call 1 through the gateway (with the tool offered), the tool
   called directly on the MCP server (a new MCP session, as Cockpit opens one per call, on an HTTP
   client sharing one TLS context, as Cockpit's do), model call 2 through the gateway (with the tool
   result). Reports p50/p99 of both and the overhead per step (3 steps: 2 model calls, 1 tool call).
2. **Tool call latency**: the ``latency_ms`` Cockpit recorded for each tool call (the whole call:
   session set-up, the call, the result) vs the same call made directly with a new session each
   time (on a client sharing one TLS context; and with the SDK's default client, which makes a TLS
   context per client), and with one MCP session kept open.
Numbers, not assertions; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import httpx2
import uvicorn
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit.accounts.service import create_account
from cockpit.agents.models import Agent, Visibility
from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.integrations.models import AuthType, Integration, IntegrationKind, Transport
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.usage.models import UsageRecord
from gateway import SECRET, drop_database, free_port, fresh_database, start

QUESTION = "Where is my order 42?"
TLS = httpx2.create_ssl_context()


def tool_server() -> tuple[uvicorn.Server, str]:
    server: MCPServer[Any] = MCPServer("Orders")

    @server.tool()
    def lookup_order(order_id: str) -> str:
        """Look up an order by its id: where the order is and when it shipped."""
        return "Order 42 shipped on 3 December by parcel post."

    app = server.streamable_http_app(
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    port = free_port()
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=running.run, daemon=True).start()
    while not running.started:
        time.sleep(0.02)
    return running, f"http://127.0.0.1:{port}/mcp"


async def prepare(url: str, mcp_url: str) -> str:
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        account, owner = await create_account(
            session, name="Bench", owner_email=f"bench-{uuid.uuid4().hex[:6]}@example.com",
            owner_password="benchmark-password-1",
        )  # fmt: skip
        actor = Actor.system(account.id)
        provider = await providers.create_provider(
            session, actor, name="Simulated", kind=ProviderKind.simulated, secret_key=SECRET,
            allow_private=True, settings={"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 40},
        )  # fmt: skip
        model = await providers.create_model(
            session, actor, name="sim", provider_id=provider.id, upstream_model="gpt-4o-mini"
        )
        integration = Integration(
            account_id=account.id, name="Orders", slug="orders", kind=IntegrationKind.mcp,
            transport=Transport.streamable_http, url=mcp_url, auth_type=AuthType.none, auth_settings={},
            tools=[{"name": "lookup_order", "description": "Look up an order by its id.",
                    "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}},
                                     "required": ["order_id"]}}],
        )  # fmt: skip
        session.add(integration)
        await session.flush()
        session.add(Agent(
            account_id=account.id, name="Orders", slug="orders", instructions="You answer about orders.",
            model_id=model.id, integration_ids=[str(integration.id)], tools={}, starters=[],
            visibility=Visibility.account, group_ids=[], max_steps=4,
        ))  # fmt: skip
        _, token = await issue_token(session, actor, owner, name="bench", scopes=["gateway"])
        await session.commit()
    await engine.dispose()
    return token


async def direct_tool(mcp_url: str, *, shared_tls: bool) -> float:
    """One tool call on a new MCP session; with ``shared_tls`` on an HTTP client made with one TLS
    context for all (as Cockpit does), else with the SDK's default client (a new context each time)."""
    started = time.perf_counter()
    http = httpx2.AsyncClient(verify=TLS) if shared_tls else None
    async with (
        streamable_http_client(mcp_url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        await session.call_tool("lookup_order", {"order_id": QUESTION})
    return time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(base: str, token: str, mcp_url: str, runs: int) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}
    ask = [{"role": "system", "content": "You answer about orders."}, {"role": "user", "content": QUESTION}]
    schema = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}
    function = {"name": "orders__lookup_order", "description": "Look up an order.", "parameters": schema}
    tools = [{"type": "function", "function": function}]
    found: dict[str, list[float]] = {
        "agent": [],
        "direct": [],
        "tool_fresh": [],
        "tool_sdk": [],
        "tool_kept": [],
    }
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        for _ in range(5):  # warm-up: connections, catalogue, tokenizer
            await http.post("/v1/chat/completions", json={"model": "agent:orders", "messages": ask[1:]})
        for _ in range(runs):
            started = time.perf_counter()
            response = await http.post(
                "/v1/chat/completions", json={"model": "agent:orders", "messages": ask[1:]}
            )
            found["agent"].append(time.perf_counter() - started)
            assert "Order 42 shipped" in response.json()["choices"][0]["message"]["content"]

            started = time.perf_counter()
            first = (
                await http.post(
                    "/v1/chat/completions", json={"model": "sim", "messages": ask, "tools": tools}
                )
            ).json()
            call = first["choices"][0]["message"]["tool_calls"][0]
            found["tool_fresh"].append(await direct_tool(mcp_url, shared_tls=True))
            found["tool_sdk"].append(await direct_tool(mcp_url, shared_tls=False))
            followed = [
                *ask,
                first["choices"][0]["message"],
                {"role": "tool", "tool_call_id": call["id"], "content": "Order 42 shipped on 3 December."},
            ]
            await http.post(
                "/v1/chat/completions", json={"model": "sim", "messages": followed, "tools": tools}
            )
            found["direct"].append(time.perf_counter() - started - found["tool_sdk"][-1])
    async with streamable_http_client(mcp_url) as streams, ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        for _ in range(runs):
            started = time.perf_counter()
            await session.call_tool("lookup_order", {"order_id": QUESTION})
            found["tool_kept"].append(time.perf_counter() - started)
    return found


async def recorded_tool_latency(url: str, runs: int) -> list[float]:
    engine = make_engine(url)
    deadline = time.time() + 60
    async with make_sessionmaker(engine)() as session:
        while True:
            rows = (
                await session.scalars(
                    select(UsageRecord.latency_ms).where(UsageRecord.operation == "tool_call")
                )
            ).all()
            if len(rows) >= runs or time.time() > deadline:
                break
            await asyncio.sleep(0.5)
            await session.rollback()
    await engine.dispose()
    return [ms / 1000 for ms in rows[-runs:]]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cockpit-agents-bench-"))
    mcp, mcp_url = tool_server()
    url = await fresh_database(args.backend, workdir, "agents")
    await asyncio.to_thread(upgrade, url)
    token = await prepare(url, mcp_url)
    port = free_port()
    env = {
        **os.environ, "COCKPIT_DATABASE_URL": url, "COCKPIT_DATA_DIR": str(workdir / "data"),
        "COCKPIT_SECRET_KEY": SECRET, "COCKPIT_ALLOW_PRIVATE_UPSTREAMS": "true",
        "COCKPIT_ENV": "production", "COCKPIT_USAGE_FLUSH_SECONDS": "0.5",
    }  # fmt: skip
    process, _ = start(
        [sys.executable, "-m", "cockpit", "serve", "--port", str(port)], env, "Uvicorn running on"
    )
    try:
        found = await measure(f"http://127.0.0.1:{port}", token, mcp_url, args.runs)
        recorded = await recorded_tool_latency(url, args.runs)
    finally:
        process.terminate()
        process.wait(timeout=30)
        mcp.should_exit = True
        if args.backend == "postgresql":
            await drop_database(url)

    def ms(values: list[float]) -> str:
        return f"p50 {pct(values, 0.5) * 1000:7.2f} ms   p99 {pct(values, 0.99) * 1000:7.2f} ms"

    print(f"\nAgent runs on {args.backend}, {args.runs} runs (2 model calls + 1 tool call each)")
    print(f"  agent run through Cockpit        {ms(found['agent'])}")
    print(f"  the same calls made by the client {ms(found['direct'])}")
    overhead = statistics.median(found["agent"]) - statistics.median(found["direct"])
    print(
        f"  overhead of the run: {overhead * 1000:.2f} ms at the median, "
        f"{overhead * 1000 / 3:.2f} ms per step"
    )
    print("Tool call latency")
    print(f"  through Cockpit (recorded)       {ms(recorded)}")
    print(f"  direct, a new MCP session        {ms(found['tool_fresh'])}  (one TLS context for all)")
    print(f"  direct, the SDK's default client {ms(found['tool_sdk'])}  (a new TLS context each)")
    print(f"  direct, one MCP session kept     {ms(found['tool_kept'])}")


if __name__ == "__main__":
    asyncio.run(main())
