"""The local upstream (tests/upstream/) speaks the OpenAI and Anthropic protocols like the real services."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.upstream import Scenario, Upstream, parse_scenario

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "k"}
HELLO: Any = [{"role": "user", "content": "hello"}]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    upstream = Upstream.start_in_thread()
    yield upstream
    upstream.stop()


@pytest.fixture
def client(up: Upstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=up.base_url + "/v1", api_key="sk-test", max_retries=0, timeout=5) as c:
        yield c


@pytest.fixture
def http(up: Upstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=up.base_url, timeout=5) as c:
        yield c


def sse_events(text: str) -> list[tuple[str, Any]]:
    """Split an Anthropic SSE body into (event name, parsed data), checking the framing on the way."""
    assert text.endswith("\n\n")
    events = []
    for block in text[:-2].split("\n\n"):
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ")
        assert data_line.startswith("data: ")
        events.append((name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))))
    return events


def raw_exchange(port: int, payload: bytes, until: bytes, timeout: float = 3.0) -> bytes:
    """Send raw bytes, read until the answer holds ``until`` (or the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        received = b""
        while until not in received:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        return received


# --- scenario grammar ----------------------------------------------------------------------------


def test_scenario_grammar() -> None:
    assert parse_scenario("gpt-4o-mini") == Scenario()
    assert parse_scenario("gpt-x-chunks-5-chunkdelay-50") == Scenario(chunks=5, chunk_delay_ms=50)
    assert parse_scenario("claude-3-5-sonnet-error-429-slow-20") == Scenario(error=429, slow_ms=20)
    assert parse_scenario("m-nousage-cut-3-cached-12-hang-redirect") == Scenario(
        no_usage=True, cut=3, cached=12, hang=True, redirect=True
    )
    assert parse_scenario("m-chunks-x") == Scenario()  # a keyword without its number is ignored


# --- OpenAI ---------------------------------------------------------------------------------------


def test_chat_completion_json(up: Upstream, client: openai.OpenAI) -> None:
    up.clear()
    before = up.received
    messages: Any = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    assert completion.id == f"chatcmpl-up-{before + 1}"
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert len(completion.choices) == 1
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Hello from upstream."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 14
    assert completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == 19
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0

    [recorded] = up.requests
    assert recorded.method == "POST"
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.headers["content-type"] == "application/json"
    assert recorded.json == {"model": "gpt-4o-mini", "messages": messages}


def test_chat_json_cached_and_nousage(client: openai.OpenAI) -> None:
    cached = client.chat.completions.create(model="gpt-4o-cached-4", messages=HELLO)
    assert cached.usage is not None
    assert cached.usage.prompt_tokens_details is not None
    assert cached.usage.prompt_tokens_details.cached_tokens == 4

    bare = client.chat.completions.create(model="gpt-4o-nousage", messages=HELLO)
    assert bare.usage is None
    assert bare.choices[0].message.content == "Hello from upstream."


def test_stream_without_include_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))

    assert len(chunks) == 22  # role, 20 content, finish
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].id.startswith("chatcmpl-up-")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "".join(f"tok{i} " for i in range(20))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_stream_with_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini-chunks-5-cached-2",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert len(chunks) == 8  # role, 5 content, finish, usage
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == "tok0 tok1 tok2 tok3 tok4 "
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (7, 5, 12)
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 2


def test_stream_nousage_ignores_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-nousage-chunks-2", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len(chunks) == 4
    assert all(c.usage is None and c.choices for c in chunks)


def test_stream_wire_format(up: Upstream) -> None:
    body = json.dumps({"model": "gpt-chunks-1", "messages": HELLO, "stream": True}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    raw = raw_exchange(up.port, request, b"\r\n0\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/event-stream; charset=utf-8" in head
    assert b"Transfer-Encoding: chunked" in head
    assert b"Content-Length" not in head
    events = []
    while True:  # one HTTP chunk per SSE event
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        events.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    assert len(events) == 4
    assert all(e.startswith(b"data: ") and e.endswith(b"\n\n") for e in events)
    assert json.loads(events[1][6:])["choices"][0]["delta"] == {"content": "tok0 "}
    assert events[-1] == b"data: [DONE]\n\n"


def test_embeddings(up: Upstream, client: openai.OpenAI, http: httpx.Client) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])  # base64 on the wire
    assert up.requests[-1].json["encoding_format"] == "base64"
    assert [e.index for e in result.data] == [0, 1]
    assert result.data[0].embedding == [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0]
    assert result.data[1].embedding == [1.125, 1.25, 1.375, 1.5, 1.625, 1.75, 1.875, 2.0]
    assert result.usage.prompt_tokens == 6
    assert result.usage.total_tokens == 6

    floats = http.post("/v1/embeddings", json={"model": "e", "input": "one"}).json()
    assert floats == {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": 0,
                "embedding": [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0],
            }
        ],
        "model": "e",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


