"""Talking to an integration: list its tools and call one, over MCP (Streamable HTTP, SSE, stdio) or
plain HTTP described by an OpenAPI document.

A ``Connection`` is decrypted and ready (``service.connection`` builds it). Every call re-checks the
address it connects to (the SSRF rules of ``kit.urls``), runs under the connection's timeout and
keeps at most ``max_response_bytes`` of a result.

Errors: ``list_tools`` and ``call_tool`` raise ``IntegrationFailure`` when the integration cannot be
reached or spoken to (DNS, TLS, 401, timeout, protocol, refused, too large); a tool that ran and
reported an error is a ``ToolOutcome(ok=False)``. Messages never contain the credentials.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

import anyio
import httpx
import httpx2
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from cockpit.integrations.models import IntegrationKind, Transport
from cockpit.kit.errors import InvalidInput
from cockpit.kit.urls import check_upstream_url_async

MAX_RESPONSE_BYTES = 1024 * 1024  # what a tool result may bring back to the model


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context (the certificate bundle loaded once) for every outbound call of the
    integrations: making one per HTTP client costs ~40 ms, most of a tool call's time."""
    return httpx.create_ssl_context()


def _sse_http_client(
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        headers=headers, timeout=timeout or httpx2.Timeout(30.0, read=300.0), auth=auth, verify=tls_context()
    )


METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolOutcome:
    ok: bool
    text: str  # the tool's result as text for the model (truncated to max bytes, saying so)
    error: str | None = None


@dataclass(frozen=True)
class Connection:
    integration_id: uuid.UUID
    kind: IntegrationKind
    transport: Transport
    url: str
    openapi_document: dict[str, Any] | None
    headers: dict[str, str]
    query: dict[str, str]
    timeout_seconds: float
    max_response_bytes: int
    allow_private: bool


class IntegrationFailure(Exception):
    """The integration could not be reached or spoken to. ``kind``: dns, tls, unauthorized, timeout,
    protocol, refused, too_large or http."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


# ---- public ----


async def list_tools(conn: Connection) -> list[ToolSpec]:
    if conn.kind is IntegrationKind.openapi:
        return openapi_tools(conn.openapi_document or {})
    async with _guard(conn), _mcp_session(conn) as session:
        specs: list[ToolSpec] = []
        cursor: str | None = None
        for _ in range(100):  # pages; a server that never stops paging is cut off
            result = await session.list_tools(params=_cursor(cursor))
            specs += [ToolSpec(t.name, t.description or "", dict(t.input_schema or {})) for t in result.tools]
            cursor = result.next_cursor
            if not cursor:
                break
        return specs


async def call_tool(conn: Connection, name: str, arguments: dict[str, Any]) -> ToolOutcome:
    if conn.kind is IntegrationKind.openapi:
        async with _guard(conn):
            return await _call_operation(conn, name, arguments)
    async with _guard(conn), _mcp_session(conn) as session:
        result = await session.call_tool(name, arguments)
    parts: list[str] = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(block, 'type', 'content')} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    text = _limited("\n".join(parts), conn.max_response_bytes)
    if result.is_error:
        return ToolOutcome(ok=False, text=text, error=text[:500] or "The tool reported an error.")
    return ToolOutcome(ok=True, text=text)


async def check_reachable(conn: Connection) -> None:
    """An OpenAPI service answers at its base URL (any answer but 401/403 counts)."""
    url = _base_url(conn)
    async with _guard(conn):
        await check_upstream_url_async(url, allow_private=conn.allow_private)
        async with httpx.AsyncClient(
            timeout=conn.timeout_seconds, follow_redirects=False, verify=tls_context()
        ) as http:
            response = await http.get(url, headers=conn.headers, params=conn.query)
        if response.status_code in (401, 403):
            raise IntegrationFailure(
                "unauthorized", f"The service refused the credentials (HTTP {response.status_code})."
            )


# ---- MCP ----


def _cursor(cursor: str | None) -> Any:
    from mcp.types import PaginatedRequestParams

    return PaginatedRequestParams(cursor=cursor) if cursor else None


@asynccontextmanager
async def _mcp_session(conn: Connection) -> AsyncIterator[ClientSession]:
    if conn.transport is Transport.stdio:
        argv = shlex.split(conn.url)
        params = StdioServerParameters(command=argv[0], args=argv[1:])
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session
        return
    await _check_url(conn.url, conn)
    if conn.transport is Transport.sse:
        async with (
            sse_client(
                conn.url,
                headers=conn.headers,
                timeout=conn.timeout_seconds,
                httpx_client_factory=_sse_http_client,
            ) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session
        return
    refused: list[int] = []

    async def note(response: httpx2.Response) -> None:
        # The transport turns an HTTP error into a generic JSON-RPC error: keep what it was.
        if response.status_code in (401, 403):
            refused.append(response.status_code)

    try:
        async with _streamable(conn, note) as session:
            yield session
    except Exception:
        if refused:
            raise IntegrationFailure(
                "unauthorized", f"The server refused the credentials (HTTP {refused[0]})."
            ) from None
        raise


@asynccontextmanager
async def _streamable(conn: Connection, note: Any) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(
            headers=conn.headers,
            params=conn.query,
            timeout=conn.timeout_seconds,
            event_hooks={"response": [note]},
            verify=tls_context(),
        ) as http,
        streamable_http_client(
            conn.url, http_client=http, max_sse_event_size=conn.max_response_bytes * 4 + 65536
        ) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


# ---- OpenAPI ----


def _resolve(document: dict[str, Any], value: Any, depth: int = 0) -> Any:
    """``value`` with local ``$ref``s inlined (a cycle or a deep chain becomes ``{}``)."""
    if depth > 20:
        return {}
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                return {}
            target: Any = document
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            return _resolve(document, target, depth + 1) if target is not None else {}
        return {k: _resolve(document, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(document, v, depth + 1) for v in value]
    return value


def _tool_name(method: str, path: str, operation: dict[str, Any]) -> str:
    raw = operation.get("operationId") or f"{method}_{path}"
    name = re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9_-]+", "_", str(raw))).strip("_")
    return name[:64] or method


def _operations(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Tool name → (method, path, operation with its parameters, refs resolved)."""
    found: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        item = _resolve(document, item)
        shared = [p for p in item.get("parameters") or [] if isinstance(p, dict)]
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            own = [p for p in operation.get("parameters") or [] if isinstance(p, dict)]
            names = {(p.get("name"), p.get("in")) for p in own}
            params = own + [p for p in shared if (p.get("name"), p.get("in")) not in names]
            name = _tool_name(method, str(path), operation)
            while name in found:
                name = (name + "_")[:64]
            found[name] = (method, str(path), operation | {"parameters": params})
    return found


