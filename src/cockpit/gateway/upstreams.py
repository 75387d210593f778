"""Talking to upstream providers: OpenAI-compatible (pass-through), Anthropic (translated), simulated.

Each adapter fills the ``Call`` it is given with what the upstream reported (usage, id, output
text, time of the first token) and returns the answer in the OpenAI format. An error before the
first byte of the answer is a ``GatewayError``; a stream that breaks later ends with an SSE error
event and ``call.failure`` set.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from cockpit.gateway import anthropic, simulated
from cockpit.gateway.directory import Route
from cockpit.gateway.errors import (
    GatewayError,
    invalid,
    stream_interrupted,
    upstream_status,
    upstream_timeout,
    upstream_unreachable,
)
from cockpit.kit.upstream_http import Target, UpstreamClient
from cockpit.providers.models import ProviderKind

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
DONE = b"data: [DONE]\n\n"
# The longest SSE event relayed: an upstream that never ends an event must not grow the buffer
# without bound.
MAX_EVENT_BYTES = 1024 * 1024

Prepared = tuple[Target, CIMultiDict[str]]


@dataclass(slots=True)
class Call:
    """One gateway call on its way through an adapter."""

    route: Route
    body: dict[str, Any]
    operation: str
    stream: bool
    include_usage: bool
    connect_timeout: float
    read_timeout: float
    started: float = field(default_factory=time.perf_counter)
    # Filled by the adapter:
    usage: tuple[int, int, int] | None = None  # input, output, cached input tokens
    upstream_id: str | None = None
    first_token: float | None = None
    pieces: list[str] = field(default_factory=list)  # streamed output text
    # Events of an OpenAI stream passed on without being parsed (after the first token, an event
    # that carries no usage and no error): their text is read only if someone asks (``answer``).
    unparsed: list[bytes] = field(default_factory=list)
    output_text: str | None = None  # the whole answer text (non-streamed)
    failure: GatewayError | None = None  # a stream that broke after it started
    finished: bool = False  # the stream reached its end

    def mark_first_token(self) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter()

    def answer(self) -> str:
        """The output text: the whole answer, or what a stream delivered so far."""
        if not self.stream:
            return self.output_text or ""
        self.parse_pending()
        return "".join(self.pieces)

    def parse_pending(self) -> None:
        """The text of the events passed on unparsed, added to ``pieces`` in their order."""
        pending, self.unparsed = self.unparsed, []
        for data in pending:
            with contextlib.suppress(ValueError):
                chunk = json.loads(data)
                if isinstance(chunk, dict):
                    _note_chunk(self, chunk)


# An event that may carry usage or an error (a non-null "usage" or "error" member): parsed at once.
# A false match only costs a parse; the keys are never written escaped by a provider.
_METERED = re.compile(rb'"(?:usage|error)"\s*:\s*(?!null\b)')


def scrub(text: str, key: str | None) -> str:
    # The key goes before the text is cut: a cut could leave part of it that no longer matches.
    text = " ".join(str(text).split())
    return (text.replace(key, "[api key]") if key else text)[:400]


def _error_detail(content: bytes) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return content[:200].decode("utf-8", "replace")
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return ""


def _usage_of(data: Any) -> tuple[int, int, int] | None:
    if not isinstance(data, dict):
        return None
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return prompt, completion, cached if isinstance(cached, int) else 0


def _delta_text(chunk: dict[str, Any]) -> tuple[str | None, bool]:
    """(content text, whether the chunk carries output: text or tool calls)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None, False
    delta = choices[0].get("delta")
    if not isinstance(delta, dict):
        return None, False
    content = delta.get("content")
    text = content if isinstance(content, str) and content else None
    return text, bool(text) or bool(delta.get("tool_calls"))


