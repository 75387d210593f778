"""The bodies the upstream answers with: OpenAI and Anthropic JSON, SSE streams and usage, and how
an answer is delayed, cut or shaped as its scenario asks (module functions, no server state)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from tests.upstream.scenarios import Scenario
from tests.upstream.wire import (
    EARLY_HINTS,
    LAST_CHUNK,
    Deferred,
    Response,
    as_chunk,
    dumps,
    json_response,
    status_line,
)

PROMPT_TOKENS_PER_MESSAGE = 7
COMPLETION_TOKENS = 5
EMBEDDING_TOKENS_PER_INPUT = 3
EMBEDDING_DIM = 8
CREATED = 1_700_000_000


# framing of one answer ----------------------------------------------------------------------------


def delayed(scenario: Scenario, response: bytes) -> Response:
    if scenario.hang:
        return Deferred(hang=True)
    if scenario.slow_ms:
        return Deferred(delay=scenario.slow_ms / 1000, head=response)
    return response


def json_answer(scenario: Scenario, body: bytes, date: bytes, request_id: bytes, close: bool) -> Response:
    response = json_response(200, body, date, request_id, close)
    if scenario.cut is not None:
        cut_at = len(response) - len(body) + len(body) // 2
        return Deferred(delay=scenario.slow_ms / 1000, head=response[:cut_at], cut=True, hang=scenario.hang)
    return delayed(scenario, response)


def stream_answer(
    scenario: Scenario,
    head_events: list[bytes],
    content_events: list[bytes],
    tail_events: list[bytes],
    date: bytes,
    request_id: bytes,
    close: bool,
) -> Response:
    headers = (
        b"%sContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n"
        b"Cache-Control: no-cache\r\nDate: %s\r\nx-request-id: %s\r\n%s\r\n"
        % (status_line(200), date, request_id, b"Connection: close\r\n" if close else b"")
    )
    head = headers + b"".join(as_chunk(event) for event in head_events)
    frames = [as_chunk(event) for event in content_events]
    tail = b"".join(as_chunk(event) for event in tail_events) + LAST_CHUNK
    if scenario.cut is not None:
        return Deferred(
            delay=scenario.slow_ms / 1000,
            head=head,
            frames=frames[: scenario.cut],
            gap=scenario.chunk_delay_ms / 1000,
            cut=True,
            hang=scenario.hang,
        )
    if (
        scenario.hang
        or scenario.slow_ms
        or scenario.chunk_delay_ms
        or scenario.leak is not None
        or scenario.run_on_kib
    ):
        return Deferred(
            delay=scenario.slow_ms / 1000,
            head=head,
            frames=frames,
            gap=scenario.chunk_delay_ms / 1000,
            tail=tail,
            hang=scenario.hang,
        )
    return head + b"".join(frames) + tail


def shaped(scenario: Scenario, response: Response) -> Response:
    """The response with an interim 103 before it, or written in small pieces, as asked."""
    if scenario.early_hints:
        if isinstance(response, bytes):
            response = EARLY_HINTS + response
        else:
            response.head = EARLY_HINTS + response.head
    if scenario.trickle_ms:
        if isinstance(response, bytes):
            response = Deferred(head=response)
        response.trickle = scenario.trickle_ms / 1000
    return response


def redirect_answer(date: bytes, close: bool) -> bytes:
    return b"%sLocation: http://example.invalid/\r\nContent-Length: 0\r\nDate: %s\r\n%s\r\n" % (
        status_line(302),
        date,
        b"Connection: close\r\n" if close else b"",
    )


def misbehave(response: Deferred, scenario: Scenario, anthropic: bool, credential: str) -> None:
    """Make a stream leak its credential or end in an endless event, when its scenario asks."""
    if scenario.leak is not None:
        response.frames = [*response.frames[: scenario.leak], as_chunk(leak_event(anthropic, credential))]
        response.tail = LAST_CHUNK
    elif scenario.run_on_kib:
        endless = b"data: " + b"x" * (scenario.run_on_kib * 1024)
        response.frames = [as_chunk(endless[i : i + 65536]) for i in range(0, len(endless), 65536)]
        response.tail = LAST_CHUNK


def leak_event(anthropic: bool, credential: str) -> bytes:
    """A provider's error event that quotes the credential it was called with."""
    message = f"quota exceeded for key {credential}"
    if anthropic:
        error = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        return b"event: error\ndata: %s\n\n" % dumps(error).encode()
    payload = {"error": {"message": message, "type": "insufficient_quota", "param": None, "code": None}}
    return b"data: %s\n\n" % dumps(payload).encode()


# OpenAI -------------------------------------------------------------------------------------------


