"""The offline simulated provider: deterministic prose, exact token counts, OpenAI response shapes."""

from __future__ import annotations

import asyncio
import base64
import math
import re
import struct
import time
from typing import Any

import pytest

from cockpit.gateway import simulated
from cockpit.gateway.simulated import SimulatedFailure, complete, embed, plan_answer, read_settings, stream
from cockpit.gateway.tokencount import count_input, count_text

FAST: dict[str, Any] = {"latency_ms": 0, "tokens_per_second": 0}
MODEL = "gpt-4o-mini"


def chat(text: str = "Tell me about gardening.") -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]}


# --- settings ---------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    timing = read_settings({})
    assert (timing.latency_ms, timing.tokens_per_second, timing.output_tokens) == (300, 60, 180)
    assert (timing.embedding_dimensions, timing.failure_rate) == (256, 0)


def test_settings_of_wrong_type_fall_back_to_defaults() -> None:
    timing = read_settings(
        {
            "latency_ms": "fast",
            "tokens_per_second": -5,
            "output_tokens": None,
            "embedding_dimensions": 99999,
            "failure_rate": "often",
        }
    )
    assert timing == read_settings({})
    assert read_settings(None) == read_settings({})
    assert read_settings({"latency_ms": True, "embedding_dimensions": 2.5}) == read_settings({})


def test_settings_are_read() -> None:
    timing = read_settings(
        {
            "latency_ms": 50,
            "tokens_per_second": 120.5,
            "output_tokens": 40,
            "embedding_dimensions": 8,
            "failure_rate": 7,
        }
    )
    assert timing.latency_ms == 50
    assert timing.tokens_per_second == 120.5
    assert timing.output_tokens == 40
    assert timing.embedding_dimensions == 8
    assert timing.failure_rate == 1.0  # clamped


# --- plan_answer ------------------------------------------------------------------------------


def test_answer_is_deterministic() -> None:
    first = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=None)
    second = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=None)
    assert first == second


def test_answer_depends_on_messages_and_model() -> None:
    base = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=None).text
    assert (
        plan_answer(chat("Tell me about cooking."), upstream_model=MODEL, settings=FAST, max_tokens=None).text
        != base
    )
    assert plan_answer(chat(), upstream_model="gpt-4.1", settings=FAST, max_tokens=None).text != base


def test_pieces_join_to_text_and_are_small() -> None:
    answer = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=None)
    assert "".join(answer.pieces) == answer.text
    assert len(answer.pieces) > 10
    assert all(1 <= count_text(piece, model=MODEL) <= 8 for piece in answer.pieces)
    assert sum(count_text(piece, model=MODEL) <= 4 for piece in answer.pieces) / len(answer.pieces) > 0.9


def test_token_counts_match_tokencount() -> None:
    body = chat()
    for model in (MODEL, "claude-3-5-haiku"):
        answer = plan_answer(body, upstream_model=model, settings=FAST, max_tokens=None)
        assert answer.output_tokens == count_text(answer.text, model=model)
        assert answer.input_tokens == count_input(body, model=model, operation="chat")
        assert answer.finish_reason == "stop"


def test_answer_is_plausible_prose() -> None:
    answer = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=None)
    assert answer.text[0].isupper()
    assert answer.text.endswith(".")
    sentences = re.split(r"(?<=[.!?])\s+", answer.text)
    assert len(sentences) >= 5
    assert all(8 <= len(sentence.split()) <= 20 for sentence in sentences)
    assert re.fullmatch(r"[A-Za-z0-9 ,.'\-\n]+", answer.text)


def test_length_varies_around_output_tokens() -> None:
    lengths = [
        plan_answer(chat(f"Question number {i}"), upstream_model=MODEL, settings={**FAST, "output_tokens": 200}, max_tokens=None).output_tokens  # noqa: E501
        for i in range(30)
    ]  # fmt: skip
    assert all(90 <= length <= 340 for length in lengths)  # ±50%, plus up to one finishing sentence
    assert len(set(lengths)) > 10


def test_question_is_restated_first() -> None:
    answer = plan_answer(
        chat("How do I bake sourdough bread at home?"), upstream_model=MODEL, settings=FAST, max_tokens=None
    )
    first_sentence = re.split(r"(?<=[.!?])\s+", answer.text)[0]
    for word in ("bake", "sourdough", "bread", "home"):
        assert word in first_sentence


