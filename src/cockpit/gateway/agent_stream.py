"""One model call of an agent run, streamed: the answer's text goes to the caller as the model writes
it, while tool calls are gathered from their deltas (OpenAI's stream format, which every upstream
adapter speaks) and run when the call ends. Recorded and settled like any streamed call, including
when the caller goes away in the middle."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cockpit.gateway.errors import GatewayError
from cockpit.kit.time import utcnow
from cockpit.usage.models import CallStatus, Operation

if TYPE_CHECKING:
    from cockpit.gateway.agent_run import AgentRunner, OfferedTool, Run
    from cockpit.gateway.service import Context


def _data_lines(event: bytes) -> list[bytes]:
    return [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]


def _merge_tool_calls(found: dict[int, dict[str, Any]], deltas: Any) -> None:
    if not isinstance(deltas, list):
        return
    for delta in deltas:
        if not isinstance(delta, dict):
            continue
        index = delta.get("index", 0)
        call = found.setdefault(index if isinstance(index, int) else 0, {
            "id": "", "type": "function", "function": {"name": "", "arguments": ""},
        })  # fmt: skip
        if isinstance(delta.get("id"), str):
            call["id"] = delta["id"]
        function = delta.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("name"), str):
                call["function"]["name"] += function["name"]
            if isinstance(function.get("arguments"), str):
                call["function"]["arguments"] += function["arguments"]


async def stream_step(
    runner: AgentRunner, ctx: Context, run: Run, offer: list[OfferedTool]
) -> AsyncIterator[tuple[str, Any]]:
    """Yields ("delta", text) as the model writes, then ("message", (message, finish_reason))."""
    from cockpit.gateway.service import INTERNAL_ERROR, Context

    gw = runner.gateway
    body = runner.step_body(run, offer)
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    step = Context(
        ctx.caller, Operation.chat.value, utcnow(), time.perf_counter(), ctx.attribution,
        catalog=ctx.catalog, body=body, model_name=run.route.name, route=run.route,
    )  # fmt: skip
    step.body_bytes = ctx.body_bytes
    try:
        if ctx.catalog is not None and ctx.catalog.credit_factor > 0:
            step.hold = await gw._hold(step, run.route, body)
        step.call = call = gw._call(run.route, body, Operation.chat.value, True, True)
        call.started = step.started
        chunks = await gw.upstreams.start_stream(call)
    except GatewayError as exc:
        gw._record(step, status=CallStatus.error, http_status=exc.status, error=exc)
        raise
    text: list[str] = []
    tool_calls: dict[int, dict[str, Any]] = {}
    finish = "stop"
    status = CallStatus.client_disconnected
    try:
        async for event in chunks:
            for data in _data_lines(event):
                if not data or data == b"[DONE]":
                    continue
                try:
                    chunk = json.loads(data)
                except ValueError:
                    continue
                choices = chunk.get("choices") if isinstance(chunk, dict) else None
                if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                    continue
                delta = choices[0].get("delta")
                if isinstance(choices[0].get("finish_reason"), str):
                    finish = choices[0]["finish_reason"]
                if not isinstance(delta, dict):
                    continue
                _merge_tool_calls(tool_calls, delta.get("tool_calls"))
                content = delta.get("content")
                if isinstance(content, str) and content:
                    text.append(content)
                    yield "delta", content
        if call.failure is not None:
            status = CallStatus.error
            gw._record(step, status=status, http_status=call.failure.status, error=call.failure)
            raise call.failure
        status = CallStatus.success
    except GatewayError:
        status = CallStatus.error
        raise
    except Exception:
        status = CallStatus.error
        gw._record(step, status=status, http_status=500, error=INTERNAL_ERROR)
        raise
    finally:
        if status is CallStatus.client_disconnected:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(BaseException):
                    await aclose()
            step.on_recorded = run.add_recorded  # a stopped answer costs what its call is recorded with
            gw._record(step, status=status, http_status=499)
    gw._record(step, status=CallStatus.success, http_status=200)
    run.add_call(call.usage, ctx.catalog.credit_factor if ctx.catalog is not None else Decimal(0))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if tool_calls:
        message["tool_calls"] = [tool_calls[i] for i in sorted(tool_calls)]
    yield "message", (message, finish)