def test_models_openai_and_anthropic(client: openai.OpenAI, http: httpx.Client) -> None:
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
    model = client.models.retrieve("gpt-4o")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o", "model", "upstream")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")

    listing = http.get("/v1/models", headers=ANTHROPIC_HEADERS).json()
    assert listing == {
        "data": [
            {
                "type": "model",
                "id": "claude-sonnet-4-5",
                "display_name": "Claude Sonnet 4 5",
                "created_at": "2025-01-01T00:00:00Z",
            },
            {
                "type": "model",
                "id": "claude-haiku-4-5",
                "display_name": "Claude Haiku 4 5",
                "created_at": "2025-01-01T00:00:00Z",
            },
        ],
        "has_more": False,
        "first_id": "claude-sonnet-4-5",
        "last_id": "claude-haiku-4-5",
    }


@pytest.mark.parametrize(
    ("model", "exception", "status", "message"),
    [
        ("gpt-error-500", openai.InternalServerError, 500, "upstream had an internal error"),
        ("gpt-error-429", openai.RateLimitError, 429, "upstream says: rate limit reached"),
        ("gpt-error-400", openai.BadRequestError, 400, "upstream says the request is bad"),
    ],
)
def test_error_scenarios(
    client: openai.OpenAI, model: str, exception: type[openai.APIStatusError], status: int, message: str
) -> None:
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model=model, messages=HELLO)
    assert caught.value.status_code == status
    assert caught.value.message == f"Error code: {status} - {message}"
    body = caught.value.response.json()
    assert body["error"]["message"] == message
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_error_400_shape(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={"model": "gpt-error-400", "messages": HELLO})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "upstream says the request is bad",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_cut_stream_raises_after_k_chunks(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="gpt-cut-3", messages=HELLO, stream=True)
    received: list[str] = []

    def consume() -> None:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIConnectionError) as caught:
        consume()
    assert received == ["", "tok0 ", "tok1 ", "tok2 "]
    cause = caught.value.__cause__
    assert type(cause).__name__ == "RemoteProtocolError"  # openai bundles its own httpx (httpx2)
    assert "incomplete chunked read" in str(cause)


