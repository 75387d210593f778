"""Token counting: tiktoken cl100k_base for OpenAI-family models, a 4-chars-per-token estimate otherwise."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from cockpit.gateway import tokencount
from cockpit.gateway.tokencount import count_input, count_messages, count_text, encoding, is_openai_family

GPT = "gpt-4o-mini"
OTHER = "claude-3-5-sonnet"


def test_bundled_file_is_the_official_cl100k_base() -> None:
    data = Path(tokencount.__file__).parent / "data" / "cl100k_base.tiktoken"
    assert hashlib.sha256(data.read_bytes()).hexdigest() == (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    )


def test_encoding_is_cl100k_base_with_known_ids() -> None:
    enc = encoding()
    assert enc.name == "cl100k_base"
    assert enc.encode("hello world") == [15339, 1917]
    assert enc.n_vocab == 100277
    assert enc.encode("<|endoftext|>", allowed_special="all") == [100257]


def test_encoding_is_built_once_even_from_many_threads() -> None:
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(encoding())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all(result is encoding() for result in results)


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "gpt-3.5-turbo",
        "GPT-4.1-mini",
        "o1",
        "o1-mini",
        "o3-mini",
        "o4-mini",
        "chatgpt-4o-latest",
        "text-embedding-3-small",
        "davinci-002",
        "babbage-002",
        "ft:gpt-4o-mini:acme::abc123",
        "openai/gpt-4o",
    ],
)
def test_openai_family(model: str) -> None:
    assert is_openai_family(model)


@pytest.mark.parametrize(
    "model", ["claude-3-5-sonnet", "mistral-large", "llama-3.1-70b", "gemini-1.5-pro", "o2", "o10", ""]
)
def test_not_openai_family(model: str) -> None:
    assert not is_openai_family(model)


def test_count_text_tiktoken() -> None:
    assert count_text("hello world", model=GPT) == 2
    assert count_text("Hello, world!", model=GPT) == 4
    assert count_text("", model=GPT) == 0


def test_special_token_text_counts_as_plain_text() -> None:
    # Must not raise (tiktoken's default is to reject special tokens) and is not the single special token.
    assert count_text("<|endoftext|>", model=GPT) == 7
    assert count_text("a <|endofprompt|> b", model=GPT) > 1


def test_count_text_estimate_for_other_models() -> None:
    assert count_text("", model=OTHER) == 0
    assert count_text("a", model=OTHER) == 1  # never 0 for non-empty text
    assert count_text("hello world", model=OTHER) == 3  # round(11 / 4)
    assert count_text("x" * 400, model=OTHER) == 100
    assert count_text("x" * 10, model=OTHER) == 2  # round(2.5) is banker's rounding: 2


def test_count_messages_follows_openai_recipe() -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "hello world"},
    ]
    expected = (
        3 + count_text("system", model=GPT) + count_text("You are a helpful assistant.", model=GPT)
    ) + (3 + count_text("user", model=GPT) + 2)
    assert count_messages(messages, model=GPT) == expected + 3


def test_count_messages_known_value() -> None:
    # OpenAI cookbook example: these messages are 129 prompt tokens for gpt-3.5-turbo-0613 / gpt-4.
    messages = [
        {
            "role": "system",
            "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
            "into plain English.",
        },
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},  # noqa: E501
        {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},  # noqa: E501
        {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},  # noqa: E501
        {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},  # noqa: E501
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},  # noqa: E501
    ]  # fmt: skip
    assert count_messages(messages, model="gpt-4") == 129


def test_count_messages_name_adds_one() -> None:
    plain = count_messages([{"role": "user", "content": "hi"}], model=GPT)
    named = count_messages([{"role": "user", "content": "hi", "name": "bob"}], model=GPT)
    assert named == plain + count_text("bob", model=GPT) + 1


def test_count_messages_content_parts_and_images() -> None:
    parts = [
        {"type": "text", "text": "hello world"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    assert count_messages([{"role": "user", "content": parts}], model=GPT) == 3 + 1 + 2 + 85 * 2 + 3


def test_count_messages_tool_calls() -> None:
    arguments = json.dumps({"city": "Paris", "unit": "celsius"})
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
        ],
    }
    expected = (
        3
        + count_text("assistant", model=GPT)
        + count_text("get_weather", model=GPT)
        + count_text(arguments, model=GPT)
        + 3
    )
    assert count_messages([message], model=GPT) == expected


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], 3),
        (["just a string", 42, None], 3 * 3 + 3),
        ([{"role": "user", "content": None}], 3 + 1 + 3),
        ([{"role": "user", "content": [None, 7, {"type": "mystery"}]}], 3 + 1 + 3),
        ([{"role": "user", "content": {"unexpected": "dict"}, "tool_calls": "nope"}], 3 + 1 + 3),
        ("not a list", 0),
        (None, 0),
    ],
)
def test_count_messages_never_raises_on_odd_shapes(messages: Any, expected: int) -> None:
    assert count_messages(messages, model=GPT) == expected


def test_count_messages_estimate_for_other_models() -> None:
    messages = [{"role": "user", "content": "x" * 40}]
    assert count_messages(messages, model=OTHER) == 3 + 1 + 10 + 3  # "user" estimates as 1


def test_count_input_chat_adds_tools_json() -> None:
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    base = count_input({"messages": messages}, model=GPT, operation="chat")
    assert base == count_messages(messages, model=GPT)
    with_tools = count_input({"messages": messages, "tools": tools}, model=GPT, operation="chat")
    assert with_tools == base + count_text(json.dumps(tools), model=GPT)


def test_count_input_chat_without_messages() -> None:
    assert count_input({}, model=GPT, operation="chat") == 0
    assert count_input({"messages": "oops"}, model=GPT, operation="chat") == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello world", 2),
        (["hello world", "hello world"], 4),
        ([15339, 1917, 0], 3),
        ([[1, 2, 3], [4, 5]], 5),
        ("", 0),
        ([], 0),
        (None, 0),
    ],
)
def test_count_input_embedding(value: Any, expected: int) -> None:
    assert count_input({"input": value}, model="text-embedding-3-small", operation="embedding") == expected


def test_count_input_embedding_estimate_for_other_models() -> None:
    assert count_input({"input": ["x" * 8, "y" * 12]}, model="nomic-embed", operation="embedding") == 5


def test_count_input_rejects_unknown_operation() -> None:
    with pytest.raises(ValueError, match="Unknown operation"):
        count_input({}, model=GPT, operation="images")