def test_no_restatement_without_a_question() -> None:
    answer = plan_answer(
        chat("Write something about sourdough bread."), upstream_model=MODEL, settings=FAST, max_tokens=None
    )
    assert "sourdough" not in answer.text


def test_question_topic() -> None:
    assert simulated.question_topic("What is the capital of France?") == "capital and France"
    assert simulated.question_topic("I like tea. Why is Earl Grey so popular?") == "Earl, Grey and popular"
    assert simulated.question_topic("Summarise this text.") is None
    assert simulated.question_topic("") is None
    assert simulated.question_topic("what?") is None


def test_question_in_content_parts() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Why do cats purr?"}]}]}
    answer = plan_answer(body, upstream_model=MODEL, settings=FAST, max_tokens=None)
    assert "cats" in answer.text.split(".")[0]


@pytest.mark.parametrize("max_tokens", [1, 5, 17, 50])
def test_max_tokens_truncates(max_tokens: int) -> None:
    full = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=None)
    answer = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=max_tokens)
    assert answer.finish_reason == "length"
    assert 0 < answer.output_tokens <= max_tokens
    assert answer.output_tokens == count_text(answer.text, model=MODEL)
    assert full.text.startswith(answer.text)
    assert "".join(answer.pieces) == answer.text


def test_max_tokens_truncates_estimated_models() -> None:
    answer = plan_answer(chat(), upstream_model="mistral-large", settings=FAST, max_tokens=20)
    assert answer.finish_reason == "length"
    assert 0 < answer.output_tokens <= 20


def test_max_tokens_above_length_stops_normally() -> None:
    full = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=None)
    answer = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=full.output_tokens)
    assert answer.finish_reason == "stop"
    assert answer.text == full.text


def test_timing() -> None:
    answer = plan_answer(
        chat(), upstream_model=MODEL, settings={"latency_ms": 250, "tokens_per_second": 50}, max_tokens=None
    )
    assert answer.ttft_seconds == 0.25
    assert answer.seconds_per_piece * len(answer.pieces) == pytest.approx(answer.output_tokens / 50)
    slow = plan_answer(
        chat(), upstream_model=MODEL, settings={"latency_ms": 5000, "tokens_per_second": 1}, max_tokens=None
    )
    assert slow.ttft_seconds + slow.seconds_per_piece * len(slow.pieces) == pytest.approx(30)
    fast = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=None)
    assert (fast.ttft_seconds, fast.seconds_per_piece) == (0, 0)


@pytest.mark.parametrize(
    "body", [{}, {"messages": []}, {"messages": None}, {"messages": "hello"}, {"model": "x"}]
)
def test_missing_messages_raise(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="non-empty 'messages'"):
        plan_answer(body, upstream_model=MODEL, settings=FAST, max_tokens=None)


def test_odd_messages_do_not_break_the_answer() -> None:
    body = {"messages": ["hello", {"role": "user", "content": None}, {"content": [1, 2]}]}
    answer = plan_answer(body, upstream_model=MODEL, settings=FAST, max_tokens=None)
    assert answer.output_tokens > 0


# --- complete ---------------------------------------------------------------------------------