def test_cut_json_raises(http: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/chat/completions", json={"model": "gpt-cut-0", "messages": HELLO})


def test_slow_and_chunkdelay(client: openai.OpenAI) -> None:
    started = time.perf_counter()
    completion = client.chat.completions.create(model="gpt-slow-300", messages=HELLO)
    assert 0.3 <= time.perf_counter() - started < 2
    assert completion.choices[0].message.content == "Hello from upstream."

    started = time.perf_counter()
    chunks = list(
        client.chat.completions.create(model="gpt-chunks-3-chunkdelay-100", messages=HELLO, stream=True)
    )
    assert 0.2 <= time.perf_counter() - started < 2
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["tok0 ", "tok1 ", "tok2 "]


def test_hang_and_redirect(http: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        http.post("/v1/chat/completions", json={"model": "gpt-hang", "messages": HELLO}, timeout=0.3)

    response = http.post("/v1/chat/completions", json={"model": "gpt-redirect", "messages": HELLO})
    assert response.status_code == 302
    assert response.headers["location"] == "http://example.invalid/"


def test_unknown_path_and_bad_json(http: httpx.Client) -> None:
    missing = http.post("/v1/nope", json={})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_url"
    assert missing.json()["error"]["type"] == "invalid_request_error"

    bad = http.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert bad.json() == {
        "error": {
            "message": "There was an error parsing the body of your request as JSON.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }

    bad_anthropic = http.post("/v1/messages", content=b"[", headers=ANTHROPIC_HEADERS)
    assert bad_anthropic.status_code == 400
    assert bad_anthropic.json()["type"] == "error"
    assert bad_anthropic.json()["error"]["type"] == "invalid_request_error"


async def test_async_openai(up: Upstream) -> None:
    async with openai.AsyncOpenAI(base_url=up.base_url + "/v1", api_key="k", max_retries=0) as client:
        completion = await client.chat.completions.create(model="gpt-4o", messages=HELLO)
        assert completion.choices[0].message.content == "Hello from upstream."
        stream = await client.chat.completions.create(
            model="gpt-4o-chunks-4", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        assert (
            "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok0 tok1 tok2 tok3 "
        )
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 4


# --- Anthropic ------------------------------------------------------------------------------------


def test_anthropic_message_json(up: Upstream, http: httpx.Client) -> None:
    up.clear()
    before = up.received
    body = {"model": "claude-sonnet-4-5-cached-3", "max_tokens": 64, "messages": HELLO * 3}
    response = http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": f"msg_up_{before + 1}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-cached-3",
        "content": [{"type": "text", "text": "Hello from upstream."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 21,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 3,
            "output_tokens": 5,
        },
    }
    [recorded] = up.requests
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert recorded.json == body


def test_anthropic_stream(up: Upstream, http: httpx.Client) -> None:
    before = up.received
    body = {"model": "claude-haiku-4-5-chunks-3", "max_tokens": 64, "messages": HELLO, "stream": True}
    with http.stream("POST", "/v1/messages", json=body, headers=ANTHROPIC_HEADERS) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        text = "".join(response.iter_text())
    events = sse_events(text)

    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    assert events[0][1]["message"] == {
        "id": f"msg_up_{before + 1}",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-chunks-3",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 7,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        },
    }
    assert events[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert [data["delta"] for _, data in events[3:6]] == [
        {"type": "text_delta", "text": "tok0 "},
        {"type": "text_delta", "text": "tok1 "},
        {"type": "text_delta", "text": "tok2 "},
    ]
    assert events[7][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 3},
    }


def test_anthropic_validation_and_errors(http: httpx.Client) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": HELLO}
    no_version = http.post("/v1/messages", json=body, headers={"x-api-key": "k"})
    assert no_version.status_code == 400
    assert no_version.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"},
    }

    no_max = http.post("/v1/messages", json={**body, "max_tokens": "10"}, headers=ANTHROPIC_HEADERS)
    assert no_max.status_code == 400
    assert no_max.json()["error"]["type"] == "invalid_request_error"

    limited = http.post("/v1/messages", json={**body, "model": "claude-error-429"}, headers=ANTHROPIC_HEADERS)
    assert limited.status_code == 429
    assert limited.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "upstream says: rate limit reached"},
    }
    broken = http.post("/v1/messages", json={**body, "model": "claude-error-500"}, headers=ANTHROPIC_HEADERS)
    assert broken.status_code == 500
    assert broken.json()["error"] == {"type": "api_error", "message": "upstream had an internal error"}


# --- API key, HTTP details, lifecycle ---------------------------------------------------------------


async def test_api_key_enforced() -> None:
    async with Upstream(api_key="sk-right") as keyed:
        wrong = openai.AsyncOpenAI(base_url=keyed.base_url + "/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            await wrong.chat.completions.create(model="gpt-4o", messages=HELLO)
        assert caught.value.body is not None
        assert caught.value.response.json()["error"]["code"] == "invalid_api_key"
        await wrong.close()

        right = openai.AsyncOpenAI(base_url=keyed.base_url + "/v1", api_key="sk-right", max_retries=0)
        completion = await right.chat.completions.create(model="gpt-4o", messages=HELLO)
        assert completion.choices[0].message.content == "Hello from upstream."
        await right.close()

        body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": HELLO}
        async with httpx.AsyncClient(base_url=keyed.base_url) as http:
            denied = await http.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
            assert denied.status_code == 401
            assert denied.json() == {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            }
            bearer_only = await http.post(
                "/v1/messages",
                json=body,
                headers={"anthropic-version": "2023-06-01", "authorization": "Bearer sk-right"},
            )
            assert bearer_only.status_code == 401
            allowed = await http.post(
                "/v1/messages",
                json=body,
                headers={"anthropic-version": "2023-06-01", "x-api-key": "sk-right"},
            )
            assert allowed.status_code == 200
            assert allowed.json()["content"] == [{"type": "text", "text": "Hello from upstream."}]
    assert len(keyed.requests) == 5


def test_keep_alive_pipelining_and_chunked_request(up: Upstream) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": HELLO}).encode()
    plain = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    half = len(body) // 2
    chunked = (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\n\r\n"
        % (half, body[:half], len(body) - half, body[half:])
    )
    up.clear()
    raw = raw_exchange(up.port, plain + plain + chunked, b"never-found")  # read until the server closes
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert raw.count(b"Hello from upstream.") == 3
    last_body = raw.rsplit(b"\r\n\r\n", 1)[1]  # the last answer is whole, then the server closes
    assert json.loads(last_body)["object"] == "chat.completion"
    recorded = up.requests
    assert [r.json for r in recorded] == [json.loads(body)] * 3
    assert (recorded[2].path, recorded[2].query) == ("/v1/chat/completions", "x=1")


def test_malformed_request_line(up: Upstream) -> None:
    raw = raw_exchange(up.port, b"NONSENSE\r\n\r\n", b"never-found")
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in raw


def test_recording_is_bounded() -> None:
    upstream = Upstream.start_in_thread(max_recorded=3)
    try:
        with httpx.Client(base_url=upstream.base_url) as http:
            for _ in range(5):
                assert http.get("/v1/models").status_code == 200
        assert len(upstream.requests) == 3
        assert upstream.received == 5
        upstream.clear()
        assert upstream.requests == []
    finally:
        upstream.stop()


def test_runs_as_a_module() -> None:
    command = [sys.executable, "-m", "tests.upstream", "--port", "0"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("READY ")
            port = int(line.split()[1])
            response = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO}
            )
            assert response.json()["id"] == "chatcmpl-up-1"
        finally:
            process.terminate()
            process.wait(5)