def openai_usage(prompt_tokens: int, completion_tokens: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_template(model: str, reply_text: str, prompt_tokens: int, cached: int, no_usage: bool) -> bytes:
    completion: dict[str, Any] = {
        "id": "@ID@",
        "object": "chat.completion",
        "created": "@CREATED@",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": reply_text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": None if no_usage else openai_usage(prompt_tokens, COMPLETION_TOKENS, cached),
        "service_tier": "default",
        "system_fingerprint": "fp_upstream",
    }
    if no_usage:
        del completion["usage"]
    return dumps(completion).encode()


def filled_chat(body: dict[str, Any], model: str, prompt_tokens: int, ident: bytes, created: bytes) -> bytes:
    limit = next(
        (v for k in ("max_tokens", "max_completion_tokens") if isinstance(v := body.get(k), int)), 16
    )
    choices = body.get("n") if isinstance(body.get("n"), int) else 1
    completion = {
        "id": ident.decode(),
        "object": "chat.completion",
        "created": int(created),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": "word " * limit},
                "finish_reason": "length",
            }
            for i in range(choices)
        ],
        "usage": openai_usage(prompt_tokens, limit * choices, 0),
    }
    return dumps(completion).encode()


def chat_stream_templates(
    model: str, scenario: Scenario, include_usage: bool, prompt_tokens: int
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    def event(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": "@ID@",
            "object": "chat.completion.chunk",
            "created": "@CREATED@",
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_upstream",
            "choices": choices,
        }
        if include_usage:
            chunk["usage"] = usage
        return b"data: %s\n\n" % dumps(chunk).encode()

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    head = [event(choice({"role": "assistant", "content": "", "refusal": None}))]
    content = [event(choice({"content": f"tok{i} "})) for i in range(scenario.chunks)]
    tail = [event(choice({}, "stop"))]
    if include_usage:
        tail.append(event([], openai_usage(prompt_tokens, scenario.chunks, scenario.cached)))
    tail.append(b"data: [DONE]\n\n")
    return head, content, tail


def embeddings_data(count: int, as_base64: bool) -> list[dict[str, Any]]:
    """The i-th input's vector is ``[(j + 1) / 8 + i for j in range(8)]`` (exact in float32)."""
    data = []
    for index in range(count):
        vector = [(j + 1) / 8 + index for j in range(EMBEDDING_DIM)]
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{EMBEDDING_DIM}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return data


# Anthropic ----------------------------------------------------------------------------------------


def anthropic_usage(input_tokens: int, output_tokens: int, cached: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": output_tokens,
    }


def messages_template(model: str, reply_text: str, input_tokens: int, scenario: Scenario) -> bytes:
    return dumps(
        {
            "id": "@ID@",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": reply_text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            **(
                {}
                if scenario.no_usage
                else {"usage": anthropic_usage(input_tokens, COMPLETION_TOKENS, scenario.cached)}
            ),
        }
    ).encode()


def messages_stream_templates(
    model: str, scenario: Scenario, input_tokens: int
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return b"event: %s\ndata: %s\n\n" % (name.encode(), dumps(data).encode())

    message: dict[str, Any] = {
        "id": "@ID@",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if not scenario.no_usage:
        message["usage"] = anthropic_usage(input_tokens, 1, scenario.cached)
    head = [
        event("message_start", {"type": "message_start", "message": message}),
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        event("ping", {"type": "ping"}),
    ]
    content = [
        event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"tok{i} "}},
        )
        for i in range(scenario.chunks)
    ]
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
    }
    if not scenario.no_usage:
        delta["usage"] = {"output_tokens": scenario.chunks}
    tail = [
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event("message_delta", delta),
        event("message_stop", {"type": "message_stop"}),
    ]
    return head, content, tail


# models, in either protocol's shape ---------------------------------------------------------------


def model_entries(anthropic: bool, models: tuple[str, ...]) -> list[dict[str, Any]]:
    if anthropic:
        return [
            {
                "type": "model",
                "id": model,
                "display_name": model.replace("-", " ").title(),
                "created_at": "2025-01-01T00:00:00Z",
            }
            for model in models
        ]
    return [{"id": model, "object": "model", "created": CREATED, "owned_by": "upstream"} for model in models]


def models_listing(anthropic: bool, entries: list[dict[str, Any]]) -> bytes:
    if anthropic:
        listing: dict[str, Any] = {
            "data": entries,
            "has_more": False,
            "first_id": entries[0]["id"] if entries else None,
            "last_id": entries[-1]["id"] if entries else None,
        }
    else:
        listing = {"object": "list", "data": entries}
    return dumps(listing).encode()
