"""Real servers for the integrations tests, each served by uvicorn in a thread on a free local port:
MCP servers (open, and behind a bearer token), an OpenAPI service and an OAuth 2.0 token endpoint."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from mcp.server import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

ASGI = Callable[[Any, Any, Any], Awaitable[None]]
HUGE_BYTES = 1_500_000  # over the 1 MiB kept, under what the transport accepts (twice over)
SECURE_TOKEN = "mcp-secret-token-0123456789"
CC_TOKEN = "cc-access-token-abcdef123456"
CLIENT_SECRET = "client-secret-zyxw98765"
API_KEY = "openapi-key-0123456789"


def make_mcp() -> MCPServer:
    server = MCPServer("test tools")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def boom(reason: str = "kaboom") -> str:
        """Always fails."""
        from mcp.server.mcpserver.exceptions import ToolError

        raise ToolError(f"it failed: {reason}")

    @server.tool()
    async def hang() -> str:
        """Never answers."""
        await asyncio.sleep(3600)
        return "late"

    @server.tool()
    def huge() -> str:
        """A result far larger than allowed."""
        return "x" * HUGE_BYTES

    return server


def require_bearer(app: ASGI, token: str | Callable[[], str]) -> ASGI:
    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            wanted = token() if callable(token) else token
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {wanted}".encode():
                body = b'{"error": "unauthorized"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json")]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


class TokenEndpoint:
    """An OAuth 2.0 token endpoint (client credentials) counting the tokens it issued."""

    def __init__(self) -> None:
        self.issued = 0

    async def handle(self, request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "client_credentials" or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        self.issued += 1
        return JSONResponse({"access_token": CC_TOKEN, "token_type": "bearer", "expires_in": 3600})


async def _pet(request: Request) -> Response:
    if request.headers.get("x-api-key") != API_KEY:
        return JSONResponse({"error": "no key"}, status_code=401)
    pet_id = request.path_params["pet_id"]
    if pet_id == "404":
        return JSONResponse({"error": "no such pet"}, status_code=404)
    return JSONResponse({"id": pet_id, "name": "Rex", "verbose": request.query_params.get("verbose")})


async def _create(request: Request) -> Response:
    if request.headers.get("x-api-key") != API_KEY:
        return JSONResponse({"error": "no key"}, status_code=401)
    body = await request.json()
    return JSONResponse({"created": body}, status_code=201)


async def _root(request: Request) -> Response:
    return PlainTextResponse("pets service")


async def _big(request: Request) -> Response:
    return PlainTextResponse("y" * HUGE_BYTES)


def openapi_app() -> Starlette:
    return Starlette(routes=[
        Route("/v1", _root), Route("/v1/pets/{pet_id}", _pet), Route("/v1/pets", _create, methods=["POST"]),
        Route("/v1/big", _big),
    ])  # fmt: skip


OPENAPI_DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Pets", "version": "1"},
    "servers": [{"url": "/v1"}],
    "paths": {
        "/pets/{pet_id}": {
            "parameters": [{"name": "pet_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {
                "operationId": "getPet",
                "summary": "Get a pet",
                "parameters": [{"$ref": "#/components/parameters/Verbose"}],
            },
        },
        "/pets": {
            "post": {
                "summary": "Create a pet",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
                },
            }
        },
        "/big": {"get": {"operationId": "big", "summary": "A big answer"}},
    },
    "components": {
        "parameters": {"Verbose": {"name": "verbose", "in": "query", "schema": {"type": "boolean"}}},
        "schemas": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}},
    },
}


@contextmanager
def serve(app: ASGI) -> Iterator[str]:
    """``app`` on http://127.0.0.1:<free port>; stopped afterwards."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # bounds a hang only
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def document_json() -> str:
    return json.dumps(OPENAPI_DOCUMENT)
