"""Real servers for the integrations tests, each served by uvicorn in a thread on a free local port:
MCP servers (open, behind a bearer token, over SSE), an OpenAPI service (which also publishes its
document), an OAuth 2.0 token endpoint (client credentials) and an authorization server for the
per-person flow (authorization code with PKCE, refresh tokens)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import uvicorn
from mcp.server import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
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


class AuthorizationServer:
    """An OAuth 2.0 authorization server for the per-person flow: ``/authorize`` approves at once
    and sends the browser back with a code bound to the PKCE challenge, the redirect URI and the
    client; ``/token`` exchanges a code (checking the verifier) or a refresh token for a new access
    token. The MCP server it guards accepts only the access tokens currently valid."""

    def __init__(self) -> None:
        self.codes: dict[str, dict[str, str]] = {}
        self.valid: set[str] = set()  # access tokens the MCP server accepts
        self.refresh: dict[str, str] = {}  # refresh token -> the access token it replaces
        self.issued: list[str] = []  # every access token, in order
        self.seen: list[str] = []  # the access tokens the MCP server was called with
        self.refreshed = 0
        self._n = 0

    def _next(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:04d}-{secrets.token_hex(8)}"

    def revoke_refresh_tokens(self) -> None:
        self.refresh.clear()

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = self._next("code")
        self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"],
                            "client_id": q.get("client_id", "")}  # fmt: skip
        query = urlencode({"code": code, "state": q.get("state", "")})
        return RedirectResponse(f"{q['redirect_uri']}?{query}", status_code=302)

    def _tokens(self, replaced: str | None = None) -> Response:
        if replaced:
            self.valid.discard(replaced)
        access, refresh = self._next("user-access"), self._next("user-refresh")
        self.valid.add(access)
        self.issued.append(access)
        self.refresh[refresh] = access
        body = {"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": 3600}
        return JSONResponse(body)

    async def token(self, request: Request) -> Response:
        form = await request.form()
        if form.get("client_id") != "cockpit" or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") == "authorization_code":
            bound = self.codes.pop(str(form.get("code", "")), None)
            verifier = str(form.get("code_verifier", ""))
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if (
                bound is None
                or bound["challenge"] != challenge
                or bound["redirect_uri"] != form.get("redirect_uri")
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return self._tokens()
        if form.get("grant_type") == "refresh_token":
            old = self.refresh.pop(str(form.get("refresh_token", "")), None)
            if old is None:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            self.refreshed += 1
            return self._tokens(replaced=old)
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

    def guard(self, app: ASGI) -> ASGI:
        async def guarded(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                header = dict(scope["headers"]).get(b"authorization", b"").decode()
                token = header.removeprefix("Bearer ")
                if token not in self.valid:
                    await send({"type": "http.response.start", "status": 401,
                                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
                    await send({"type": "http.response.body", "body": b'{"error": "invalid_token"}'})
                    return
                if scope["path"].endswith("/mcp") and scope["method"] == "POST":
                    self.seen.append(token)
            await app(scope, receive, send)

        return guarded

    def app(self) -> ASGI:
        """/authorize and /token, and an MCP server at /mcp that wants one of this server's tokens."""
        mcp_app = self.guard(make_mcp().streamable_http_app())
        own = Starlette(
            routes=[Route("/authorize", self.authorize), Route("/token", self.token, methods=["POST"])]
        )

        async def dispatch(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] in ("/authorize", "/token"):
                await own(scope, receive, send)
            else:
                await mcp_app(scope, receive, send)

        return dispatch


async def _document(request: Request) -> Response:
    """The OpenAPI document, as a service publishes it (its server relative to the document)."""
    return JSONResponse(OPENAPI_DOCUMENT)


async def _yaml_document(request: Request) -> Response:
    return PlainTextResponse("openapi: 3.0.3\npaths: {}\n", media_type="application/yaml")


async def _huge_document(request: Request) -> Response:
    return PlainTextResponse('{"openapi": "3.0.3", "x": "' + "z" * (3 * 1024 * 1024) + '"}')


def openapi_app_with_documents() -> Starlette:
    app = openapi_app()
    app.router.routes.extend([
        Route("/openapi.json", _document), Route("/openapi.yaml", _yaml_document),
        Route("/huge.json", _huge_document),
    ])  # fmt: skip
    return app
