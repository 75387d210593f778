"""Servers shared by the integrations tests (started once per module) and an app that may reach
them (COCKPIT_ALLOW_PRIVATE_UPSTREAMS=true)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from starlette.applications import Starlette
from starlette.routing import Route

from cockpit.app import create_app
from tests.conftest import make_settings
from tests.integrations import servers


class Upstreams:
    def __init__(self, mcp: str, secure: str, cc: str, api: str, tokens: servers.TokenEndpoint) -> None:
        self.mcp, self.secure, self.cc, self.api, self.tokens = mcp, secure, cc, api, tokens
        self.sse = ""  # an MCP server over HTTP+SSE: its /sse endpoint
        self.oauth = ""  # the authorization server (/authorize, /token) and its MCP server (/mcp)
        self.auth_server = servers.AuthorizationServer()


def _with_token_route(app: Any, tokens: servers.TokenEndpoint) -> Any:
    token_app = Starlette(routes=[Route("/token", tokens.handle, methods=["POST"])])

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/token":
            await token_app(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    tokens = servers.TokenEndpoint()
    open_app = servers.make_mcp().streamable_http_app()
    secure_app = servers.require_bearer(servers.make_mcp().streamable_http_app(), servers.SECURE_TOKEN)
    cc_app = _with_token_route(
        servers.require_bearer(servers.make_mcp().streamable_http_app(), servers.CC_TOKEN), tokens
    )
    auth_server = servers.AuthorizationServer()
    with (
        servers.serve(open_app) as mcp,
        servers.serve(secure_app) as secure,
        servers.serve(cc_app) as cc,
        servers.serve(servers.openapi_app_with_documents()) as api,
        servers.serve(servers.make_mcp().sse_app()) as sse,
        servers.serve(auth_server.app()) as oauth,
    ):
        found = Upstreams(mcp + "/mcp", secure + "/mcp", cc, api, tokens)
        found.sse, found.oauth, found.auth_server = sse + "/sse", oauth, auth_server
        yield found


@pytest.fixture(scope="session")
async def private_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    app = create_app(
        make_settings(database_url, tmp_path_factory.mktemp("private"), allow_private_upstreams=True)
    )
    yield app
    await app.state.gateway.aclose()
    await app.state.engine.dispose()


@pytest.fixture
async def private_client(private_app: Any, db: Any) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=private_app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def tmp_data(tmp_path: Path) -> Path:
    return tmp_path