async def test_complete_shape() -> None:
    body = chat()
    answer = plan_answer(body, upstream_model=MODEL, settings=FAST, max_tokens=None)
    result = await complete(
        body, upstream_model=MODEL, public_model="team-gpt", settings=FAST, max_tokens=None
    )
    assert re.fullmatch(r"chatcmpl-sim-[0-9a-f]{16}", result["id"])
    assert result["object"] == "chat.completion"
    assert abs(result["created"] - time.time()) < 5
    assert result["model"] == "team-gpt"
    assert result["system_fingerprint"] == "cockpit-simulated"
    [choice] = result["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == answer.text
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    assert result["usage"] == {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


async def test_complete_truncated() -> None:
    result = await complete(chat(), upstream_model=MODEL, public_model="m", settings=FAST, max_tokens=10)
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] <= 10


class Pauses:
    """Records the pauses the simulated provider asks for (and how many overlap), instead of timing
    them with a wall clock: what a pause is asked for does not depend on how busy the machine is."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.active = 0
        self.most_at_once = 0

    async def __call__(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self.asked.append(seconds)
        self.active += 1
        self.most_at_once = max(self.most_at_once, self.active)
        try:
            await asyncio.sleep(0.001)  # a real suspension, so that other streams can run meanwhile
        finally:
            self.active -= 1


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> Pauses:
    recorder = Pauses()
    monkeypatch.setattr(simulated, "_sleep", recorder)
    return recorder


async def test_complete_sleeps_for_latency_and_generation(pauses: Pauses) -> None:
    settings = {"latency_ms": 100, "tokens_per_second": 1000, "output_tokens": 50}
    answer = plan_answer(chat(), upstream_model=MODEL, settings=settings, max_tokens=None)
    await complete(chat(), upstream_model=MODEL, public_model="m", settings=settings, max_tokens=None)
    assert sum(pauses.asked) == pytest.approx(0.1 + answer.output_tokens / 1000)


async def test_zero_settings_are_instant(pauses: Pauses) -> None:
    await complete(chat(), upstream_model=MODEL, public_model="m", settings=FAST, max_tokens=None)
    [
        chunk
        async for chunk in stream(
            chat(), upstream_model=MODEL, public_model="m", settings=FAST, max_tokens=None, include_usage=True
        )
    ]
    assert pauses.asked == []


async def test_failure_rate_one_always_fails() -> None:
    settings = {**FAST, "failure_rate": 1}
    with pytest.raises(SimulatedFailure, match="failed this call on purpose"):
        await complete(chat(), upstream_model=MODEL, public_model="m", settings=settings, max_tokens=None)
    chunks = stream(
        chat(),
        upstream_model=MODEL,
        public_model="m",
        settings=settings,
        max_tokens=None,
        include_usage=False,
    )
    with pytest.raises(SimulatedFailure):
        await anext(chunks)  # no chunk is sent before the failure
    with pytest.raises(SimulatedFailure):
        embed({"input": "hi"}, upstream_model="e", public_model="e", settings=settings)


async def test_failure_rate_is_a_fraction_of_calls() -> None:
    settings = {**FAST, "output_tokens": 5, "failure_rate": 0.5}
    failures = 0
    for _ in range(200):
        try:
            await complete(chat(), upstream_model=MODEL, public_model="m", settings=settings, max_tokens=None)
        except SimulatedFailure:
            failures += 1
    assert 50 < failures < 150


async def test_complete_missing_messages() -> None:
    with pytest.raises(ValueError, match="messages"):
        await complete({}, upstream_model=MODEL, public_model="m", settings=FAST, max_tokens=None)


# --- stream -----------------------------------------------------------------------------------


async def collect(body: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    options: dict[str, Any] = {"upstream_model": MODEL, "public_model": "team-gpt", "settings": FAST}
    options |= {"max_tokens": None, "include_usage": False} | kwargs
    return [chunk async for chunk in stream(body, **options)]


async def test_stream_chunks() -> None:
    answer = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=None)
    chunks = await collect(chat())
    assert len(chunks) == len(answer.pieces) + 2
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert re.fullmatch(r"chatcmpl-sim-[0-9a-f]{16}", chunks[0]["id"])
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk["model"] == "team-gpt" for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["finish_reason"] is None
    contents = [chunk["choices"][0]["delta"]["content"] for chunk in chunks[1:-1]]
    assert contents == answer.pieces
    assert "".join(contents) == answer.text
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_stream_include_usage() -> None:
    answer = plan_answer(chat(), upstream_model=MODEL, settings=FAST, max_tokens=None)
    chunks = await collect(chat(), include_usage=True)
    assert len(chunks) == len(answer.pieces) + 3
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == []
    assert last["id"] == chunks[0]["id"]
    assert last["usage"] == {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


async def test_stream_truncated() -> None:
    chunks = await collect(chat(), max_tokens=7, include_usage=True)
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == count_text(text, model=MODEL) <= 7


async def test_stream_paces_pieces() -> None:
    settings = {"latency_ms": 50, "tokens_per_second": 2000, "output_tokens": 60}
    started = time.monotonic()
    arrivals: list[float] = []
    async for _ in stream(
        chat(),
        upstream_model=MODEL,
        public_model="m",
        settings=settings,
        max_tokens=None,
        include_usage=False,
    ):
        arrivals.append(time.monotonic() - started)
    assert arrivals[0] >= 0.045  # the role chunk comes after the time to first token
    assert arrivals[-1] - arrivals[0] > 0.005


async def test_stream_missing_messages() -> None:
    with pytest.raises(ValueError, match="messages"):
        await collect({"messages": []})


async def test_concurrent_streams_interleave(pauses: Pauses) -> None:
    settings = {"latency_ms": 20, "tokens_per_second": 5000}
    results = await asyncio.gather(*(collect(chat(str(i)), settings=settings) for i in range(5)))
    assert all(len(chunks) > 3 for chunks in results)
    assert pauses.most_at_once == 5  # every stream was waiting at once: none holds up the others


# --- embed ------------------------------------------------------------------------------------


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embed_shape_and_unit_length() -> None:
    body = {"input": ["the cat sat on the mat", "stock markets fell sharply"]}
    result = embed(body, upstream_model="text-embedding-3-small", public_model="team-embed", settings={})
    assert result["object"] == "list"
    assert result["model"] == "team-embed"
    assert [item["index"] for item in result["data"]] == [0, 1]
    assert all(item["object"] == "embedding" for item in result["data"])
    for item in result["data"]:
        assert len(item["embedding"]) == 256
        assert norm(item["embedding"]) == pytest.approx(1.0)
    tokens = count_input(body, model="text-embedding-3-small", operation="embedding")
    assert result["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_embed_is_deterministic_and_meaningful() -> None:
    def vector(text: str) -> list[float]:
        result = embed({"input": text}, upstream_model="e", public_model="e", settings={})
        embedding: list[float] = result["data"][0]["embedding"]
        return embedding

    assert vector("hello there") == vector("hello there")
    assert vector("hello there") != vector("hello world")
    similar = cosine(vector("the quick brown fox jumps"), vector("the quick brown fox leaps"))
    different = cosine(vector("the quick brown fox jumps"), vector("quarterly revenue grew strongly"))
    assert similar > different


def test_embed_dimensions() -> None:
    def dims(body: dict[str, Any], settings: dict[str, Any]) -> int:
        result = embed(body, upstream_model="e", public_model="e", settings=settings)
        vector = result["data"][0]["embedding"]
        assert norm(vector) == pytest.approx(1.0)
        return len(vector)

    assert dims({"input": "hi"}, {"embedding_dimensions": 64}) == 64
    assert dims({"input": "hi", "dimensions": 12}, {"embedding_dimensions": 64}) == 12
    assert dims({"input": "hi", "dimensions": 1}, {}) == 1
    assert dims({"input": "hi", "dimensions": 3072}, {}) == 3072
    assert dims({"input": "hi", "dimensions": 0}, {}) == 256
    assert dims({"input": "hi", "dimensions": 5000}, {}) == 256
    assert dims({"input": "hi", "dimensions": "12"}, {}) == 256


def test_embed_base64() -> None:
    plain = embed({"input": "hello", "dimensions": 16}, upstream_model="e", public_model="e", settings={})
    encoded = embed(
        {"input": "hello", "dimensions": 16, "encoding_format": "base64"},
        upstream_model="e",
        public_model="e",
        settings={},
    )
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert len(raw) == 16 * 4
    decoded = struct.unpack("<16f", raw)
    assert decoded == pytest.approx(plain["data"][0]["embedding"], abs=1e-6)


def test_embed_token_id_inputs() -> None:
    one = embed(
        {"input": [15339, 1917]}, upstream_model="text-embedding-3-small", public_model="e", settings={}
    )
    assert len(one["data"]) == 1
    assert one["usage"]["prompt_tokens"] == 2
    many = embed(
        {"input": [[1, 2, 3], [4, 5]]}, upstream_model="text-embedding-3-small", public_model="e", settings={}
    )
    assert len(many["data"]) == 2
    assert many["usage"]["prompt_tokens"] == 5


@pytest.mark.parametrize(
    "body", [{}, {"input": ""}, {"input": []}, {"input": None}, {"input": ["ok", ""]}, {"input": [[]]}]
)
def test_embed_empty_input_raises(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="empty"):
        embed(body, upstream_model="e", public_model="e", settings={})
