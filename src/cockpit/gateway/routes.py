"""The gateway's HTTP surface under /v1: plain Starlette routes, first in the routing table.

FastAPI's dependency injection and validation are deliberately not used here: the gateway parses
and checks the OpenAI request itself and answers errors in the OpenAI shape.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cockpit.gateway.service import Gateway


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
