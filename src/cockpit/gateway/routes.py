"""The gateway's HTTP surface under /v1, dispatched before the rest of the application.

Every LLM call goes through here, so it skips what the console and the REST API need (FastAPI's
middleware stack, dependency injection and validation): the gateway parses and checks the OpenAI
request itself and answers every error, unexpected ones included, in the OpenAI shape.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from cockpit.gateway.errors import GatewayError
from cockpit.gateway.service import INTERNAL_ERROR, Gateway

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


# (method, path) → handler; /v1/models/{name} is matched by prefix.
ROUTES = {
    ("POST", "/v1/chat/completions"): chat_completions,
    ("POST", "/v1/embeddings"): embeddings,
    ("GET", "/v1/models"): list_models,
}
PATHS = {path for _method, path in ROUTES}
MODEL_PREFIX = "/v1/models/"


class GatewayApp:
    """The ASGI app for /v1/ paths: a direct lookup instead of a router, no middleware."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        handler = ROUTES.get((method, path))
        if handler is None and path.startswith(MODEL_PREFIX) and len(path) > len(MODEL_PREFIX):
            scope["path_params"] = {"model": path[len(MODEL_PREFIX) :]}
            handler = retrieve_model if method == "GET" else None
            allowed = "GET"
        else:
            allowed = ", ".join(sorted(m for m, p in ROUTES if p == path))
        if handler is None:
            if path in PATHS or path.startswith(MODEL_PREFIX):
                error = GatewayError(
                    405, f"Use {allowed} for {path}.", code="method_not_allowed", headers={"Allow": allowed}
                )
            else:
                error = GatewayError(404, f"Unknown gateway path {path!r}.", code="unknown_url")
            await error.response()(scope, receive, send)
            return
        try:
            response = await handler(Request(scope, receive))
        except Exception:
            log.exception("unexpected gateway error on %s %s", method, path)
            response = INTERNAL_ERROR.response()
        await response(scope, receive, send)
