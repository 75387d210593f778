"""Render every error in the shape its surface expects: REST JSON, OpenAI JSON or an HTML page."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cockpit.kit.errors import CockpitError, InvalidInput, NotAuthenticated, TooManyRequests

log = logging.getLogger("cockpit")

HtmlRenderer = Callable[[Request, CockpitError], Awaitable[Response]]

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "not_permitted",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
}


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def is_gateway(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "body"


def validation_error(exc: RequestValidationError) -> InvalidInput:
    details = []
    for err in exc.errors():
        field = _location(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            return InvalidInput(
                "malformed_json",
                "The request body is not valid JSON.",
                details=[{"field": "body", "message": str(err.get("msg", ""))}],
            )
        message = "unknown field" if err.get("type") == "extra_forbidden" else str(err.get("msg", "invalid"))
        details.append({"field": field, "message": message})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return InvalidInput("invalid_input", f"The request is invalid — {summary}.", details=details)


def _headers(exc: CockpitError) -> dict[str, str]:
    headers = {}
    if isinstance(exc, NotAuthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyRequests) and exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    return headers


def json_error(request: Request, exc: CockpitError) -> JSONResponse:
    if is_gateway(request):
        body: dict[str, Any] = {
            "error": {"message": exc.message, "type": exc.code, "code": exc.code, "param": None}
        }
    else:
        body = {"error": {"code": exc.code, "message": exc.message}}
        if exc.details:
            body["error"]["details"] = exc.details
    return JSONResponse(body, status_code=exc.status, headers=_headers(exc))


def error_renderer(html: HtmlRenderer) -> Callable[[Request, CockpitError], Awaitable[Response]]:
    """Render an error as its surface expects: JSON for the REST API and the gateway, else a page."""

    async def render(request: Request, exc: CockpitError) -> Response:
        if is_api(request) or is_gateway(request):
            return json_error(request, exc)
        return await html(request, exc)

    return render


def install_error_handlers(app: FastAPI, html: HtmlRenderer) -> None:
    render = error_renderer(html)

    @app.exception_handler(CockpitError)
    async def _cockpit_error(request: Request, exc: CockpitError) -> Response:
        return await render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return await render(request, validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        error = CockpitError(code, str(exc.detail) if exc.detail else code.replace("_", " ").capitalize())
        error.status = exc.status_code
        return await render(request, error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = CockpitError("internal_error", "Something went wrong on our side. The error was logged.")
        error.status = 500
        return await render(request, error)
