"""Unit tests for the Anthropic Messages -> OpenAI translation of responses and streams (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cockpit.gateway.anthropic import (
    StreamTranslator,
    UpstreamStreamError,
    from_messages_response,
)

# --- response ------------------------------------------------------------------------------------


def test_text_response_with_cached_tokens() -> None:
    data = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 2000,
            "output_tokens": 6,
        },
    }
    completion, usage = from_messages_response(data, model="public-name")
    assert usage == (2112, 6, 2000)
    assert completion["id"] == "chatcmpl-01XFDUDYJgAACzvnptvVoYEL"
    assert completion["object"] == "chat.completion"
    assert isinstance(completion["created"], int)
    assert completion["model"] == "public-name"
    assert completion["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hello there!"}, "finish_reason": "stop"}
    ]
    assert completion["usage"] == {
        "prompt_tokens": 2112,
        "completion_tokens": 6,
        "total_tokens": 2118,
        "prompt_tokens_details": {"cached_tokens": 2000},
    }


def test_tool_use_response() -> None:
    data = {
        "id": "msg_02",
        "type": "message",
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_01A09q90qw90lq917835lq9",
                "name": "get_weather",
                "input": {"location": "San Francisco, CA", "unit": "celsius"},
            }
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 400, "output_tokens": 30, "cache_read_input_tokens": None},
    }
    completion, usage = from_messages_response(data, model="m")
    assert usage == (400, 30, 0)
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    message = completion["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {
                "name": "get_weather",
                "arguments": '{"location": "San Francisco, CA", "unit": "celsius"}',
            },
        }
    ]
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reason_mapping(stop_reason: str | None, finish: str) -> None:
    data: dict[str, Any] = {
        "id": "msg_x",
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": stop_reason,
        "usage": {},
    }
    completion, usage = from_messages_response(data, model="m")
    assert completion["choices"][0]["finish_reason"] == finish
    assert usage == (0, 0, 0)


# --- streaming -----------------------------------------------------------------------------------

# Event shapes as documented at https://docs.anthropic.com/en/docs/build-with-claude/streaming
TOOL_STREAM: list[tuple[str, dict[str, Any]]] = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 472,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 1800,
                    "output_tokens": 2,
                },
                "content": [],
                "stop_reason": None,
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay"}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": ", let me check."},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "name": "get_weather",
                "input": {},
            },
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"location":'},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ' "Paris"}'},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


def run(translator: StreamTranslator, events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = []
    for event, data in events:
        chunks.extend(translator.feed(event, data))
    return chunks


def test_stream_with_text_and_tool_call_and_usage() -> None:
    translator = StreamTranslator(model="public-name", include_usage=True, created=1700000000)
    chunks = run(translator, TOOL_STREAM)

    assert {c["id"] for c in chunks} == {"chatcmpl-014p7gG3wDgGV9EUtLvnow3U"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["created"] for c in chunks} == {1700000000}
    assert {c["model"] for c in chunks} == {"public-name"}
    assert [c["choices"][0]["delta"] if c["choices"] else None for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Okay"},
        {"content": ", let me check."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"location":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]},
        {},
        None,
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * 6 + ["tool_calls"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 2272,
        "completion_tokens": 89,
        "total_tokens": 2361,
        "prompt_tokens_details": {"cached_tokens": 1800},
    }
    assert translator.usage == (2272, 89, 1800)
    assert translator.text == "Okay, let me check."
    assert translator.finished is True


def test_stream_without_include_usage_emits_no_usage_chunk() -> None:
    translator = StreamTranslator(model="m", include_usage=False, created=1)
    chunks = run(translator, TOOL_STREAM)
    assert len(chunks) == 7
    assert all(len(c["choices"]) == 1 and "usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    assert translator.usage == (2272, 89, 1800)
    assert translator.finished is True


def test_stream_tool_indexes_count_tool_blocks_only() -> None:
    translator = StreamTranslator(model="m", include_usage=False, created=1)
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"id": "msg_a", "usage": {"input_tokens": 3, "output_tokens": 1}},
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "x"},
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "t1", "name": "a", "input": {}},
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "t2", "name": "b", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": "{}"},
            },
        ),
    ]
    chunks = run(translator, events)
    assert [c["choices"][0]["delta"] for c in chunks[1:]] == [
        {
            "tool_calls": [
                {"index": 0, "id": "t1", "type": "function", "function": {"name": "a", "arguments": ""}}
            ]
        },
        {
            "tool_calls": [
                {"index": 1, "id": "t2", "type": "function", "function": {"name": "b", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
    ]
    assert translator.text == ""
    assert translator.usage is None
    assert translator.finished is False


def test_stream_cut_short_keeps_text_and_no_usage() -> None:
    translator = StreamTranslator(model="m", include_usage=True, created=1)
    chunks = run(translator, TOOL_STREAM[:5])
    assert len(chunks) == 3
    assert translator.usage is None
    assert translator.text == "Okay, let me check."
    assert translator.finished is False


def test_stream_message_delta_usage_overrides_cumulative_counts() -> None:
    translator = StreamTranslator(model="m", include_usage=True, created=1)
    run(translator, TOOL_STREAM[:1])
    translator.feed(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"input_tokens": 500, "cache_read_input_tokens": 1800, "output_tokens": 1024},
        },
    )
    assert translator.finish_reason == "length"
    assert translator.usage == (2300, 1024, 1800)


def test_stream_error_event_raises() -> None:
    translator = StreamTranslator(model="m", include_usage=False)
    run(translator, TOOL_STREAM[:2])
    with pytest.raises(UpstreamStreamError, match="Overloaded") as caught:
        translator.feed(
            "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )
    assert caught.value.type == "overloaded_error"
