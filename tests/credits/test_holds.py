"""Holds: a call never costs more than it held, and its output limit is clamped to what it can pay."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest

from cockpit.credits.holds import (
    HoldPlan,
    Refusal,
    asked_output,
    input_token_bound,
    output_choices,
    plan_hold,
)
from cockpit.gateway import tokencount

# gpt-4o-mini-like prices (USD per million tokens) at 1,000 credits per USD:
# 0.00015 credits per input token, 0.0006 per output token.
PRICES = {
    "input_price": Decimal("0.15"),
    "output_price": Decimal("0.60"),
    "cached_price": Decimal("0.075"),
    "factor": Decimal(1000),
}


def plan(**overrides: object) -> HoldPlan | Refusal:
    values: dict[str, object] = {
        "input_tokens": 1000,
        "asked_max_output": None,
        "model_max_output": 16_384,
        "context_window": 128_000,
        "available": Decimal(1000),
        **PRICES,
    }
    values.update(overrides)
    return plan_hold(**values)  # type: ignore[arg-type]


def test_a_caller_without_a_limit_gets_the_models_maximum_output() -> None:
    result = plan()
    assert result == HoldPlan(credits=Decimal("9.9804"), max_output_tokens=16_384, input_tokens=1000)
    # 1000 x 0.00015 + 16384 x 0.0006 = 0.15 + 9.8304


def test_the_callers_limit_is_used_when_lower() -> None:
    result = plan(asked_max_output=100)
    assert result == HoldPlan(credits=Decimal("0.21"), max_output_tokens=100, input_tokens=1000)


def test_a_hostile_limit_is_clamped_to_the_model_and_to_the_credits() -> None:
    assert plan(asked_max_output=10**12) == plan()  # the model's maximum
    result = plan(asked_max_output=10**12, available=Decimal("1.35"))
    # (1.35 - 0.15) / 0.0006 = 2000 output tokens are affordable, exactly.
    assert result == HoldPlan(credits=Decimal("1.35"), max_output_tokens=2000, input_tokens=1000)


def test_the_hold_never_exceeds_the_available_credits() -> None:
    for available in ("0.15061", "0.2", "1.0000005", "3.3333333", "9.98"):
        result = plan(available=Decimal(available))
        assert isinstance(result, HoldPlan), available
        assert result.credits <= Decimal(available)
        assert result.max_output_tokens >= 1


def test_refused_when_the_input_and_one_output_token_cannot_be_paid() -> None:
    result = plan(available=Decimal("0.15"))
    assert result == Refusal(needed=Decimal("0.1506"), available=Decimal("0.15"))


def test_a_call_never_costs_more_than_its_hold() -> None:
    """Whatever the call uses within its limits, its credits (cost x factor, half up) fit its hold."""
    result = plan(asked_max_output=333, available=Decimal(5))
    assert isinstance(result, HoldPlan)
    for input_tokens, cached, output_tokens in (
        (1000, 0, 333),
        (1000, 1000, 333),
        (10, 0, 1),
        (999, 500, 332),
    ):
        usd = (
            (input_tokens - cached) * PRICES["input_price"]
            + cached * PRICES["cached_price"]
            + output_tokens * PRICES["output_price"]
        ) / Decimal(1_000_000)
        credits = (usd * PRICES["factor"]).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
        assert credits <= result.credits


def test_the_context_window_bounds_input_and_output() -> None:
    result = plan(input_tokens=200_000, context_window=8192, model_max_output=None)
    assert isinstance(result, HoldPlan)
    assert result.input_tokens == 8192
    assert result.max_output_tokens == 1
    # Without a model maximum: 4,096 output tokens by default, a caller may ask up to the room left.
    result = plan(input_tokens=1000, context_window=8192, model_max_output=None)
    assert isinstance(result, HoldPlan)
    assert result.max_output_tokens == 4096
    result = plan(input_tokens=1000, context_window=8192, model_max_output=None, asked_max_output=10_000)
    assert isinstance(result, HoldPlan)
    assert result.max_output_tokens == 7192


def test_free_output_and_unknown_limits() -> None:
    result = plan(output_price=Decimal(0), model_max_output=None, context_window=None)
    assert result == HoldPlan(credits=Decimal("0.15"), max_output_tokens=4096, input_tokens=1000)
    assert plan(output_price=Decimal(0), available=Decimal("0.1")) == Refusal(
        needed=Decimal("0.15"), available=Decimal("0.1")
    )


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world!",
        "naïve café — déjà vu",
        "日本語のテキスト",
        "<|endoftext|> tokens",
        "a" * 5000,
        "🙂" * 40,
    ],
)
def test_the_input_bound_is_never_below_the_real_token_count(text: str) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
    }
    assert input_token_bound(body, operation="chat") >= tokencount.count_input(
        body, model="gpt-4o", operation="chat"
    )
    assert input_token_bound({"input": [text, text]}, operation="embedding") >= 2 * tokencount.count_text(
        text, model="text-embedding-3-small"
    )


def test_images_and_token_id_inputs() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}]}
    assert input_token_bound(body, operation="chat") >= 6_000
    assert input_token_bound({"input": [1, 2, 3]}, operation="embedding") == 3
    assert input_token_bound({"input": [[1, 2], [3]]}, operation="embedding") == 3


def test_asked_output() -> None:
    assert asked_output({"max_tokens": 50}) == 50
    # Both sent: each is clamped, and an upstream may read either, so the smaller one counts.
    assert asked_output({"max_tokens": 50, "max_completion_tokens": 70}) == 50
    assert asked_output({"max_new_tokens": 20, "max_tokens": 50}) == 20
    assert asked_output({"max_tokens": True}) is None
    assert asked_output({"max_tokens": 0}) is None
    assert asked_output({}) is None


def test_output_choices_multiply_the_hold() -> None:
    assert output_choices({}) == 1
    assert output_choices({"n": 10}) == 10
    assert output_choices({"n": 2, "best_of": 5}) == 5
    assert output_choices({"n": True}) == 1
    common = {
        "input_tokens": 10, "asked_max_output": 100, "model_max_output": None, "context_window": None,
        "input_price": Decimal(1), "output_price": Decimal(10), "cached_price": Decimal(0),
        "factor": Decimal(100), "available": Decimal(1000),
    }  # fmt: skip
    one, ten = plan_hold(**common), plan_hold(**common, choices=10)
    assert isinstance(one, HoldPlan)
    assert isinstance(ten, HoldPlan)
    assert ten.max_output_tokens == one.max_output_tokens == 100
    assert ten.credits - one.credits == 9 * 100 * Decimal(10) * 100 / 1_000_000
    # With little available, the limit per choice shrinks so that all the choices fit.
    tight = plan_hold(**{**common, "available": Decimal("0.101")}, choices=10)
    assert isinstance(tight, HoldPlan)
    assert tight.credits <= Decimal("0.101")
    assert tight.max_output_tokens == 10