def _input_schema(operation: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in operation["parameters"]:
        name = param.get("name")
        if not isinstance(name, str) or param.get("in") not in ("path", "query", "header"):
            continue
        prop = dict(param.get("schema") or {"type": "string"})
        if param.get("description"):
            prop["description"] = str(param["description"])[:1000]
        properties[name] = prop
        if param.get("required") or param.get("in") == "path":
            required.append(name)
    body = operation.get("requestBody")
    if isinstance(body, dict):
        content = body.get("content") or {}
        media = content.get("application/json") or next(
            (v for k, v in content.items() if k.endswith("+json")), None
        )
        if isinstance(media, dict):
            properties["body"] = dict(media.get("schema") or {})
            if body.get("required"):
                required.append("body")
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def openapi_tools(document: dict[str, Any]) -> list[ToolSpec]:
    """Each operation of the document as a tool (named by operationId, or method_path)."""
    specs = []
    for name, (_method, _path, operation) in _operations(document).items():
        description = str(operation.get("summary") or operation.get("description") or "")[:1000]
        specs.append(ToolSpec(name, description, _input_schema(operation)))
    return specs


def _base_url(conn: Connection) -> str:
    servers = (conn.openapi_document or {}).get("servers") or []
    server = servers[0].get("url") if servers and isinstance(servers[0], dict) else None
    base = conn.url if conn.url.endswith("/") else conn.url + "/"
    if isinstance(server, str) and server:
        return urljoin(base, server).rstrip("/")
    return conn.url.rstrip("/")


async def _call_operation(conn: Connection, name: str, arguments: dict[str, Any]) -> ToolOutcome:
    operations = _operations(conn.openapi_document or {})
    if name not in operations:
        return ToolOutcome(ok=False, text=f"No tool named {name}.", error=f"unknown tool {name}")
    method, path, operation = operations[name]
    query, headers = dict(conn.query), dict(conn.headers)
    for param in operation["parameters"]:
        pname, where = param.get("name"), param.get("in")
        if not isinstance(pname, str) or pname not in arguments:
            continue
        value = arguments[pname]
        text = value if isinstance(value, str) else json.dumps(value)
        if where == "path":
            path = path.replace("{" + pname + "}", quote(text, safe=""))
        elif where == "query":
            query[pname] = text
        elif where == "header" and pname.lower() not in ("authorization", "host", "cookie"):
            headers[pname] = text
    if "{" in path:
        missing = re.findall(r"\{([^}]*)\}", path)
        return ToolOutcome(
            ok=False, text=f"Missing argument(s): {', '.join(missing)}.", error="missing arguments"
        )
    url = _base_url(conn) + "/" + path.lstrip("/")
    await _check_url(url, conn)
    body = arguments.get("body") if "requestBody" in operation else None
    async with (
        httpx.AsyncClient(timeout=conn.timeout_seconds, follow_redirects=False, verify=tls_context()) as http,
        http.stream(method.upper(), url, params=query, headers=headers, json=body) as response,
    ):
        content, cut = bytearray(), False
        async for chunk in response.aiter_bytes():
            content += chunk
            if len(content) > conn.max_response_bytes:
                cut = True
                break
        status = response.status_code
    text = _limited(bytes(content).decode("utf-8", "replace"), conn.max_response_bytes, cut=cut)
    if status in (401, 403):
        raise IntegrationFailure("unauthorized", f"The service refused the credentials (HTTP {status}).")
    if status >= 400:
        return ToolOutcome(ok=False, text=f"HTTP {status}: {text}", error=f"HTTP {status}")
    return ToolOutcome(ok=True, text=text)


# ---- shared ----


def _limited(text: str, max_bytes: int, *, cut: bool = False) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes and not cut:
        return text
    kept = data[:max_bytes].decode("utf-8", "ignore")
    return kept + f"\n[truncated: the result was longer than {max_bytes:,} bytes; only the start is shown]"


async def _check_url(url: str, conn: Connection) -> None:
    try:
        await check_upstream_url_async(url, allow_private=conn.allow_private)
    except InvalidInput as exc:
        kind = "dns" if "cannot be resolved" in exc.message else "refused"
        raise IntegrationFailure(kind, exc.message.replace("base URL", "URL")) from None


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    found = [exc]
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc and len(found) < 5:
        found += _leaves(cause) if not isinstance(cause, BaseExceptionGroup) else []
    return found


def classify(exc: BaseException) -> IntegrationFailure:
    """A clear failure for what went wrong (the first recognised cause in the chain)."""
    for leaf in _leaves(exc):
        if isinstance(leaf, IntegrationFailure):
            return leaf
        status = getattr(getattr(leaf, "response", None), "status_code", None)
        if isinstance(status, int) and status in (401, 403):
            return IntegrationFailure("unauthorized", f"The server refused the credentials (HTTP {status}).")
        if isinstance(status, int) and status >= 400:
            return IntegrationFailure("http", f"The server answered HTTP {status}.")
        if isinstance(leaf, TimeoutError | httpx2.TimeoutException | httpx.TimeoutException):
            return IntegrationFailure("timeout", "The integration did not answer in time.")
        if isinstance(leaf, ssl.SSLError):
            return IntegrationFailure("tls", f"The TLS connection failed: {leaf.reason or leaf}.")
        text = str(leaf)
        if isinstance(leaf, httpx2.ConnectError | httpx.ConnectError | ConnectionError | OSError):
            lowered = text.lower()
            if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
                return IntegrationFailure("tls", "The TLS connection failed (certificate or handshake).")
            if "name or service" in lowered or "getaddrinfo" in lowered or "nodename" in lowered:
                return IntegrationFailure("dns", "The host name cannot be resolved.")
            return IntegrationFailure("refused", "The connection was refused or closed.")
        if "byte limit" in text or "too large" in text.lower():
            return IntegrationFailure("too_large", "The answer was larger than allowed.")
        if isinstance(leaf, MCPError):
            return IntegrationFailure("protocol", f"The MCP server answered with an error: {text[:300]}")
    return IntegrationFailure(
        "protocol", f"The integration did not speak the expected protocol ({type(exc).__name__})."
    )


@asynccontextmanager
async def _guard(conn: Connection) -> AsyncIterator[None]:
    """The whole exchange under the connection's timeout; failures become IntegrationFailure."""
    try:
        with anyio.fail_after(conn.timeout_seconds):
            yield
    except IntegrationFailure:
        raise
    except Exception as exc:  # every failure of a remote party becomes a clear one
        raise classify(exc) from None
