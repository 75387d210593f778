"""The ``Upstream`` server: its lifecycle (in a running loop, in a thread), the recorded requests,
the gate, and the dispatch of each request to its endpoint."""

from __future__ import annotations

import asyncio
import json
import ssl as ssl_module
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from tests.upstream import responses
from tests.upstream.protocol import Connection, Request
from tests.upstream.responses import PROMPT_TOKENS_PER_MESSAGE
from tests.upstream.scenarios import Scenario, parse_scenario
from tests.upstream.wire import (
    ERRORS,
    DateCache,
    Deferred,
    Response,
    anthropic_error,
    dumps,
    json_response,
    openai_error,
)

DEFAULT_OPENAI_MODELS: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
DEFAULT_ANTHROPIC_MODELS: tuple[str, ...] = ("claude-sonnet-4-5", "claude-haiku-4-5")
_CACHE_LIMIT = 1024


@dataclass(slots=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes
    json: Any  # the parsed body, or None when there is none or it is not JSON


class Upstream:
    """Start with `async with Upstream() as up:` inside a running loop, or `up = Upstream.start_in_thread()`
    (own loop in a daemon thread; `.stop()`)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        reply_text: str = "Hello from upstream.",
        openai_models: tuple[str, ...] = DEFAULT_OPENAI_MODELS,
        anthropic_models: tuple[str, ...] = DEFAULT_ANTHROPIC_MODELS,
        record: bool = True,
        max_recorded: int = 10_000,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.tls = ssl  # serve HTTPS with this context
        self.host = host
        self.port = port
        self.api_key = api_key
        self.reply_text = reply_text
        self.openai_models = openai_models
        self.anthropic_models = anthropic_models
        self.record = record
        self.max_recorded = max_recorded
        self._recorded: deque[Recorded] = deque(maxlen=max_recorded)
        self.gate = threading.Event()
        self.gate.set()
        self._count = 0
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._date = DateCache()
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._server = await loop.create_server(
            lambda: Connection(self), self.host, self.port, reuse_address=True, backlog=1024, ssl=self.tls
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0)  # let cancelled response tasks finish

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @classmethod
    def start_in_thread(cls, **kwargs: Any) -> Upstream:
        """Start a server on its own event loop in a daemon thread; stop it with ``stop()``."""
        upstream = cls(**kwargs)
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(upstream.start())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(upstream.aclose())
                loop.close()

        thread = threading.Thread(target=run, name=f"upstream-{id(upstream):x}", daemon=True)
        upstream._thread = thread
        thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return upstream

    def stop(self) -> None:
        """Stop a server started with ``start_in_thread``."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    @property
    def requests(self) -> list[Recorded]:
        """The recorded requests, oldest first: a snapshot (use ``clear()`` to forget them)."""
        return list(self._recorded)

    @property
    def received(self) -> int:
        """How many requests the server has received since it started (``clear()`` keeps it)."""
        return self._count

    def clear(self) -> None:
        """Forget the recorded requests (the request counter, and so the ids, keep counting)."""
        self._recorded.clear()

    def close_gate(self) -> None:
        """Calls to ``gate`` models wait from now on until ``open_gate``."""
        self.gate.clear()

    def open_gate(self) -> None:
        self.gate.set()

    @staticmethod
    def gated(request: Request) -> bool:
        try:
            model = json.loads(request.body).get("model")
        except (ValueError, AttributeError):
            return False
        return isinstance(model, str) and parse_scenario(model).gate

    # dispatch -------------------------------------------------------------------------------
    def _handle(self, request: Request) -> Response:
        self._count += 1
        n = self._count
        body_json: Any = None
        json_error = False
        if request.body:
            try:
                body_json = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                json_error = True
        if self.record:
            self._recorded.append(
                Recorded(
                    request.method, request.path, request.query, request.headers, request.body, body_json
                )
            )
        path = request.path
        headers = request.headers
        close = not request.keep_alive
        anthropic = path.startswith("/v1/messages") or "anthropic-version" in headers
        date = self._date.get()
        request_id = b"req_up_%d" % n

        def error(status: int, message: str, type_: str | None = None, code: str | None = None) -> bytes:
            if anthropic:
                payload = anthropic_error(type_ or ERRORS.get(status, ERRORS[500])[2], message)
            else:
                default = ERRORS.get(status, ERRORS[500])
                payload = openai_error(message, type_ or default[0], code)
            return json_response(status, payload, date, request_id, close)

        if self.api_key is not None:
            if anthropic:
                if headers.get("x-api-key") != self.api_key:
                    return error(401, "invalid x-api-key", "authentication_error")
            elif headers.get("authorization") != f"Bearer {self.api_key}":
                return error(
                    401,
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    "invalid_api_key",
                )

        if request.method == "GET":
            if path == "/v1/models" or path.startswith("/v1/models/"):
                return self._models(path, anthropic, date, request_id, close, error)
        elif request.method == "POST":
            route: Callable[..., Response] | None = {
                "/v1/chat/completions": self._chat,
                "/v1/embeddings": self._embeddings,
                "/v1/messages": self._messages,
                "/v1/messages/count_tokens": self._count_tokens,
            }.get(path)
            if route is not None:
                if anthropic and "anthropic-version" not in headers:
                    return error(400, "anthropic-version: header is required", "invalid_request_error")
                if json_error or not isinstance(body_json, dict):
                    message = (
                        "There was an error parsing the body of your request as JSON."
                        if json_error or body_json is None
                        else "The body of your request must be a JSON object."
                    )
                    return error(400, message, "invalid_request_error")
                model = body_json.get("model")
                if not isinstance(model, str) or not model:
                    return error(400, "model: field required", "invalid_request_error")
                scenario = parse_scenario(model)
                if scenario.error is not None:
                    status = scenario.error
                    return responses.delayed(scenario, error(status, ERRORS.get(status, ERRORS[500])[3]))
                if scenario.redirect:
                    return responses.delayed(scenario, responses.redirect_answer(date, close))
                if scenario.drop:
                    return Deferred(cut=True)  # read, then closed without a byte of answer
                response = route(body_json, model, scenario, n, date, request_id, close, error)
                if isinstance(response, Deferred) and body_json.get("stream") is True:
                    credential = headers.get("x-api-key" if anthropic else "authorization", "")
                    responses.misbehave(response, scenario, anthropic, credential)
                return responses.shaped(scenario, response)
        return error(
            404,
            f"Unknown request URL: {request.method} {path}. Please check the URL for typos, "
            "or see the docs at https://platform.openai.com/docs/api-reference/.",
            "invalid_request_error",
            "unknown_url",
        )

    def _cached(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        value = self._cache.get(key)
        if value is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            value = self._cache[key] = build()
        return value

    # endpoints ------------------------------------------------------------------------------
    def _models(
        self,
        path: str,
        anthropic: bool,
        date: bytes,
        request_id: bytes,
        close: bool,
        error: Callable[..., bytes],
    ) -> Response:
        models = self.anthropic_models if anthropic else self.openai_models
        entries = responses.model_entries(anthropic, models)
        if path == "/v1/models":
            return json_response(200, responses.models_listing(anthropic, entries), date, request_id, close)
        wanted = path.removeprefix("/v1/models/")
        for entry in entries:
            if entry["id"] == wanted:
                return json_response(200, dumps(entry).encode(), date, request_id, close)
        return error(
            404,
            f"The model '{wanted}' does not exist",
            "not_found_error" if anthropic else None,
            "model_not_found",
        )

    def _chat(
        self,
        body: dict[str, Any],
        model: str,
        scenario: Scenario,
        n: int,
        date: bytes,
        request_id: bytes,
        close: bool,
        error: Callable[..., bytes],
    ) -> Response:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "Missing required parameter: 'messages'.", "invalid_request_error", None)
        prompt_tokens = PROMPT_TOKENS_PER_MESSAGE * len(messages)
        created = b"%d" % int(time.time())
        ident = b"chatcmpl-up-%d" % n
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = (
                isinstance(options, dict) and options.get("include_usage") is True and not scenario.no_usage
            )
            key: tuple[Any, ...] = (
                "chat-stream",
                model,
                scenario.chunks,
                include_usage,
                prompt_tokens,
                scenario.cached,
            )
            head_t, content_t, tail_t = self._cached(
                key, lambda: responses.chat_stream_templates(model, scenario, include_usage, prompt_tokens)
            )
            return responses.stream_answer(
                scenario,
                [t.replace(b"@ID@", ident).replace(b'"@CREATED@"', created) for t in head_t],
                [t.replace(b"@ID@", ident).replace(b'"@CREATED@"', created) for t in content_t],
                [t.replace(b"@ID@", ident).replace(b'"@CREATED@"', created) for t in tail_t],
                date,
                request_id,
                close,
            )
        if scenario.fill:
            filled = responses.filled_chat(body, model, prompt_tokens, ident, created)
            return responses.json_answer(scenario, filled, date, request_id, close)
        key = ("chat", model, prompt_tokens, scenario.cached, scenario.no_usage, self.reply_text)
        template: bytes = self._cached(
            key,
            lambda: responses.chat_template(
                model, self.reply_text, prompt_tokens, scenario.cached, scenario.no_usage
            ),
        )
        payload = template.replace(b"@ID@", ident, 1).replace(b'"@CREATED@"', created, 1)
        return responses.json_answer(scenario, payload, date, request_id, close)

    def _embeddings(
        self,
        body: dict[str, Any],
        model: str,
        scenario: Scenario,
        n: int,
        date: bytes,
        request_id: bytes,
        close: bool,
        error: Callable[..., bytes],
    ) -> Response:
        raw = body.get("input")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw)):
            count = 1
        elif isinstance(raw, list) and raw:
            count = len(raw)
        else:
            return error(400, "'input' is a required property", "invalid_request_error", None)
        as_base64 = body.get("encoding_format") == "base64"
        data = responses.embeddings_data(count, as_base64)
        tokens = responses.EMBEDDING_TOKENS_PER_INPUT * count
        result: dict[str, Any] = {"object": "list", "data": data, "model": model}
        if not scenario.no_usage:
            result["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return responses.json_answer(scenario, dumps(result).encode(), date, request_id, close)

    def _messages(
        self,
        body: dict[str, Any],
        model: str,
        scenario: Scenario,
        n: int,
        date: bytes,
        request_id: bytes,
        close: bool,
        error: Callable[..., bytes],
    ) -> Response:
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            return error(400, "max_tokens: Field required", "invalid_request_error")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "messages: Field required", "invalid_request_error")
        input_tokens = PROMPT_TOKENS_PER_MESSAGE * len(messages)
        ident = b"msg_up_%d" % n
        if body.get("stream") is True:
            key: tuple[Any, ...] = (
                "messages-stream",
                model,
                scenario.chunks,
                scenario.no_usage,
                input_tokens,
                scenario.cached,
            )
            head_t, content_t, tail_t = self._cached(
                key, lambda: responses.messages_stream_templates(model, scenario, input_tokens)
            )
            return responses.stream_answer(
                scenario,
                [t.replace(b"@ID@", ident) for t in head_t],
                content_t,
                tail_t,
                date,
                request_id,
                close,
            )
        key = ("messages", model, input_tokens, scenario.cached, scenario.no_usage, self.reply_text)
        template: bytes = self._cached(
            key, lambda: responses.messages_template(model, self.reply_text, input_tokens, scenario)
        )
        return responses.json_answer(scenario, template.replace(b"@ID@", ident, 1), date, request_id, close)

    def _count_tokens(
        self,
        body: dict[str, Any],
        model: str,
        scenario: Scenario,
        n: int,
        date: bytes,
        request_id: bytes,
        close: bool,
        error: Callable[..., bytes],
    ) -> Response:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "messages: Field required", "invalid_request_error")
        payload = dumps({"input_tokens": PROMPT_TOKENS_PER_MESSAGE * len(messages)}).encode()
        return responses.json_answer(scenario, payload, date, request_id, close)
