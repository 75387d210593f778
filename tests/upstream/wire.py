"""HTTP/1.1 framing of the upstream's answers: status lines, JSON answers, chunks, error bodies."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

REASONS: dict[int, str] = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}

# (OpenAI type, OpenAI code, Anthropic type, message) per error status.
ERRORS: dict[int, tuple[str, str | None, str, str]] = {
    400: ("invalid_request_error", None, "invalid_request_error", "upstream says the request is bad"),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error", "invalid api key"),
    403: ("permission_error", None, "permission_error", "upstream says this is forbidden"),
    404: (
        "invalid_request_error",
        "model_not_found",
        "not_found_error",
        "upstream says the model is unknown",
    ),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error", "upstream says: rate limit reached"),
    500: ("server_error", None, "api_error", "upstream had an internal error"),
    502: ("server_error", None, "api_error", "upstream bad gateway"),
    503: ("server_error", None, "api_error", "upstream is unavailable"),
    529: ("server_error", None, "overloaded_error", "upstream is overloaded"),
}


@dataclass(slots=True)
class Deferred:
    """A response written over time: wait, head, frames (``gap`` apart), then tail or a cut."""

    delay: float = 0.0
    head: bytes = b""
    frames: list[bytes] = field(default_factory=list)
    gap: float = 0.0
    tail: bytes = b""
    cut: bool = False
    hang: bool = False
    gate: threading.Event | None = None  # answer once it is set
    trickle: float = 0.0  # write everything in small pieces this far apart instead


Response = bytes | Deferred


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def as_chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


LAST_CHUNK = b"0\r\n\r\n"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </hint.css>; rel=preload; as=style\r\n\r\n"
TRICKLE_BYTES = 97  # an odd size: the pieces cut across every framing element


class DateCache:
    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


def status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Status").encode())


def json_response(
    status: int, body: bytes, date: bytes, request_id: bytes = b"", close: bool = False
) -> bytes:
    return b"%sContent-Type: application/json\r\nContent-Length: %d\r\nDate: %s\r\n%s%s\r\n%s" % (
        status_line(status),
        len(body),
        date,
        b"x-request-id: %s\r\n" % request_id if request_id else b"",
        b"Connection: close\r\n" if close else b"",
        body,
    )


def plain_error(status: int, message: str, date: bytes, close: bool = False) -> bytes:
    body = dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    )
    return json_response(status, body.encode(), date, close=close)


def openai_error(message: str, type_: str, code: str | None) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


def anthropic_error(type_: str, message: str) -> bytes:
    return dumps({"type": "error", "error": {"type": type_, "message": message}}).encode()
