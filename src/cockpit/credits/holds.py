"""How much a gateway call must hold before it goes upstream, and the output limit that keeps it there.

A call may never cost more than it held: the hold covers an upper bound of its input tokens at the
input price plus its output token limit at the output price, and the output limit sent upstream
(``max_tokens`` / ``max_completion_tokens``) is lowered until the hold fits in the credits that are
available. A caller that sets no limit gets the model's maximum output; a hostile limit is clamped,
never trusted. Holds are rounded up to the millionth, a call's credits half up, so a call's credits
never exceed its hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from cockpit.providers.models import OUTPUT_LIMIT_FIELDS

MICRO = Decimal("0.000001")
MILLION = Decimal(1_000_000)
# When the catalogue knows neither the model's output maximum nor its context window.
DEFAULT_MAX_OUTPUT = 4096
# Tokens per message for roles and separators, and an allowance per image (the largest any
# current model charges for one image).
MESSAGE_OVERHEAD = 8
IMAGE_TOKENS = 6_000


@dataclass(frozen=True)
class HoldPlan:
    credits: Decimal  # to hold before the call
    max_output_tokens: int  # the output limit to send upstream
    input_tokens: int  # the upper bound of input tokens the hold assumes


@dataclass(frozen=True)
class Refusal:
    needed: Decimal  # the least a call with one output token would hold
    available: Decimal


def _text_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, list):
        return sum(_part_bytes(part) for part in value)
    if isinstance(value, dict):
        return _part_bytes(value)
    return 0


def _part_bytes(part: Any) -> int:
    if isinstance(part, str):
        return len(part.encode("utf-8"))
    if not isinstance(part, dict):
        return 0
    if part.get("type") in ("image_url", "image", "input_image"):
        return IMAGE_TOKENS
    total = 0
    for key, value in part.items():
        if key != "type" and isinstance(value, str):
            total += len(value.encode("utf-8"))
        elif isinstance(value, list | dict):
            total += _text_bytes(value)
    return total


def input_token_bound(body: dict[str, Any], *, operation: str) -> int:
    """An upper bound of the request's input tokens without tokenizing: a token of text is at
    least one byte, plus a per-message allowance and an allowance per image."""
    if operation == "embedding":
        value = body.get("input")
        if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
            return len(value)  # already token ids
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            return sum(len(v) for v in value)
        return _text_bytes(value) + 1
    total = 0
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        total += MESSAGE_OVERHEAD + _text_bytes(message)
    for key in ("tools", "functions", "response_format"):
        if key in body:
            total += len(str(body[key]).encode("utf-8"))
    return total + MESSAGE_OVERHEAD


# Body fields that multiply the output: ``n`` choices, and ``best_of`` candidates (generated and
# billed, of which ``n`` are returned) on upstreams that support it.
CHOICE_FIELDS = ("n", "best_of")
MAX_CHOICES = 128


def asked_output(body: dict[str, Any]) -> int | None:
    """The caller's output limit, if it set one: the smallest of the limits it sent (an upstream
    reads one of them, and each is clamped to the hold's limit anyway)."""
    asked = [
        value
        for key in OUTPUT_LIMIT_FIELDS
        if isinstance(value := body.get(key), int) and not isinstance(value, bool) and value > 0
    ]
    return min(asked) if asked else None


def output_choices(body: dict[str, Any]) -> int:
    """How many outputs the call can generate (and be billed for): the largest of ``n`` and
    ``best_of``, 1 when neither is set. The gateway has refused values outside 1..MAX_CHOICES."""
    count = 1
    for key in CHOICE_FIELDS:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > count:
            count = value
    return count


def plan_hold(
    *,
    input_tokens: int,
    asked_max_output: int | None,
    model_max_output: int | None,
    context_window: int | None,
    input_price: Decimal,
    output_price: Decimal,
    cached_price: Decimal,
    factor: Decimal,
    available: Decimal,
    choices: int = 1,
) -> HoldPlan | Refusal:
    """The hold and output limit of a call with at most ``input_tokens`` input tokens, or a refusal
    when ``available`` credits cannot pay for its input and one output token per choice. Prices are
    USD per million tokens; ``factor`` is credits per USD. The output limit is per choice: a call
    with ``choices`` outputs (``n``, ``best_of``) holds ``choices`` times its output."""
    if context_window:
        input_tokens = min(input_tokens, context_window)
    # Cached tokens are cheaper as a rule; if a catalogue says otherwise, hold at the higher price.
    input_rate = max(input_price, cached_price) * factor / MILLION  # credits per input token
    # Credits per token of the output limit: every choice can produce that many tokens.
    output_rate = output_price * factor / MILLION * max(choices, 1)
    input_credits = input_tokens * input_rate
    limit = asked_max_output or model_max_output or DEFAULT_MAX_OUTPUT
    if model_max_output:
        limit = min(limit, model_max_output)
    if context_window:
        limit = max(1, min(limit, context_window - input_tokens if context_window > input_tokens else 1))
    if output_rate > 0:
        affordable = (available - input_credits) / output_rate
        if affordable < 1:
            needed = _up(input_credits + output_rate)
            return Refusal(needed=needed, available=available)
        limit = min(limit, int(affordable.to_integral_value(rounding=ROUND_FLOOR)))
    hold = _up(input_credits + limit * output_rate)
    if hold > available and output_rate == 0:
        return Refusal(needed=hold, available=available)
    if hold > available:
        # Rounding up the hold can cross the line by a millionth: one token less then fits.
        limit -= max(1, math.ceil((hold - available) / output_rate))
        if limit < 1:
            return Refusal(needed=_up(input_credits + output_rate), available=available)
        hold = _up(input_credits + limit * output_rate)
        if hold > available:
            return Refusal(needed=hold, available=available)
    return HoldPlan(credits=hold, max_output_tokens=limit, input_tokens=input_tokens)


def _up(value: Decimal) -> Decimal:
    return value.quantize(MICRO, rounding=ROUND_CEILING)
