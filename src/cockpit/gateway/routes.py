"""The gateway's HTTP surface under /v1, dispatched before the rest of the application.

Every LLM call goes through here, so it skips what the console and the REST API need (FastAPI's
middleware stack, dependency injection and validation): the gateway parses and checks the OpenAI
request itself and answers every error, unexpected ones included, in the OpenAI shape.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import Message, Receive, Scope, Send

from cockpit.gateway.errors import GatewayError
from cockpit.gateway.service import Gateway

log = logging.getLogger("cockpit.gateway")


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def chat_completions(request: Request) -> Response:
    return await _gateway(request).chat_completions(request)


async def embeddings(request: Request) -> Response:
    return await _gateway(request).embeddings(request)


async def list_models(request: Request) -> Response:
    return await _gateway(request).list_models(request)


async def retrieve_model(request: Request) -> Response:
    return await _gateway(request).retrieve_model(request)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
]


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    error = GatewayError(404, f"Unknown gateway path {scope.get('path', '')!r}.", code="unknown_url")
    await error.response()(scope, receive, send)


class GatewayApp:
    """The ASGI app for /v1/ paths."""

    def __init__(self) -> None:
        self.router = Router(routes=routes, default=_not_found)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.router(scope, receive, tracking_send)
        except HTTPException as exc:
            if started:
                raise
            code = "method_not_allowed" if exc.status_code == 405 else "http_error"
            error = GatewayError(exc.status_code, str(exc.detail), code=code, headers=dict(exc.headers or {}))
            await error.response()(scope, receive, send)
        except Exception:
            log.exception("unexpected gateway error on %s", scope.get("path"))
            if started:
                raise
            error = GatewayError(500, "Something went wrong in the gateway. The error was logged.",
                                 type="server_error", code="internal_error")  # fmt: skip
            await error.response()(scope, receive, send)
