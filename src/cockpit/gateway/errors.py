"""Gateway errors in the OpenAI shape: ``{"error": {"message", "type", "code", "param"}}``."""

from __future__ import annotations

import json

from starlette.responses import Response


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def response(self) -> Response:
        return Response(
            json.dumps(self.body()).encode(),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


def invalid(message: str, *, param: str | None = None, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, code=code, param=param)


def unauthenticated(message: str) -> GatewayError:
    return GatewayError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def shown(text: str, limit: int = 100) -> str:
    """Caller-supplied text as echoed in an error message: never more than ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def model_not_found(name: str) -> GatewayError:
    return GatewayError(
        404,
        f"The model '{shown(name)}' does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def upstream_status(status: int, detail: str) -> GatewayError:
    """What the caller gets when the upstream answered an error status."""
    suffix = f": {detail}" if detail else "."
    if status in (400, 413, 422):
        return GatewayError(
            400 if status != 413 else 413,
            f"The upstream provider refused the request{suffix}",
            code="upstream_bad_request",
        )
    if status == 429:
        return GatewayError(
            429,
            f"The upstream provider is rate limiting requests{suffix}",
            type="rate_limit_error",
            code="upstream_rate_limited",
        )
    if status in (401, 403):
        return GatewayError(
            502,
            f"The upstream provider refused Cockpit's credentials (HTTP {status}); an administrator must "
            "check the provider's API key.",
            type="upstream_error",
            code="upstream_auth_failed",
        )
    if 300 <= status < 400:
        return GatewayError(
            502,
            f"The upstream provider answered with a redirect (HTTP {status}), which is not followed.",
            type="upstream_error",
            code="upstream_redirect",
        )
    return GatewayError(
        502,
        f"The upstream provider failed (HTTP {status}){suffix}",
        type="upstream_error",
        code="upstream_error",
    )


def upstream_timeout() -> GatewayError:
    return GatewayError(
        504, "The upstream provider did not answer in time.", type="upstream_error", code="upstream_timeout"
    )


def upstream_unreachable(detail: str) -> GatewayError:
    return GatewayError(
        502,
        f"The upstream provider could not be reached: {detail}",
        type="upstream_error",
        code="upstream_unavailable",
    )


def stream_interrupted(message: str) -> GatewayError:
    return GatewayError(502, message, type="upstream_error", code="upstream_stream_interrupted")
