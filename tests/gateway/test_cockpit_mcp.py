"""Cockpit's own MCP server at /mcp: the official MCP client lists and calls its read-only tools with a
Cockpit API token (or an agent's on-behalf-of assertion); anything else gets 401."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth import delegation
from tests.conftest import TEST_SECRET
from tests.gateway.conftest import Org, client_for


@asynccontextmanager
async def mcp_session(app: Any, token: str) -> AsyncIterator[ClientSession]:
    http = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app),
        base_url="http://cockpit",
        headers={"Authorization": f"Bearer {token}"},
    )
    async with (
        app.state.mcp.running(),
        http,
        streamable_http_client("http://cockpit/mcp", http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session


def _json(result: Any) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


async def test_tools_answer_for_the_token_person(db: AsyncSession, gateway_app: Any, org: Org) -> None:
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": "Hi?"}])
    await gateway_app.state.recorder.flush()
    async with mcp_session(gateway_app, org.member_token) as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert {"my_credits", "my_usage_summary", "my_requests", "my_models", "top_spenders"} <= names
        requests = _json(await session.call_tool("my_requests", {"limit": 5}))
        assert requests["total"] == 1
        assert requests["requests"][0]["model"] == "sim-chat"
        models = _json(await session.call_tool("my_models", {}))
        assert "sim-chat" in models["models"]
        summary = _json(await session.call_tool("my_usage_summary", {"days": 7}))
        assert summary["requests"] == 1
        credits = _json(await session.call_tool("my_credits", {}))
        assert "me" in credits
        refused = await session.call_tool("top_spenders", {})
        assert refused.is_error  # administrators only


async def test_an_admin_sees_the_account_and_assertions_stand_for_their_person(
    db: AsyncSession, gateway_app: Any, org: Org
) -> None:
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": "Hi?"}])
    await gateway_app.state.recorder.flush()
    async with mcp_session(gateway_app, org.admin_token) as session:
        top = _json(await session.call_tool("top_spenders", {"days": 1}))
        assert [item["requests"] for item in top["items"]] == [1]
        mine = _json(await session.call_tool("my_requests", {}))
        assert mine["total"] == 0  # the admin made no call
    assertion = delegation.mint(org.account_id, org.member.id, TEST_SECRET)
    async with mcp_session(gateway_app, assertion) as session:
        assert _json(await session.call_tool("my_requests", {}))["total"] == 1


async def test_no_valid_token_no_answer(db: AsyncSession, gateway_app: Any, org: Org) -> None:
    transport = httpx2.ASGITransport(app=gateway_app)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    forged = delegation.mint(org.account_id, org.member.id, "another-secret-key-entirely")
    async with (
        gateway_app.state.mcp.running(),
        httpx2.AsyncClient(transport=transport, base_url="http://c") as http,
    ):
        for header in ({}, {"Authorization": "Bearer cpk_nope"}, {"Authorization": f"Bearer {forged}"}):
            response = await http.post("/mcp", json=body, headers={**header, "Accept": "application/json"})
            assert response.status_code == 401
            assert "token" not in response.text.lower() or "valid" in response.text
