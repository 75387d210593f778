"""What a gateway request must be before anything else happens: a JSON object read as it streams in
(refused as soon as it passes the limit), text that can be passed on and recorded, no field that
would name other credentials or another destination, and well-formed chat options."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from starlette.requests import ClientDisconnect, Request

from cockpit.credits.holds import CHOICE_FIELDS, MAX_CHOICES
from cockpit.gateway.errors import GatewayError, invalid
from cockpit.kit.text import MAX_DEPTH, Unstorable, find_unstorable
from cockpit.providers.models import OUTPUT_LIMIT_FIELDS

# Bodies at least this large are parsed in a thread (the event loop serves other calls meanwhile).
LARGE_BODY_BYTES = 1024 * 1024
# Body fields that would name other credentials or another destination: never accepted.
FORBIDDEN_FIELDS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "organization",
        "headers",
        "extra_headers",
        "custom_llm_provider",
        "provider",
        "deployment_id",
        "azure_endpoint",
        "aws_access_key_id",
        "aws_secret_access_key",
        "vertex_credentials",
    }
)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"The request body is larger than {limit:,} bytes.", code="payload_too_large")


class Notes(Protocol):
    """Where what is learnt of a body is noted for the call's record, even if the body is refused."""

    body_bytes: int
    model_name: str


async def read_body(request: Request, limit: int, notes: Notes) -> dict[str, Any]:
    """The JSON body, read as it streams in and refused (413) as soon as it passes the limit;
    400 for anything that is not a JSON object Cockpit can pass on and record."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    pieces: list[bytes] = []
    size = 0
    try:
        async for piece in request.stream():
            size += len(piece)
            if size > limit:
                raise _too_large(limit)
            pieces.append(piece)
    except ClientDisconnect:
        raise invalid("The request body was not received completely.") from None
    raw = b"".join(pieces)
    notes.body_bytes = len(raw)
    try:
        body = json.loads(raw) if len(raw) < LARGE_BODY_BYTES else await asyncio.to_thread(json.loads, raw)
    except RecursionError:
        raise invalid(
            f"The request body is nested more than {MAX_DEPTH} levels deep.", code="invalid_json"
        ) from None
    except ValueError:
        raise invalid("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", code="invalid_json")
    if isinstance(body.get("model"), str):
        notes.model_name = body["model"]  # recorded (made storable) even if the body is refused
    try:
        # NUL is valid text for an upstream (and made storable when recorded); a lone surrogate
        # is not text at all, and nothing nests deeper than MAX_DEPTH levels.
        find_unstorable(body, root="", nul=False)
    except Unstorable as exc:
        raise invalid(f"'{exc.path}' {exc.reason}.", param=exc.path, code="invalid_text") from None
    return body


def check_common(body: dict[str, Any]) -> str:
    smuggled = FORBIDDEN_FIELDS.intersection(body)
    if smuggled:
        name = sorted(smuggled)[0]
        raise invalid(
            f"The field '{name}' is not accepted: Cockpit chooses the provider and its credentials.",
            param=name,
            code="forbidden_parameter",
        )
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("'model' is required and must be a string.", param="model", code="missing_model")
    return model


def check_chat(body: dict[str, Any]) -> tuple[bool, bool]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' must be a non-empty array.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid(f"messages[{index}] must be an object with a 'role'.", param=f"messages[{index}]")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid("'stream' must be true or false.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid("'stream_options' must be an object.", param="stream_options")
    if options is not None and not stream:
        raise invalid("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    for name in OUTPUT_LIMIT_FIELDS:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise invalid(f"'{name}' must be a positive integer.", param=name)
    for name in CHOICE_FIELDS:
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CHOICES
        ):
            raise invalid(f"'{name}' must be an integer from 1 to {MAX_CHOICES}.", param=name)
    include_usage = bool(stream and options and options.get("include_usage") is True)
    return stream, include_usage
