"""How the gateway reads an OpenAI stream's events as they pass: usage and errors at once, the text
of the other events only when someone needs it (stored content, a count when usage is missing), in
the order the events came."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from cockpit.gateway.upstreams import Call, UpstreamReportedError, Upstreams


def _call() -> Call:
    route: Any = None  # not read while events are kept or dropped
    return Call(
        route=route, body={}, operation="chat", stream=True, include_usage=False,
        connect_timeout=1, read_timeout=1,
    )  # fmt: skip


def _event(payload: dict[str, Any] | str, *, spaced: bool = False) -> bytes:
    data = (
        payload
        if isinstance(payload, str)
        else json.dumps(payload, separators=None if spaced else (",", ":"))
    )
    return f"data: {data}\n\n".encode()


def _chunk(text: str | None, **extra: Any) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": delta}], "usage": None, **extra}


def _keep(call: Call, event: bytes) -> bool:
    upstreams = cast(Any, Upstreams)
    return bool(upstreams._keep_openai_event(None, call, event))


def test_text_events_pass_unparsed_and_their_text_comes_back_in_order() -> None:
    call = _call()
    assert _keep(call, _event(_chunk(None)))  # the role chunk: no output yet
    assert call.first_token is None
    for piece in ("Hel", "lo", ", ", "wor"):
        assert _keep(call, _event(_chunk(piece)))
    assert call.first_token is not None
    assert call.upstream_id == "chatcmpl-1"
    assert call.pieces == ["Hel"]  # the first token's event was read; the others wait
    assert len(call.unparsed) == 3
    # A usage event that also carries text: read at once, after the waiting text.
    final = _chunk("ld", usage={"prompt_tokens": 7, "completion_tokens": 5})
    assert _keep(call, _event(final, spaced=True)) is True
    assert call.usage == (7, 5, 0)
    assert call.unparsed == []
    assert _keep(call, b"data: [DONE]\n\n")
    assert call.finished
    assert call.answer() == "Hello, world"


def test_a_usage_only_event_the_caller_did_not_ask_for_is_dropped() -> None:
    call = _call()
    _keep(call, _event(_chunk("a")))
    _keep(call, _event(_chunk("b")))
    usage = {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    assert _keep(call, _event(usage)) is False
    assert call.usage == (3, 2, 0)
    assert call.answer() == "ab"


@pytest.mark.parametrize("spaced", [False, True])
def test_an_error_event_after_the_first_token_is_still_caught(spaced: bool) -> None:
    call = _call()
    _keep(call, _event(_chunk("a")))
    with pytest.raises(UpstreamReportedError):
        _keep(call, _event({"error": {"message": "overloaded"}}, spaced=spaced))


def test_text_that_mentions_usage_or_error_is_text() -> None:
    call = _call()
    _keep(call, _event(_chunk("a")))
    assert _keep(call, _event(_chunk('the "usage": field and "error": 1')))  # escaped in JSON: no key
    assert len(call.unparsed) == 1
    assert call.usage is None
    assert call.answer() == 'athe "usage": field and "error": 1'
