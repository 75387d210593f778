"""One error type for every business failure; handlers render it per surface."""

from __future__ import annotations

from typing import Any


class CockpitError(Exception):
    status: int = 400
    default_code: str = "bad_request"

    def __init__(
        self, code: str | None = None, message: str = "", *, details: list[dict[str, Any]] | None = None
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.code.replace("_", " ").capitalize()
        self.details = details
        super().__init__(self.message)


class NotAuthenticated(CockpitError):
    status = 401
    default_code = "not_authenticated"


class NotPermitted(CockpitError):
    status = 403
    default_code = "not_permitted"


class NotFound(CockpitError):
    status = 404
    default_code = "not_found"


class Conflict(CockpitError):
    status = 409
    default_code = "conflict"


class InvalidInput(CockpitError):
    status = 422
    default_code = "invalid_input"


class InsufficientCredits(CockpitError):
    status = 402
    default_code = "insufficient_credits"


class TooManyRequests(CockpitError):
    status = 429
    default_code = "too_many_requests"

    def __init__(self, code: str | None = None, message: str = "", *, retry_after: int | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after
