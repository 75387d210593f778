"""The built-in offline "simulated" provider: answers like an LLM without any network.

Answers are plausible English prose, deterministic for the same messages and model (a
``random.Random`` seeded from a SHA-256 of both), with realistic timing: a time to first token,
then a steady tokens-per-second rate. Token counts come from :mod:`cockpit.gateway.tokencount`,
so what is metered is exactly what a tokenizer would report for the text.

Provider settings (a dict; missing or wrongly typed values fall back to the defaults):

- ``latency_ms``: time to first token, default 300 (0 = no delay);
- ``tokens_per_second``: generation speed, default 60 (0 = no delay);
- ``output_tokens``: typical answer length, default 180 (actual length varies ±50%);
- ``embedding_dimensions``: default 256 (a request's ``dimensions`` wins);
- ``failure_rate``: 0..1, default 0: the fraction of calls that raise :class:`SimulatedFailure`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import re
import secrets
import struct
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from cockpit.gateway import simulated_tools, tokencount
from cockpit.gateway.simulated_words import (
    _CLOSERS,
    _CONDITIONS,
    _FRAMES,
    _OBJECTS,
    _OPENERS,
    _QUESTION_FRAMES,
    _SUBJECTS,
    _TAILS,
    _VERBS,
)

__all__ = ["Answer", "SimulatedFailure", "Timing", "complete", "embed", "plan_answer", "stream"]

DEFAULT_LATENCY_MS = 300.0
DEFAULT_TOKENS_PER_SECOND = 60.0
DEFAULT_OUTPUT_TOKENS = 180
DEFAULT_EMBEDDING_DIMENSIONS = 256
MAX_OUTPUT_TOKENS = 32_768
MAX_EMBEDDING_DIMENSIONS = 3072
MAX_SLEEP_SECONDS = 30.0
FAILURE_MESSAGE = "The simulated provider failed this call on purpose."
SYSTEM_FINGERPRINT = "cockpit-simulated"

MIN_SENTENCE_WORDS = 8
MAX_SENTENCE_WORDS = 20


class SimulatedFailure(Exception):
    """The simulated provider failed a call on purpose (``failure_rate``)."""


@dataclass(frozen=True)
class Timing:
    latency_ms: float
    tokens_per_second: float
    output_tokens: int
    embedding_dimensions: int
    failure_rate: float


@dataclass(frozen=True)
class Answer:
    text: str
    pieces: list[str]  # stream chunks of about 1-4 tokens; "".join(pieces) == text
    input_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" or "length"
    ttft_seconds: float
    seconds_per_piece: float
    tool_calls: tuple[simulated_tools.ToolCall, ...] = ()  # when the answer calls tools instead

    @property
    def total_seconds(self) -> float:
        """How long the whole answer takes: time to first token plus the generation time."""
        return self.ttft_seconds + self.seconds_per_piece * len(self.pieces)


# --- settings -------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def read_settings(settings: Mapping[str, Any] | None) -> Timing:
    """The provider settings, each value checked; anything missing, mistyped or out of range is a default."""
    raw: Mapping[str, Any] = settings if isinstance(settings, Mapping) else {}

    latency = _number(raw.get("latency_ms"))
    if latency is None or latency < 0:
        latency = DEFAULT_LATENCY_MS
    speed = _number(raw.get("tokens_per_second"))
    if speed is None or speed < 0:
        speed = DEFAULT_TOKENS_PER_SECOND
    length = _number(raw.get("output_tokens"))
    output_tokens = DEFAULT_OUTPUT_TOKENS if length is None or length < 1 else int(length)
    dims = raw.get("embedding_dimensions")
    if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= MAX_EMBEDDING_DIMENSIONS:
        dims = DEFAULT_EMBEDDING_DIMENSIONS
    rate = _number(raw.get("failure_rate"))
    failure_rate = 0.0 if rate is None else min(1.0, max(0.0, rate))
    return Timing(
        latency_ms=latency,
        tokens_per_second=speed,
        output_tokens=min(output_tokens, MAX_OUTPUT_TOKENS),
        embedding_dimensions=dims,
        failure_rate=failure_rate,
    )


def _maybe_fail(timing: Timing) -> None:
    # Not seeded: a failure_rate of 0.2 fails about one call in five, and a retry may succeed.
    if timing.failure_rate > 0 and secrets.SystemRandom().random() < timing.failure_rate:
        raise SimulatedFailure(FAILURE_MESSAGE)


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


# --- prose ----------------------------------------------------------------------------------

_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each even ever every few for from
    further get gets got had has have having he her here hers herself him himself his how i if in into
    is it its itself just let like make me more most much my myself need no nor not now of off on once
    only or other ought our ours ourselves out over own please really same say she should so some such
    tell than thank thanks that the their theirs them themselves then there these they this those
    through to too under until up use used using very want was way we well were what when where which
    while who whom why will with would you your yours yourself yourselves explain describe give show
    know think best good better anyone someone something thing things
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_QUESTION_START_TEXT = (
    "what how why when where who whom which whose can could should would is are do does did will"
)
_QUESTION_STARTS = frozenset(_QUESTION_START_TEXT.split())
_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9'-]{1,29}$")


def _sentence(rng: random.Random) -> str:
    """One sentence of 8-20 words built from the phrase lists (retries until the length fits)."""
    candidate = ""
    for _ in range(20):
        clause = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        if rng.random() < 0.45:
            clause = f"{clause} {rng.choice(_TAILS)}"
        form = rng.random()
        if form < 0.35:
            candidate = f"{rng.choice(_OPENERS)} {clause}."
        elif form < 0.55:
            candidate = rng.choice(_FRAMES).format(clause=clause)
        elif form < 0.7:
            candidate = f"If {rng.choice(_CONDITIONS)}, {clause}."
        else:
            candidate = f"{clause}."
        candidate = candidate[0].upper() + candidate[1:]
        if MIN_SENTENCE_WORDS <= len(candidate.split()) <= MAX_SENTENCE_WORDS:
            return candidate
    return candidate


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text") for part in content if isinstance(part, dict)]
        return " ".join(part for part in parts if isinstance(part, str))
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _join_words(words: list[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def question_topic(text: str) -> str | None:
    """The topic words of a question (``"sourdough, bread and home"``), or None if ``text`` asks none."""
    text = text.strip()[-4000:]
    if not text:
        return None
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    asked = [s for s in sentences if "?" in s]
    if asked:
        question = asked[-1]
    elif sentences and sentences[-1].split()[0].lower().strip(",") in _QUESTION_STARTS:
        question = sentences[-1]
    else:
        return None
    words: list[str] = []
    seen: set[str] = set()
    for position, raw in enumerate(question.split()):
        word = raw.strip(".,;:!?\"'()[]{}<>`*_")
        if not _WORD.match(word) or word.lower() in _STOPWORDS or word.lower() in seen:
            continue
        seen.add(word.lower())
        # Keep the capitals of names and acronyms; a capital that only starts the sentence goes.
        is_name = word[1:] != word[1:].lower() or (position > 0 and word[0].isupper())
        words.append(word if is_name else word.lower())
        if len(words) == 5:
            break
    return _join_words(words) if words else None


def _compose(rng: random.Random, messages: list[Any], target_tokens: int, model: str) -> str:
    paragraphs: list[list[str]] = [[]]
    tokens = 0
    topic = question_topic(_last_user_text(messages))
    reported = simulated_tools.results_preamble(messages)
    if reported is not None:  # after tool calls: their results first
        paragraphs[0].append(reported)
        tokens += tokencount.count_text(reported, model=model) + 1
    elif topic is not None:
        first = rng.choice(_QUESTION_FRAMES).format(topic=topic)
        paragraphs[0].append(first)
        tokens += tokencount.count_text(first, model=model) + 1
    paragraph_size = rng.randint(3, 5)
    while tokens < target_tokens:
        if len(paragraphs[-1]) >= paragraph_size:
            paragraphs.append([])
            paragraph_size = rng.randint(3, 5)
        sentence = _sentence(rng)
        paragraphs[-1].append(sentence)
        tokens += tokencount.count_text(sentence, model=model) + 1
    if target_tokens >= 120 and rng.random() < 0.6:
        paragraphs[-1].append(rng.choice(_CLOSERS))
    return "\n\n".join(" ".join(paragraph) for paragraph in paragraphs)


def _words(text: str) -> list[str]:
    """``text`` as words with their leading whitespace; they join back to ``text`` exactly."""
    words = re.findall(r"\s*\S+", text)
    rest = text[len("".join(words)) :]
    if rest:
        if words:
            words[-1] += rest
        else:
            words = [rest]
    return words


def _truncate(words: list[str], max_tokens: int, model: str) -> list[str]:
    """The longest prefix of ``words`` with at most ``max_tokens`` tokens (binary search)."""
    low, high = 0, len(words)  # invariant: words[:low] fits
    while low < high:
        middle = (low + high + 1) // 2
        if tokencount.count_text("".join(words[:middle]), model=model) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return words[:low]


def _group(rng: random.Random, words: list[str]) -> list[str]:
    pieces: list[str] = []
    index = 0
    while index < len(words):
        size = rng.randint(1, 3)
        pieces.append("".join(words[index : index + size]))
        index += size
    return pieces


def _seed(*parts: Any) -> int:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big")


def _messages(body: Mapping[str, Any]) -> list[Any]:
    messages = body.get("messages") if isinstance(body, Mapping) else None
    if not isinstance(messages, list) or not messages:
        raise ValueError("The request needs a non-empty 'messages' list.")
    return messages


def plan_answer(
    body: dict[str, Any], *, upstream_model: str, settings: Mapping[str, Any], max_tokens: int | None
) -> Answer:
    """Decide the whole answer to a chat request: text, stream pieces, token counts and timing.

    Raises ValueError if ``messages`` is missing or empty.
    """
    messages = _messages(body)
    timing = read_settings(settings)
    seed = _seed(messages, upstream_model)
    rng = random.Random(seed)  # noqa: S311 - deterministic text, not secrets
    calls = simulated_tools.plan_calls(body, seed)
    if calls:
        called = "".join(call.name + call.arguments for call in calls)
        return Answer(
            text="",
            pieces=[],
            input_tokens=tokencount.count_input(body, model=upstream_model, operation="chat"),
            output_tokens=tokencount.count_text(called, model=upstream_model) + 3 * len(calls),
            finish_reason="tool_calls",
            ttft_seconds=min(timing.latency_ms / 1000, MAX_SLEEP_SECONDS),
            seconds_per_piece=0.0,
            tool_calls=tuple(calls),
        )
    target = max(1, round(timing.output_tokens * rng.uniform(0.5, 1.5)))
    text = simulated_tools.structured(body) or _compose(rng, messages, target, upstream_model)
    words = _words(text)
    finish_reason = "stop"
    if max_tokens is not None and tokencount.count_text(text, model=upstream_model) > max_tokens:
        words = _truncate(words, max(0, max_tokens), upstream_model)
        text = "".join(words)
        finish_reason = "length"
    pieces = _group(rng, words)
    output_tokens = tokencount.count_text(text, model=upstream_model)

    ttft = min(timing.latency_ms / 1000, MAX_SLEEP_SECONDS)
    generation = output_tokens / timing.tokens_per_second if timing.tokens_per_second > 0 else 0.0
    generation = min(generation, MAX_SLEEP_SECONDS - ttft)
    return Answer(
        text=text,
        pieces=pieces,
        input_tokens=tokencount.count_input(body, model=upstream_model, operation="chat"),
        output_tokens=output_tokens,
        finish_reason=finish_reason,
        ttft_seconds=ttft,
        seconds_per_piece=generation / len(pieces) if pieces else 0.0,
    )


def _usage(answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def _message(answer: Answer) -> dict[str, Any]:
    if answer.tool_calls:
        calls = [call.as_dict() for call in answer.tool_calls]
        return {"role": "assistant", "content": None, "refusal": None, "tool_calls": calls}
    return {"role": "assistant", "content": answer.text, "refusal": None}


def _completion_id() -> str:
    return f"chatcmpl-sim-{secrets.token_hex(8)}"


async def complete(
    body: dict[str, Any],
    *,
    upstream_model: str,
    public_model: str,
    settings: Mapping[str, Any],
    max_tokens: int | None,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` dict, after sleeping as long as the answer would take (at most 30 s).

    Raises ValueError for missing/empty messages and SimulatedFailure per ``failure_rate``.
    """
    answer = plan_answer(body, upstream_model=upstream_model, settings=settings, max_tokens=max_tokens)
    await _sleep(answer.total_seconds)
    _maybe_fail(read_settings(settings))
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": public_model,
        "choices": [
            {
                "index": 0,
                "message": _message(answer),
                "finish_reason": answer.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage(answer),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


async def stream(
    body: dict[str, Any],
    *,
    upstream_model: str,
    public_model: str,
    settings: Mapping[str, Any],
    max_tokens: int | None,
    include_usage: bool,
) -> AsyncIterator[dict[str, Any]]:
    """OpenAI ``chat.completion.chunk`` dicts: role, one per piece, finish_reason, then usage if asked.

    Validation (ValueError) happens before anything is yielded; a SimulatedFailure is raised after the
    time to first token, before the first chunk. With ``include_usage`` every chunk carries
    ``"usage": None`` except the last, as OpenAI does.
    """
    answer = plan_answer(body, upstream_model=upstream_model, settings=settings, max_tokens=max_tokens)
    completion_id = _completion_id()
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": public_model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            data["usage"] = None
        return data

    await _sleep(answer.ttft_seconds)
    _maybe_fail(read_settings(settings))
    yield chunk({"role": "assistant", "content": "", "refusal": None}, None)
    for index, call in enumerate(answer.tool_calls):
        yield chunk({"tool_calls": [{"index": index, **call.as_dict()}]}, None)
    for piece in answer.pieces:
        await _sleep(answer.seconds_per_piece)
        yield chunk({"content": piece}, None)
    yield chunk({}, answer.finish_reason)
    if include_usage:
        yield {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": public_model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [],
            "usage": _usage(answer),
        }


# --- embeddings -----------------------------------------------------------------------------


def _embedding_inputs(value: Any) -> list[str]:
    """Each input as the text its vector is derived from; token-id lists become ``"tokens:1,2,3"``."""
    empty = ValueError("The request needs a non-empty 'input' (a string, strings, or token ids).")
    if isinstance(value, str):
        if not value:
            raise empty
        return [value]
    if not isinstance(value, list) or not value:
        raise empty
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return ["tokens:" + ",".join(str(item) for item in value)]
    texts: list[str] = []
    for item in value:
        if isinstance(item, str) and item:
            texts.append(item)
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(token, int) and not isinstance(token, bool) for token in item)
        ):
            texts.append("tokens:" + ",".join(str(token) for token in item))
        else:
            raise ValueError(
                f"Input item {len(texts)} is empty or not a string or list of token ids: {str(item)[:80]!r}."
            )
    return texts


