"""Tool calls for the simulated provider: when a request offers ``tools``, it answers like a model
that uses them, deterministically, so that agent runs can be tested and demonstrated offline.

- The last message is the person's (not a tool result) and ``tool_choice`` is not ``"none"``: the
  tool whose name and description share the most words with the question is called (``"required"``
  or a named tool forces a call even without a shared word). Its arguments follow its JSON schema:
  every required property (and a property named like ``query``/``question``/``text``) gets a value of
  its type — the question's topic for strings, 1 for numbers, true for booleans, an enum's first value.
- The last messages are tool results: the answer reports them ("Here is what ``tool`` returned: …").
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_RESULT_CHARS = 600
_TEXT_PROPERTIES = frozenset({"query", "question", "text", "q", "prompt", "input", "search", "topic"})
_WORD = re.compile(r"[a-z0-9]{3,}")


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def _functions(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    found = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            found.append(function)
    return found


def _words(text: str) -> set[str]:
    """Words of 3+ letters, each also without a plural "s" ("refunds" meets "refund_payment")."""
    found = set(_WORD.findall(text.lower().replace("_", " ")))
    return found | {w[:-1] for w in found if w.endswith("s") and len(w) > 3}


def _value(schema: Any, topic: str) -> Any:
    if not isinstance(schema, dict):
        return topic
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("integer", "number"):
        minimum = schema.get("minimum")
        return (
            minimum
            if isinstance(minimum, int | float) and not isinstance(minimum, bool) and minimum > 1
            else 1
        )
    if kind == "boolean":
        return True
    if kind == "array":
        return [_value(schema.get("items"), topic)]
    if kind == "object":
        return _arguments(schema, topic)
    return topic


def _arguments(schema: Any, topic: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = schema.get("required")
    wanted = [p for p in properties if isinstance(required, list) and p in required]
    wanted += [p for p in properties if p.lower() in _TEXT_PROPERTIES and p not in wanted]
    return {name: _value(properties[name], topic) for name in wanted}


def _last_user(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(p.get("text"))
                    for p in content
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
    return ""


def plan_calls(body: Mapping[str, Any], seed: int) -> list[ToolCall] | None:
    """The tool calls the simulated model makes for this request, or None to answer in words."""
    functions = _functions(body)
    messages = body.get("messages")
    if not functions or not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None  # after tool results (or an assistant turn) the model answers
    choice = body.get("tool_choice", "auto")
    if choice == "none":
        return None
    question = _last_user(messages)
    chosen: dict[str, Any] | None = None
    if isinstance(choice, dict):
        name = (
            (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        )
        chosen = next((f for f in functions if f["name"] == name), None)
    if chosen is None:
        asked = _words(question)
        scored = [
            (len(asked & _words(f["name"] + " " + str(f.get("description") or ""))), -i, f)
            for i, f in enumerate(functions)
        ]
        score, _, best = max(scored, key=lambda item: (item[0], item[1]))
        if score > 0 or choice == "required":
            chosen = best
    if chosen is None:
        return None
    topic = question.strip()[:200] or "help"
    arguments = json.dumps(_arguments(chosen.get("parameters"), topic), ensure_ascii=False)
    call_id = f"call_sim{seed % 10**8:08d}{secrets.token_hex(4)}"
    return [ToolCall(call_id, chosen["name"], arguments)]


def results_preamble(messages: list[Any]) -> str | None:
    """What the answer says first after tool results: each result, shortened."""
    results: list[str] = []
    names: dict[str, str] = {}
    for message in messages:
        if not isinstance(message, dict):
            continue
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                names[str(call.get("id"))] = str(call["function"].get("name", "the tool"))
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "tool":
            break
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        if len(text) > MAX_RESULT_CHARS:
            text = text[:MAX_RESULT_CHARS] + "…"
        name = names.get(str(message.get("tool_call_id")), "the tool")
        results.append(f"Here is what {name} returned: {text}")
    if not results:
        return None
    return "\n\n".join(reversed(results))


# --- structured output (response_format json_schema) -----------------------------------------

_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "for",
        "to",
        "in",
        "on",
        "with",
        "that",
        "this",
        "who",
        "what",
        "how",
        "me",
        "my",
        "our",
        "we",
        "you",
        "your",
        "i",
        "it",
        "is",
        "are",
        "be",
        "can",
        "should",
        "would",
        "will",
        "please",
        "want",
        "need",
        "help",
        "helps",
        "helping",
        "agent",
        "assistant",
        "build",
        "make",
        "create",
        "about",
        "from",
        "by",
        "as",
        "at",
        "into",
        "their",
        "them",
        "they",
        "people",
        "team",
        "answer",
        "answers",
        "question",
        "questions",
        "handle",
        "handles",
        "support",
        "supports",
        "does",
        "like",
        "tell",
        "tells",
        "many",
        "much",
        "which",
        "left",
        "have",
        "has",
        "know",
        "knows",
        "give",
        "gives",
        "get",
        "gets",
        "find",
        "finds",
        "show",
        "shows",
        "use",
        "uses",
        "may",
        "might",
    ]
)


def _keywords(text: str, limit: int = 4) -> list[str]:
    found: list[str] = []
    for word in re.findall(r"[A-Za-z][A-Za-z0-9'-]{2,}", text):
        lowered = word.lower()
        if lowered not in _STOP and lowered not in found:
            found.append(lowered)
        if len(found) == limit:
            break
    return found or ["general", "questions"]


def _structured_value(name: str, schema: Any, words: list[str], text: str) -> Any:
    if not isinstance(schema, dict):
        return None
    subject = " ".join(words)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if kind == "object":
        return structured_object(schema, text)
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        choices = items.get("enum") if isinstance(items, dict) else None
        if isinstance(choices, list):  # the choices that share a word with the request
            asked = _words(text)
            # (a tool named "<integration>__<tool>" is matched on the tool's own name)
            return [c for c in choices if isinstance(c, str) and asked & _words(c.rpartition("__")[2])][:5]
        return [f"How can you help me with {subject}?", f"What should I know about {subject}?",
                f"Give me a checklist for {subject}."]  # fmt: skip
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    lowered = name.lower()
    if lowered in ("name", "title"):
        return " ".join(w.capitalize() for w in words[:3]) + " Assistant"
    if lowered == "slug":
        return "-".join(words[:3])
    if lowered == "icon":
        return "🤖"
    if "instruction" in lowered or "prompt" in lowered:
        return (
            f"You are an assistant for {subject}. {text.strip()[:400]}\n\nAnswer clearly and briefly, "
            "ask for the details you need, and say so when you are not sure."
        )
    return f"Helps with {subject}."


def structured_object(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """A JSON object that follows ``schema``, with values drawn from the request's words."""
    words = _keywords(text)
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {name: _structured_value(name, sub, words, text) for name, sub in properties.items()}


def structured(body: Mapping[str, Any]) -> str | None:
    """The answer to a request for JSON that follows a schema (``response_format`` json_schema)."""
    wanted = body.get("response_format")
    if not isinstance(wanted, dict) or wanted.get("type") != "json_schema":
        return None
    spec = wanted.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    messages = body.get("messages")
    text = _last_user(messages) if isinstance(messages, list) else ""
    value = structured_object(schema, text) if isinstance(schema, dict) else {}
    return json.dumps(value, ensure_ascii=False)
