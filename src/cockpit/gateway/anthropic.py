"""Translation between the OpenAI Chat Completions format and Anthropic's Messages API.

Pure functions and a small stateful stream translator: no I/O happens here. Usage is reported as
the tuple ``(input_tokens, output_tokens, cached_input_tokens)`` where ``input_tokens`` already
includes cache reads and cache writes (the OpenAI ``prompt_tokens`` meaning).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

__all__ = [
    "StreamTranslator",
    "TranslationError",
    "UpstreamStreamError",
    "from_messages_response",
    "to_messages_request",
]

_DATA_URL = re.compile(r"^data:([^;,]+);base64,(.*)$", re.DOTALL)
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class TranslationError(ValueError):
    """The OpenAI request cannot be expressed for Anthropic. ``.param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class UpstreamStreamError(Exception):
    """Anthropic sent an ``error`` event in the middle of a stream."""

    def __init__(self, message: str, type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.type = type


# --- request -------------------------------------------------------------------------------------


def _text_of(content: Any, param: str) -> str:
    """A string, or a list of text parts joined with blank lines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise TranslationError("Only text content parts are supported here.", param)
            texts.append(part["text"])
        return "\n\n".join(t for t in texts if t)
    raise TranslationError("Message content must be a string or a list of content parts.", param)


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise TranslationError("image_url.url must be a string.", "messages")
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    match = _DATA_URL.match(url)
    if match is None:
        raise TranslationError("Images must be http(s) URLs or base64 data URLs.", "messages")
    media_type = match.group(1).lower()
    if media_type not in _IMAGE_TYPES:
        raise TranslationError(f"Unsupported image type {media_type!r}.", "messages")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": match.group(2)}}


def _content_blocks(content: Any, *, allow_images: bool) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError("Message content must be a string or a list of content parts.", "messages")
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise TranslationError(f"A {kind} content part needs a string {kind!r}.", "messages")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url" and allow_images:
            blocks.append(_image_block(part))
        else:
            raise TranslationError(f"Unsupported content part type {kind!r}.", "messages")
    return blocks


def _tool_use_blocks(tool_calls: Any) -> list[dict[str, Any]]:
    if not isinstance(tool_calls, list):
        raise TranslationError("tool_calls must be a list.", "messages")
    blocks: list[dict[str, Any]] = []
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise TranslationError("Only function tool calls are supported.", "messages")
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments") or "{}"
        if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, str):
            raise TranslationError("A tool call needs a string id, name and arguments.", "messages")
        try:
            parsed = json.loads(arguments)
        except ValueError:
            raise TranslationError(f"Tool call {call_id!r} has invalid JSON arguments.", "messages") from None
        if not isinstance(parsed, dict):
            raise TranslationError(f"Tool call {call_id!r} arguments must be a JSON object.", "messages")
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": parsed})
    return blocks


def _translate_messages(raw: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if not isinstance(raw, list) or not raw:
        raise TranslationError("messages must be a non-empty list.", "messages")
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in raw:
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), "messages")
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), allow_images=True)
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"), allow_images=False)
            if message.get("tool_calls"):
                blocks += _tool_use_blocks(message["tool_calls"])
        elif role == "tool":
            tool_call_id = message.get("tool_call_id")
            if not isinstance(tool_call_id, str):
                raise TranslationError("A tool message needs a string tool_call_id.", "messages")
            role = "user"
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_call_id,
                    "content": _text_of(message.get("content"), "messages"),
                }
            ]
        else:
            raise TranslationError(f"Unsupported message role {role!r}.", "messages")
        if not blocks:
            continue  # Anthropic rejects empty content; an empty turn carries nothing anyway.
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)  # Anthropic requires alternating roles.
        else:
            messages.append({"role": role, "content": blocks})
    if not messages:
        raise TranslationError("messages must contain at least one user or assistant message.", "messages")
    return system, messages


def _number(body: dict[str, Any], key: str, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
        raise TranslationError(f"{key} must be a number between 0 and {high:g} for this model.", key)
    return value


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise TranslationError("tools must be a list.", "tools")
    tools: list[dict[str, Any]] = []
    for tool in raw:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise TranslationError("Only function tools are supported.", "tools")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError("A function tool needs a name.", "tools")
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(schema, dict):
            raise TranslationError("Function parameters must be a JSON schema object.", "tools")
        translated: dict[str, Any] = {"name": name}
        description = function.get("description")
        if isinstance(description, str) and description:
            translated["description"] = description
        translated["input_schema"] = schema
        tools.append(translated)
    return tools


def _tool_choice(raw: Any) -> dict[str, Any]:
    simple = {"auto": "auto", "required": "any", "none": "none"}
    if isinstance(raw, str) and raw in simple:
        return {"type": simple[raw]}
    if isinstance(raw, dict) and raw.get("type") == "function":
        function = raw.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise TranslationError("Unsupported tool_choice.", "tool_choice")


def to_messages_request(
    body: dict[str, Any], *, upstream_model: str, max_tokens: int, stream: bool
) -> dict[str, Any]:
    """Build an Anthropic Messages request from an OpenAI chat request.

    Only fields translated below reach the upstream; anything else (presence/frequency penalties,
    seed, stream_options, parallel_tool_calls, unknown keys) is dropped.
    """
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n != 1):
        raise TranslationError("Only n=1 is supported for this model.", "n")
    for key in ("logprobs", "top_logprobs"):
        if body.get(key):
            raise TranslationError(f"{key} is not supported for this model.", key)
    for key in ("functions", "function_call"):
        if body.get(key) is not None:
            raise TranslationError(f"{key} is deprecated; use tools and tool_choice.", key)
    response_format = body.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, dict) or response_format.get("type") != "text"
    ):
        raise TranslationError(
            "Only response_format type 'text' is supported for this model.", "response_format"
        )

    system, messages = _translate_messages(body.get("messages"))
    request: dict[str, Any] = {"model": upstream_model, "max_tokens": max_tokens, "messages": messages}
    if system:
        request["system"] = "\n\n".join(system)
    temperature = _number(body, "temperature", 1)
    if temperature is not None:
        request["temperature"] = temperature
    top_p = _number(body, "top_p", 1)
    if top_p is not None:
        request["top_p"] = top_p
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
        raise TranslationError("stop must be a string or a list of strings.", "stop")
    if stop:
        request["stop_sequences"] = stop
    if body.get("tools"):
        request["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        request["tool_choice"] = _tool_choice(body["tool_choice"])
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise TranslationError("user must be a string.", "user")
        if user:
            request["metadata"] = {"user_id": user}
    if stream:
        request["stream"] = True
    return request


# --- response ------------------------------------------------------------------------------------


def _finish_reason(stop_reason: Any) -> str:
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _completion_id(anthropic_id: Any) -> str:
    if isinstance(anthropic_id, str) and anthropic_id:
        return "chatcmpl-" + anthropic_id.removeprefix("msg_")
    return "chatcmpl-" + uuid.uuid4().hex


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(usage: dict[str, Any], key: str) -> int | None:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _openai_usage(usage: tuple[int, int, int]) -> dict[str, Any]:
    prompt, completion, cached = usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def from_messages_response(
    data: dict[str, Any], *, model: str
) -> tuple[dict[str, Any], tuple[int, int, int]]:
    """Build an OpenAI ``chat.completion`` and the usage tuple from an Anthropic message."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in data.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    raw_usage = _obj(data.get("usage"))
    cached = _count(raw_usage, "cache_read_input_tokens") or 0
    prompt = (
        (_count(raw_usage, "input_tokens") or 0)
        + cached
        + (_count(raw_usage, "cache_creation_input_tokens") or 0)
    )
    usage = (prompt, _count(raw_usage, "output_tokens") or 0, cached)
    completion = {
        "id": _completion_id(data.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish_reason(data.get("stop_reason"))}
        ],
        "usage": _openai_usage(usage),
    }
    return completion, usage


