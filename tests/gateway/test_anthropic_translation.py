"""Unit tests for the OpenAI <-> Anthropic Messages translation (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cockpit.gateway.anthropic import (
    StreamTranslator,
    TranslationError,
    UpstreamStreamError,
    from_messages_response,
    to_messages_request,
)


def translate(body: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    return to_messages_request(body, upstream_model="claude-sonnet-4-5", max_tokens=1024, stream=stream)


# --- request -------------------------------------------------------------------------------------


def test_minimal_request_uses_upstream_model_and_given_max_tokens() -> None:
    body = {
        "model": "public-name",
        "max_tokens": 5,
        "max_completion_tokens": 7,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert translate(body) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


def test_system_and_developer_messages_are_hoisted_and_joined() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hello"},
            {"role": "system", "content": "Never apologise."},
        ]
    }
    request = translate(body)
    assert request["system"] == "You are terse.\n\nAnswer in French.\n\nNever apologise."
    assert request["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]


def test_system_with_image_part_is_rejected() -> None:
    body = {
        "messages": [
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "user", "content": "Hi"},
        ]
    }
    with pytest.raises(TranslationError) as caught:
        translate(body)
    assert caught.value.param == "messages"


def test_image_parts_become_base64_and_url_sources() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare these."},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ]
    }
    assert translate(body)["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "data:image/png,notbase64",
        "data:image/tiff;base64,AAAA",
        "file:///etc/passwd",
    ],
)
def test_unsupported_image_urls_are_rejected(url: str) -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    with pytest.raises(TranslationError) as caught:
        translate(body)
    assert caught.value.param == "messages"


def test_tool_calls_and_results_round_trip() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "4C rain"}]},
            {"role": "user", "content": "Summarise."},
        ]
    }
    assert translate(body)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Oslo?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C sunny"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "4C rain"},
                {"type": "text", "text": "Summarise."},
            ],
        },
    ]


def test_assistant_text_is_kept_before_tool_use() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Go"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}],
            },
        ]
    }
    assert translate(body)["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "c", "name": "f", "input": {}},
    ]


def test_consecutive_same_role_messages_merge_and_empty_ones_vanish() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "One"},
            {"role": "user", "content": [{"type": "text", "text": "Two"}]},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "Three"},
            {"role": "assistant", "content": "A"},
            {"role": "assistant", "content": "B"},
        ]
    }
    assert translate(body)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "One"},
                {"type": "text", "text": "Two"},
                {"type": "text", "text": "Three"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
    ]


def test_sampling_tools_and_metadata_are_mapped_and_unknown_keys_dropped() -> None:
    body = {
        "model": "public-name",
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "user": "user-42",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Look a thing up.",
                    "parameters": {
                        "type": "object",
                        "properties": {"q": {"type": "string"}},
                        "required": ["q"],
                    },
                    "strict": True,
                },
            },
            {"type": "function", "function": {"name": "now"}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        # silently dropped
        "presence_penalty": 0.5,
        "frequency_penalty": 0.5,
        "seed": 7,
        "stream_options": {"include_usage": True},
        "parallel_tool_calls": True,
        "response_format": {"type": "text"},
        # unknown: must never reach the upstream
        "anthropic_beta": ["evil"],
        "system": "injected",
        "thinking": {"type": "enabled", "budget_tokens": 50000},
        "metadata": {"user_id": "spoofed"},
    }
    assert translate(body, stream=True) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "tools": [
            {
                "name": "lookup",
                "description": "Look a thing up.",
                "input_schema": {
                    "type": "object",
                    "properties": {"q": {"type": "string"}},
                    "required": ["q"],
                },
            },
            {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "tool", "name": "lookup"},
        "metadata": {"user_id": "user-42"},
        "stream": True,
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"})],
)
def test_tool_choice_strings(choice: str, expected: dict[str, str]) -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "tool_choice": choice}
    assert translate(body)["tool_choice"] == expected


def test_stop_list_and_no_stream_flag() -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "stop": ["a", "b"], "stream": True}
    request = translate(body, stream=False)
    assert request["stop_sequences"] == ["a", "b"]
    assert "stream" not in request


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "system", "content": "only system"}]}, "messages"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        ({"temperature": 1.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"stop": [1, 2]}, "stop"),
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"user": 42}, "user"),
        ({"functions": [{"name": "f"}]}, "functions"),
    ],
)
def test_translation_errors_name_the_parameter(body: dict[str, Any], param: str) -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], **body}
    with pytest.raises(TranslationError) as caught:
        translate(body)
    assert caught.value.param == param
    assert isinstance(caught.value, ValueError)


def test_missing_messages_are_rejected() -> None:
    with pytest.raises(TranslationError) as caught:
        translate({"model": "public-name"})
    assert caught.value.param == "messages"


def test_invalid_tool_call_arguments_are_rejected() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Go"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
                ],
            },
        ]
    }
    with pytest.raises(TranslationError, match="invalid JSON") as caught:
        translate(body)
    assert caught.value.param == "messages"


def test_harmless_defaults_are_accepted() -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "n": 1, "logprobs": False, "top_logprobs": None}
    assert translate(body)["messages"][0]["role"] == "user"


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
