"""A local stand-in for the OpenAI and Anthropic HTTP APIs, for tests and benchmarks.

A real HTTP/1.1 server (raw ``asyncio``, standard library only) with keep-alive and pipelining.
Request bodies may use ``Content-Length`` or ``Transfer-Encoding: chunked``. JSON answers carry a
``Content-Length``; SSE answers are ``Content-Type: text/event-stream`` sent with
``Transfer-Encoding: chunked``, one HTTP chunk per SSE event.

Use it inside a running loop::

    async with Upstream() as up:
        client = openai.AsyncOpenAI(base_url=up.base_url + "/v1", api_key="x")

or in a daemon thread with its own loop::

    up = Upstream.start_in_thread()
    ...
    up.stop()

or as a process: ``python -m tests.upstream --port 9100`` prints ``READY <port>`` once listening and
serves until killed (``--api-key KEY`` enforces a key, ``--no-record`` skips recording).

Endpoints
---------
OpenAI (errors as ``{"error": {"message", "type", "param", "code"}}``):

* ``GET /v1/models`` and ``GET /v1/models/<id>`` (OpenAI shape unless an ``anthropic-version`` header
  is present, see below).
* ``POST /v1/chat/completions``. Non-stream: a ``chat.completion`` with id ``chatcmpl-up-<n>`` (``n`` =
  the server's request counter, from 1), content ``Upstream.reply_text`` ("Hello from upstream."),
  usage ``prompt_tokens = 7 * len(messages)``, ``completion_tokens = 5``,
  ``prompt_tokens_details.cached_tokens = 0``. Stream (``"stream": true``): a role chunk (content ""),
  N content chunks (default 20, the i-th, from 0, with content ``"tok<i> "``), a finish chunk
  (``finish_reason "stop"``), then, only when ``stream_options.include_usage`` is true, a usage chunk
  with ``choices: []`` and ``completion_tokens = N``; then ``data: [DONE]``.
* ``POST /v1/embeddings``: 8-dimensional vectors, the i-th input's vector is
  ``[(j + 1) / 8 + i for j in range(8)]`` (exact in float32); ``encoding_format: "base64"`` (the
  ``openai`` package's default) is honoured; usage ``prompt_tokens = total_tokens = 3 * inputs``.

Anthropic (errors as ``{"type": "error", "error": {"type", "message"}}``):

* ``GET /v1/models`` and ``GET /v1/models/<id>`` with an ``anthropic-version`` header: Anthropic's
  shape ``{data: [{type: "model", id, display_name, created_at}], has_more, first_id, last_id}``.
* ``POST /v1/messages``: requires the ``anthropic-version`` header and an integer ``max_tokens``
  (else 400 ``invalid_request_error``). Non-stream: a ``message`` with id ``msg_up_<n>``, one text
  block ``reply_text``, ``stop_reason "end_turn"``, usage ``input_tokens = 7 * len(messages)``,
  ``output_tokens = 5``, ``cache_read_input_tokens = 0``, ``cache_creation_input_tokens = 0``.
  Stream: ``event: <name>\\ndata: <json>\\n\\n`` frames message_start, content_block_start, ping, N
  content_block_delta (text_delta ``"tok<i> "``), content_block_stop, message_delta
  (``stop_reason``, ``usage.output_tokens = N``), message_stop.
* ``POST /v1/messages/count_tokens``: ``{"input_tokens": 7 * len(messages)}``.

Everything else: 404 in OpenAI's shape. A body that is not a JSON object: 400 in the path's shape.
When ``api_key`` is set, OpenAI paths need ``Authorization: Bearer <key>`` and Anthropic paths
(``/v1/messages*``, or any request with ``anthropic-version``) need ``x-api-key: <key>``, else 401.

Scenarios
---------
Behaviour is picked per call by the request's ``model``. The model is split on ``-``; a keyword
token (followed by its integer argument where it takes one) switches a behaviour on, every other
token is ignored, so ``gpt-4o-mini-chunks-5-chunkdelay-50`` is "gpt-4o-mini, 5 chunks, 50 ms apart"::

    error-<status>    answer <status> (400, 401, 403, 404, 429, 500, 502, 503, 529, ...) in the
                      protocol's error shape; 400's message is "upstream says the request is bad"
    slow-<ms>         wait <ms> before answering (before the status line, also for streams)
    chunks-<n>        stream <n> content chunks (default 20)
    chunkdelay-<ms>   wait <ms> between consecutive content chunks
    nousage           stream without any usage (even if include_usage is asked); JSON without usage
    cut-<k>           stream: send k content chunks, then close the connection without finishing
                      the chunked body; JSON: send the headers and half the body, then close
    hang              read the request and never answer (the connection stays open)
    redirect          302 to http://example.invalid/
    gate              answer only once the test calls ``Upstream.open_gate()`` (at most 10 s later)
    cached-<k>        prompt_tokens_details.cached_tokens / cache_read_input_tokens = k
    fill              JSON chat: spend the whole output limit, as a model that never stops early
                      would: ``n`` choices (default 1) of ``max_tokens`` completion tokens each
                      (``max_tokens`` read first, as some upstreams do; then
                      ``max_completion_tokens``; 16 when neither is sent)
    earlyhints        send an interim ``103 Early Hints`` response before the final one
    trickle-<ms>      write the whole response (head and body) 97 bytes at a time, <ms> apart: a
                      slow upstream whose every silence is short
    drop              read the request, then close the connection without answering
    leak-<k>          stream: k content chunks, then a provider error event whose message contains
                      the API key the request was sent with ("quota exceeded for key Bearer sk-..."),
                      then the end of the body (no ``[DONE]``, no ``message_stop``)
    runon-<kib>       stream: after the first events, one event of <kib> KiB that never ends (no
                      blank line), then the end of the body

``cut`` is also the scenario of a server that closes the connection in the middle of a body (JSON
or stream).

``ForwardProxy`` (``proxy.py``) is a small HTTP forward proxy for tests: ``CONNECT`` tunnels and
absolute-form plain HTTP, counting what it forwarded. ``Upstream(ssl=context)`` serves HTTPS.

Every request is recorded as a :class:`Recorded`; ``Upstream.requests`` is a snapshot list of the
last ``max_recorded`` (10,000 by default), oldest first; ``clear()`` forgets them.

The package: ``scenarios.py`` (the model keywords), ``wire.py`` (HTTP framing and error bodies),
``protocol.py`` (one client connection: request parsing, keep-alive, deferred answers),
``responses.py`` (the OpenAI and Anthropic bodies, streams and usage), ``server.py`` (the
``Upstream`` class: lifecycle, recording, dispatch), ``proxy.py`` and ``__main__.py`` (the process).
"""

from tests.upstream.proxy import ForwardProxy
from tests.upstream.scenarios import Scenario, parse_scenario
from tests.upstream.server import Recorded, Upstream

__all__ = ["ForwardProxy", "Recorded", "Scenario", "Upstream", "parse_scenario"]
