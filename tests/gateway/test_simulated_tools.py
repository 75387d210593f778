"""The simulated provider with tools and JSON schemas: deterministic tool calls and structured answers,
so that agent runs and the agent wizard work offline."""

from __future__ import annotations

import json
from typing import Any

from cockpit.gateway import simulated
from cockpit.gateway.simulated_tools import plan_calls, structured

FAST: dict[str, Any] = {"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 30}
ORDER = {
    "type": "function",
    "function": {
        "name": "orders__lookup_order",
        "description": "Look up an order by its id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
            "required": ["order_id"],
        },
    },
}
WEATHER = {"type": "function", "function": {"name": "weather", "description": "The forecast for a city."}}


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "tools": [WEATHER, ORDER], **extra}


def test_the_tool_that_shares_words_with_the_question_is_called_with_its_required_arguments() -> None:
    [call] = plan_calls(ask("Where is my order 42?"), seed=1) or []
    assert call.name == "orders__lookup_order"
    assert json.loads(call.arguments) == {"order_id": "Where is my order 42?"}


def test_tool_choice_is_followed() -> None:
    assert plan_calls(ask("Where is my order 42?", tool_choice="none"), seed=1) is None
    assert plan_calls(ask("Tell me a joke."), seed=1) is None  # no shared word: an answer in words
    [forced] = plan_calls(ask("Tell me a joke.", tool_choice="required"), seed=1) or []
    assert forced.name in ("weather", "orders__lookup_order")
    named = {"type": "function", "function": {"name": "weather"}}
    [chosen] = plan_calls(ask("Where is my order?", tool_choice=named), seed=1) or []
    assert chosen.name == "weather"


async def test_a_completion_calls_the_tool_then_reports_its_result() -> None:
    body = ask("Where is my order 42?")
    first = await simulated.complete(
        body, upstream_model="gpt-4o-mini", public_model="m", settings=FAST, max_tokens=None
    )
    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] is None
    assert first["usage"]["completion_tokens"] > 0
    call = message["tool_calls"][0]
    body["messages"] += [
        message,
        {"role": "tool", "tool_call_id": call["id"], "content": "Shipped on Monday."},
    ]
    second = await simulated.complete(
        body, upstream_model="gpt-4o-mini", public_model="m", settings=FAST, max_tokens=None
    )
    text = second["choices"][0]["message"]["content"]
    assert text.startswith("Here is what orders__lookup_order returned: Shipped on Monday.")


async def test_a_stream_carries_the_tool_call_as_a_delta() -> None:
    chunks = [
        c
        async for c in simulated.stream(
            ask("Where is my order 42?"), upstream_model="gpt-4o-mini", public_model="m", settings=FAST,
            max_tokens=None, include_usage=True,
        )
    ]  # fmt: skip
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [c["function"]["name"] for c in calls] == ["orders__lookup_order"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_a_json_schema_is_answered_with_a_matching_object() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "instructions": {"type": "string"},
            "starters": {"type": "array", "items": {"type": "string"}},
            "tools": {
                "type": "array",
                "items": {"type": "string", "enum": ["crm__find_contact", "orders__refund"]},
            },
            "steps": {"type": "integer"},
        },
    }
    body = {
        "messages": [{"role": "user", "content": "Help the sales team process refunds for customers."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    answer = json.loads(structured(body) or "{}")
    assert set(answer) == {"name", "instructions", "starters", "tools", "steps"}
    assert answer["name"] == "Sales Process Refunds Assistant"
    assert "Help the sales team process refunds" in answer["instructions"]
    assert len(answer["starters"]) == 3
    assert answer["tools"] == ["orders__refund"]
    assert answer["steps"] == 1
    assert structured({"messages": body["messages"]}) is None  # no schema asked: prose