def _message_text(data: Any) -> str | None:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class UpstreamReportedError(Exception):
    """The upstream sent an error event in the middle of a stream."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Upstreams:
    def __init__(self, client: UpstreamClient) -> None:
        self.client = client

    # ---- HTTP plumbing ----

    async def _send(
        self, call: Call, target: Prepared, payload: dict[str, Any], key: str | None
    ) -> aiohttp.ClientResponse:
        destination, headers = target
        try:
            response = await self.client.send(
                "POST",
                destination,
                headers=headers,
                data=json.dumps(payload, separators=(",", ":")).encode(),
                timing=self.client.timeout(call.connect_timeout, call.read_timeout),
            )
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors (and ClientErrors)
            raise upstream_timeout() from None
        except aiohttp.ClientError as exc:
            raise upstream_unreachable(scrub(_describe(exc), key)) from None
        if response.status != 200:
            try:
                content = await response.read()
            except TimeoutError:
                raise upstream_timeout() from None
            except aiohttp.ClientError:
                content = b""
            finally:
                response.release()
            raise upstream_status(response.status, scrub(_error_detail(content), key))
        return response

    async def _read(self, response: aiohttp.ClientResponse, key: str | None) -> bytes:
        """The whole body as sent (never decoded), and the connection released."""
        try:
            return await response.read()
        except TimeoutError:
            raise upstream_timeout() from None
        except aiohttp.ClientError as exc:
            raise upstream_unreachable(scrub(_describe(exc), key)) from None
        finally:
            response.release()

    # ---- dispatch ----

    async def complete(self, call: Call) -> bytes:
        kind = call.route.upstream.kind
        if kind is ProviderKind.openai:
            return await self._openai_json(call, "/chat/completions")
        if kind is ProviderKind.anthropic:
            return await self._anthropic_json(call)
        return await self._simulated_json(call)

    async def start_stream(self, call: Call) -> AsyncIterator[bytes]:
        kind = call.route.upstream.kind
        if kind is ProviderKind.openai:
            return await self._openai_stream(call)
        if kind is ProviderKind.anthropic:
            return await self._anthropic_stream(call)
        return await self._simulated_stream(call)

    async def embed(self, call: Call) -> bytes:
        kind = call.route.upstream.kind
        if kind is ProviderKind.openai:
            return await self._openai_json(call, "/embeddings")
        if kind is ProviderKind.simulated:
            try:
                data = simulated.embed(
                    call.body,
                    upstream_model=call.route.upstream_model,
                    public_model=call.route.name,
                    settings=call.route.upstream.settings,
                )
            except ValueError as exc:
                raise invalid(str(exc), param="input") from None
            except simulated.SimulatedFailure as exc:
                raise GatewayError(502, str(exc), type="upstream_error", code="upstream_error") from None
            call.usage = _usage_of(data)
            return json.dumps(data, separators=(",", ":")).encode()
        raise invalid(
            f"The model '{call.route.name}' is served by an Anthropic provider, which has no embeddings.",
            param="model",
            code="unsupported_operation",
        )

    # ---- OpenAI-compatible ----

    def _openai_request(self, call: Call, path: str) -> tuple[Prepared, dict[str, Any]]:
        upstream = call.route.upstream
        payload = dict(call.body)
        payload["model"] = call.route.upstream_model
        if call.stream:
            options = payload.get("stream_options")
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        key = f"{path} {call.stream}"
        target = upstream.prepared.get(key)
        if target is None:
            headers = [
                ("content-type", "application/json"),
                ("accept", "text/event-stream" if call.stream else "application/json"),
            ]
            if upstream.api_key:
                header = upstream.settings.get("api_key_header")
                if isinstance(header, str) and header and header.lower() != "authorization":
                    headers.append((header, upstream.api_key))
                else:
                    headers.append(("authorization", f"Bearer {upstream.api_key}"))
            url = URL(f"{upstream.base_url}{path}")
            query = upstream.settings.get("query_params")
            if isinstance(query, dict) and query:
                url = url.update_query({str(k): str(v) for k, v in query.items()})
            target = upstream.prepared[key] = (self.client.target(url), CIMultiDict(headers))
        return target, payload

    async def _openai_json(self, call: Call, path: str) -> bytes:
        target, payload = self._openai_request(call, path)
        key = call.route.upstream.api_key
        content = await self._read(await self._send(call, target, payload, key), key)
        call.first_token = time.perf_counter()
        try:
            data = json.loads(content)
        except ValueError:
            raise GatewayError(502, "The upstream provider answered with something that is not JSON.",
                               type="upstream_error", code="upstream_bad_response") from None  # fmt: skip
        call.usage = _usage_of(data)
        if isinstance(data, dict):
            call.upstream_id = str(data.get("id"))[:200] if data.get("id") else None
            call.output_text = _message_text(data)
        return content

    async def _openai_stream(self, call: Call) -> AsyncIterator[bytes]:
        target, payload = self._openai_request(call, "/chat/completions")
        response = await self._send(call, target, payload, call.route.upstream.api_key)
        return self._relay_openai(call, response)

    def _relay_openai(self, call: Call, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The upstream's SSE events, passed through as they are. The usage event is always asked
        for upstream (metering needs it) and passed on only when the caller asked for it; an error
        event ends the stream with Cockpit's error event (its message scrubbed of the key)."""
        return _relay(
            call,
            response,
            lambda event: [event] if self._keep_openai_event(call, event) else [],
            call.route.upstream.api_key,
        )

    def _keep_openai_event(self, call: Call, event: bytes) -> bool:
        if event.startswith(b"data:") and event.find(b"\n") == len(event) - 2:
            data = event[5:].strip()  # the usual event: one data line
        else:
            data = b""
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    data += line[5:].strip()
        if not data:
            return True  # comments, keep-alives
        if data == b"[DONE]":
            call.finished = True
            return True
        if call.first_token is not None and call.upstream_id is not None and not _METERED.search(data):
            # Most events of a stream: text on its way to the caller, nothing to meter or check now.
            call.unparsed.append(data)
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            return True
        if not isinstance(chunk, dict):
            return True
        if isinstance(chunk.get("error"), dict | str) and chunk["error"] and not chunk.get("choices"):
            # A provider's error event: relayed as Cockpit's error, its message scrubbed.
            raise UpstreamReportedError(_error_detail(data) or "Upstream stream error.")
        if call.upstream_id is None and isinstance(chunk.get("id"), str):
            call.upstream_id = chunk["id"][:200]
        _note_chunk(call, chunk)
        usage = _usage_of(chunk)
        if usage is not None:
            call.usage = usage
            if not call.include_usage and not chunk.get("choices"):
                return False  # requested by Cockpit for metering, not by the caller
        return True

    # ---- Anthropic ----

    def _anthropic_request(self, call: Call) -> tuple[Prepared, dict[str, Any]]:
        upstream = call.route.upstream
        try:
            payload = anthropic.to_messages_request(
                call.body,
                upstream_model=call.route.upstream_model,
                max_tokens=max_output(call),
                stream=call.stream,
            )
        except anthropic.TranslationError as exc:
            raise invalid(exc.message, param=exc.param) from None
        key = f"messages {call.stream}"
        target = upstream.prepared.get(key)
        if target is None:
            headers = [
                ("content-type", "application/json"),
                ("anthropic-version", ANTHROPIC_VERSION),
                ("accept", "text/event-stream" if call.stream else "application/json"),
            ]
            if upstream.api_key:
                headers.append(("x-api-key", upstream.api_key))
            target = upstream.prepared[key] = (
                self.client.target(f"{upstream.base_url}/v1/messages"),
                CIMultiDict(headers),
            )
        return target, payload

    async def _anthropic_json(self, call: Call) -> bytes:
        target, payload = self._anthropic_request(call)
        key = call.route.upstream.api_key
        content = await self._read(await self._send(call, target, payload, key), key)
        call.first_token = time.perf_counter()
        try:
            data = json.loads(content)
            result, usage = anthropic.from_messages_response(data, model=call.route.name)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise GatewayError(502, "The upstream provider answered with something Cockpit cannot read.",
                               type="upstream_error", code="upstream_bad_response") from None  # fmt: skip
        call.usage = usage
        call.upstream_id = str(data.get("id"))[:200] if isinstance(data, dict) and data.get("id") else None
        call.output_text = _message_text(result)
        return json.dumps(result, separators=(",", ":")).encode()

    async def _anthropic_stream(self, call: Call) -> AsyncIterator[bytes]:
        target, payload = self._anthropic_request(call)
        response = await self._send(call, target, payload, call.route.upstream.api_key)
        return self._relay_anthropic(call, response)

    def _relay_anthropic(self, call: Call, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """Anthropic's events (``event: name`` / ``data: {...}``), translated to OpenAI chunks."""
        translator = anthropic.StreamTranslator(model=call.route.name, include_usage=call.include_usage)

        def translate(event: bytes) -> list[bytes]:
            name, data = "", b""
            for line in event.split(b"\n"):
                if line.startswith(b"event:"):
                    name = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data += line[5:].strip()
            try:
                parsed = json.loads(data) if data else None
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                return []
            name = name or str(parsed.get("type", ""))
            if name == "message_start" and isinstance(parsed.get("message"), dict):
                message_id = parsed["message"].get("id")
                call.upstream_id = str(message_id)[:200] if message_id else None
            out = []
            for chunk in translator.feed(name, parsed):
                _note_chunk(call, chunk)
                out.append(sse(chunk))
            if translator.usage is not None:
                call.usage = translator.usage
            if translator.finished and not call.finished:
                call.finished = True
                out.append(DONE)
            return out

        return _relay(call, response, translate, call.route.upstream.api_key)

    # ---- simulated ----

    async def _simulated_json(self, call: Call) -> bytes:
        route = call.route
        try:
            data = await simulated.complete(
                call.body,
                upstream_model=route.upstream_model,
                public_model=route.name,
                settings=route.upstream.settings,
                max_tokens=max_output(call),
            )
        except ValueError as exc:
            raise invalid(str(exc), param="messages") from None
        except simulated.SimulatedFailure as exc:
            raise GatewayError(502, str(exc), type="upstream_error", code="upstream_error") from None
        call.first_token = time.perf_counter()
        call.usage = _usage_of(data)
        call.upstream_id = data["id"]
        call.output_text = _message_text(data)
        return json.dumps(data, separators=(",", ":")).encode()

    async def _simulated_stream(self, call: Call) -> AsyncIterator[bytes]:
        route = call.route
        try:
            chunks = simulated.stream(
                call.body,
                upstream_model=route.upstream_model,
                public_model=route.name,
                settings=route.upstream.settings,
                max_tokens=max_output(call),
                include_usage=True,
            )
            first = await anext(chunks)
        except ValueError as exc:
            raise invalid(str(exc), param="messages") from None
        except simulated.SimulatedFailure as exc:
            raise GatewayError(502, str(exc), type="upstream_error", code="upstream_error") from None
        return self._relay_simulated(call, first, chunks)

    async def _relay_simulated(
        self, call: Call, first: dict[str, Any], chunks: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[bytes]:
        chunk: dict[str, Any] | None = first
        while chunk is not None:
            call.upstream_id = call.upstream_id or chunk.get("id")
            _note_chunk(call, chunk)
            usage = _usage_of(chunk)
            if usage is not None:
                call.usage = usage
            if call.include_usage or usage is None or chunk.get("choices"):
                if not call.include_usage:
                    chunk.pop("usage", None)
                yield sse(chunk)
            chunk = await anext(chunks, None)
        call.finished = True
        yield DONE


def _note_chunk(call: Call, chunk: dict[str, Any]) -> None:
    """Time of the first token and the text of an OpenAI chunk that is on its way to the caller."""
    text, output = _delta_text(chunk)
    if output:
        call.mark_first_token()
    if text:
        if call.unparsed:  # earlier text first
            call.parse_pending()
        call.pieces.append(text)


async def _relay(
    call: Call,
    response: aiohttp.ClientResponse,
    convert: Callable[[bytes], list[bytes]],
    api_key: str | None,
) -> AsyncIterator[bytes]:
    """Split the upstream's SSE stream into events as the bytes arrive, convert each event into
    what the caller gets, and send what each read produced at once (nothing waits for more data).
    A stream that ends early, breaks, reports an error or sends an event over ``MAX_EVENT_BYTES``
    ends with an error event and ``call.failure`` set. The provider's key never reaches the caller,
    whatever event carries it."""
    key = api_key.encode() if api_key else None
    buffer = b""
    held_cr = False  # a piece ended with CR: its LF may start the next piece
    out: list[bytes] = []  # converted events not yet sent
    try:
        async for raw in response.content.iter_any():
            if held_cr:
                raw, held_cr = b"\r" + raw, False
            if b"\r" in raw:
                if raw.endswith(b"\r"):
                    raw, held_cr = raw[:-1], True
                raw = raw.replace(b"\r\n", b"\n")
            start = max(len(buffer) - 1, 0)  # an event's blank line may straddle two pieces
            buffer += raw
            taken = 0
            while (end := buffer.find(b"\n\n", start)) >= 0:
                out.extend(convert(buffer[taken : end + 2]))
                taken = start = end + 2
            if taken:
                buffer = buffer[taken:]
            if out:
                chunk, out = b"".join(out), []
                yield _scrubbed(chunk, key)
            if len(buffer) > MAX_EVENT_BYTES:
                call.failure = stream_interrupted(
                    "The upstream provider sent an event larger than "
                    f"{MAX_EVENT_BYTES // (1024 * 1024)} MiB; the stream was stopped."
                )
                break
        else:
            if buffer.strip():
                out.extend(convert(buffer + b"\n\n"))
            if not call.finished:
                call.failure = stream_interrupted("The upstream provider ended the stream early.")
    except (anthropic.UpstreamStreamError, UpstreamReportedError) as exc:
        call.failure = GatewayError(
            502,
            f"The upstream provider reported an error: {scrub(exc.message, api_key)}",
            type="upstream_error",
            code="upstream_error",
        )
    except TimeoutError:
        call.failure = upstream_timeout()
    except aiohttp.ClientError:
        call.failure = stream_interrupted("The upstream provider's stream broke off.")
    finally:
        # Back to the pool when the body was read to its end, closed otherwise.
        response.release()
    if out:  # the events converted before the end or the failure
        yield _scrubbed(b"".join(out), key)
    if call.failure is not None:
        yield sse(call.failure.body())


def _scrubbed(chunk: bytes, key: bytes | None) -> bytes:
    return chunk.replace(key, b"[api key]") if key and key in chunk else chunk


def _describe(exc: aiohttp.ClientError) -> str:
    """What went wrong, for the caller: aiohttp's message, or the kind of failure."""
    text = str(exc).strip()
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the upstream closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the connection broke in the middle of the answer"
    return text or type(exc).__name__


def max_output(call: Call) -> int:
    """The output-token limit for providers that need one: the caller's, capped by the model's."""
    limit = call.route.max_output_tokens
    asked = call.body.get("max_completion_tokens", call.body.get("max_tokens"))
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
        return min(asked, limit) if limit else asked
    return limit or DEFAULT_MAX_TOKENS
