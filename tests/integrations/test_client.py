"""The integrations runtime against real servers: MCP over Streamable HTTP and an OpenAPI service."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from cockpit.integrations import client
from cockpit.integrations.client import Connection, IntegrationFailure
from cockpit.integrations.models import IntegrationKind, Transport
from tests.integrations import servers
from tests.integrations.conftest import Upstreams


def mcp_conn(url: str, **changes: Any) -> Connection:
    conn = Connection(
        integration_id=uuid.uuid4(), kind=IntegrationKind.mcp, transport=Transport.streamable_http, url=url,
        openapi_document=None, headers={}, query={}, timeout_seconds=10.0,
        max_response_bytes=client.MAX_RESPONSE_BYTES, allow_private=True,
    )  # fmt: skip
    return replace(conn, **changes)


def api_conn(url: str, **changes: Any) -> Connection:
    conn = mcp_conn(url, kind=IntegrationKind.openapi, transport=Transport.http)
    conn = replace(conn, openapi_document=servers.OPENAPI_DOCUMENT, headers={"x-api-key": servers.API_KEY})
    return replace(conn, **changes)


async def test_mcp_tools_are_listed(upstreams: Upstreams) -> None:
    tools = {t.name: t for t in await client.list_tools(mcp_conn(upstreams.mcp))}
    assert set(tools) == {"add", "boom", "hang", "huge"}
    assert tools["add"].description == "Add two numbers."
    assert set(tools["add"].input_schema["properties"]) == {"a", "b"}


async def test_mcp_call_succeeds_and_fails(upstreams: Upstreams) -> None:
    outcome = await client.call_tool(mcp_conn(upstreams.mcp), "add", {"a": 2, "b": 40})
    assert outcome.ok
    assert outcome.text == "42"
    assert outcome.error is None
    failed = await client.call_tool(mcp_conn(upstreams.mcp), "boom", {"reason": "no fuel"})
    assert not failed.ok
    assert "no fuel" in failed.text


async def test_mcp_call_times_out(upstreams: Upstreams) -> None:
    with pytest.raises(IntegrationFailure) as caught:
        await client.call_tool(mcp_conn(upstreams.mcp, timeout_seconds=1.0), "hang", {})
    assert caught.value.kind == "timeout"


async def test_mcp_huge_result_is_truncated_saying_so(upstreams: Upstreams) -> None:
    outcome = await client.call_tool(mcp_conn(upstreams.mcp), "huge", {})
    assert outcome.ok
    assert client.MAX_RESPONSE_BYTES < len(outcome.text.encode()) < client.MAX_RESPONSE_BYTES + 200
    assert "truncated" in outcome.text


async def test_mcp_answer_far_too_large_fails(upstreams: Upstreams) -> None:
    with pytest.raises(IntegrationFailure) as caught:
        await client.call_tool(mcp_conn(upstreams.mcp, max_response_bytes=10_000), "huge", {})
    assert caught.value.kind == "too_large"


async def test_mcp_without_the_token_is_unauthorized(upstreams: Upstreams) -> None:
    with pytest.raises(IntegrationFailure) as caught:
        await client.list_tools(mcp_conn(upstreams.secure))
    assert caught.value.kind == "unauthorized"
    assert "401" in caught.value.message
    conn = mcp_conn(upstreams.secure, headers={"authorization": f"Bearer {servers.SECURE_TOKEN}"})
    assert len(await client.list_tools(conn)) == 4


async def test_unreachable_and_forbidden_addresses(upstreams: Upstreams) -> None:
    with pytest.raises(IntegrationFailure) as caught:
        await client.list_tools(mcp_conn("http://127.0.0.1:9/mcp"))
    assert caught.value.kind == "refused"
    with pytest.raises(IntegrationFailure) as caught:
        await client.list_tools(mcp_conn("http://169.254.169.254/mcp"))
    assert caught.value.kind == "refused"
    with pytest.raises(IntegrationFailure) as caught:
        await client.list_tools(mcp_conn(upstreams.mcp, allow_private=False))
    assert caught.value.kind == "refused"
    with pytest.raises(IntegrationFailure) as caught:
        await client.list_tools(mcp_conn("http://no-such-host.invalid/mcp"))
    assert caught.value.kind == "dns"


async def test_openapi_operations_become_tools() -> None:
    tools = {t.name: t for t in client.openapi_tools(servers.OPENAPI_DOCUMENT)}
    assert set(tools) == {"getPet", "post_pets", "big"}
    assert tools["getPet"].description == "Get a pet"
    assert tools["getPet"].input_schema["required"] == ["pet_id"]
    assert tools["getPet"].input_schema["properties"]["verbose"] == {"type": "boolean"}
    body = tools["post_pets"].input_schema
    assert body["properties"]["body"]["properties"] == {"name": {"type": "string"}}
    assert body["required"] == ["body"]


async def test_openapi_calls(upstreams: Upstreams) -> None:
    conn = api_conn(upstreams.api)
    got = await client.call_tool(conn, "getPet", {"pet_id": "7 a", "verbose": True})
    assert got.ok, got
    assert '"id":"7 a"' in got.text
    assert '"verbose":"true"' in got.text
    created = await client.call_tool(conn, "post_pets", {"body": {"name": "Tom"}})
    assert created.ok
    assert '"name":"Tom"' in created.text
    missing = await client.call_tool(conn, "getPet", {"pet_id": "404"})
    assert not missing.ok
    assert missing.text.startswith("HTTP 404")
    big = await client.call_tool(replace(conn, max_response_bytes=5000), "big", {})
    assert big.ok
    assert "truncated" in big.text
    assert len(big.text) < 5200
    with pytest.raises(IntegrationFailure) as caught:
        await client.call_tool(replace(conn, headers={}), "getPet", {"pet_id": "1"})
    assert caught.value.kind == "unauthorized"
    with pytest.raises(IntegrationFailure) as caught:
        await client.call_tool(replace(conn, allow_private=False), "getPet", {"pet_id": "1"})
    assert caught.value.kind == "refused"


async def test_mcp_over_sse(upstreams: Upstreams) -> None:
    """An older MCP server speaking HTTP+SSE (the SDK's ``sse_app``): tools listed and called."""
    conn = mcp_conn(upstreams.sse, transport=Transport.sse)
    tools = {t.name for t in await client.list_tools(conn)}
    assert tools == {"add", "boom", "hang", "huge"}
    outcome = await client.call_tool(conn, "add", {"a": 20, "b": 22})
    assert outcome.ok
    assert outcome.text == "42"
    failed = await client.call_tool(conn, "boom", {"reason": "over sse"})
    assert not failed.ok
    assert "over sse" in failed.text
    with pytest.raises(IntegrationFailure) as caught:
        await client.call_tool(replace(conn, timeout_seconds=1.0), "hang", {})
    assert caught.value.kind == "timeout"
