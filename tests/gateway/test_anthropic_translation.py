"""Unit tests for the OpenAI -> Anthropic Messages request translation (no I/O).

The translation of responses and streams back to OpenAI's shape is in test_anthropic_responses.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from cockpit.gateway.anthropic import (
    TranslationError,
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