# --- streaming -----------------------------------------------------------------------------------


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI ``chat.completion.chunk`` dicts.

    ``usage`` is set once the final output count arrives (``message_delta``); before that the
    stream is incomplete and the caller should estimate from ``text``.
    """

    def __init__(self, *, model: str, include_usage: bool, created: int | None = None) -> None:
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time()) if created is None else created
        self.id = _completion_id(None)
        self.usage: tuple[int, int, int] | None = None
        self.text = ""
        self.finished = False
        self.finish_reason: str | None = None
        self._input = 0
        self._cache_read = 0
        self._cache_write = 0
        self._output = 0
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def _take_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        # message_delta counts are cumulative; fields it omits keep their message_start value.
        for key, attr in (
            ("input_tokens", "_input"),
            ("cache_read_input_tokens", "_cache_read"),
            ("cache_creation_input_tokens", "_cache_write"),
            ("output_tokens", "_output"),
        ):
            value = _count(usage, key)
            if value is not None:
                setattr(self, attr, value)

    def _current_usage(self) -> tuple[int, int, int]:
        prompt = self._input + self._cache_read + self._cache_write
        return (prompt, self._output, self._cache_read)

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Consume one SSE event; return the chunks to emit (possibly none)."""
        if event == "error":
            error = _obj(data.get("error"))
            raise UpstreamStreamError(
                str(error.get("message") or "Upstream stream error."), error.get("type")
            )
        if self.finished:
            return []
        if event == "message_start":
            message = _obj(data.get("message"))
            self.id = _completion_id(message.get("id"))
            self._take_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if event == "content_block_start":
            block = _obj(data.get("content_block"))
            if block.get("type") == "tool_use":
                position = len(self._tool_index)
                self._tool_index[data.get("index", position)] = position
                call = {
                    "index": position,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                self.text += block["text"]
                return [self._chunk({"content": block["text"]})]
            return []
        if event == "content_block_delta":
            delta = _obj(data.get("delta"))
            if delta.get("type") == "text_delta" and delta.get("text"):
                self.text += delta["text"]
                return [self._chunk({"content": delta["text"]})]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                tool = self._tool_index.get(data.get("index", -1))
                if tool is None:
                    return []
                call = {"index": tool, "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [call]})]
            return []  # thinking, signature and citation deltas have no OpenAI counterpart
        if event == "message_delta":
            self._take_usage(data.get("usage"))
            self.usage = self._current_usage()
            delta = _obj(data.get("delta"))
            if delta.get("stop_reason") is None:
                return []
            self.finish_reason = _finish_reason(delta["stop_reason"])
            return [self._chunk({}, self.finish_reason)]
        if event == "message_stop":
            self.finished = True
            if self.usage is None:
                self.usage = self._current_usage()
            if not self.include_usage:
                return []
            return [
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": _openai_usage(self.usage),
                }
            ]
        return []  # ping, content_block_stop and unknown future events