def _vector(text: str, dimensions: int, model: str) -> list[float]:
    """A unit vector for ``text``: hashed word features (similar texts point alike) plus a little noise."""
    values = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(f"{model}\0{word}".encode()).digest()
        for i in range(0, 32, 4):  # eight signed features per word
            index = int.from_bytes(digest[i : i + 3], "big") % dimensions
            values[index] += 1.0 if digest[i + 3] & 1 else -1.0
    rng = random.Random(_seed(text, model))  # noqa: S311 - deterministic vectors, not secrets
    values = [value + rng.gauss(0.0, 0.25) for value in values]
    norm = math.sqrt(sum(value * value for value in values))
    if norm == 0:
        return [1.0] + [0.0] * (dimensions - 1)
    return [value / norm for value in values]


def embed(
    body: dict[str, Any], *, upstream_model: str, public_model: str, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """An OpenAI embeddings response: one deterministic unit vector per input.

    Honours ``dimensions`` (an int 1..3072; otherwise the provider's ``embedding_dimensions``) and
    ``encoding_format: "base64"`` (little-endian float32). Raises ValueError for an empty input and
    SimulatedFailure per ``failure_rate``.
    """
    texts = _embedding_inputs(body.get("input") if isinstance(body, Mapping) else None)
    timing = read_settings(settings)
    _maybe_fail(timing)
    dimensions = body.get("dimensions")
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS
    ):
        dimensions = timing.embedding_dimensions
    as_base64 = body.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    for index, text in enumerate(texts):
        vector = _vector(text, dimensions, upstream_model)
        embedding: list[float] | str = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii") if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = tokencount.count_input(body, model=upstream_model, operation="embedding")
    return {
        "object": "list",
        "data": data,
        "model": public_model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
