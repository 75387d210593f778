"""The figures of a set of calls: sums that add up exactly, and the averages and rates derived from
them (Decimals, never floats)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
PICO = Decimal("0.000000000001")
HUNDREDTH = Decimal("0.01")
RATE = Decimal("0.000001")


def _ratio(numerator: Decimal | int, denominator: int, quantum: Decimal) -> Decimal | None:
    if denominator == 0:
        return None
    return (Decimal(numerator) / denominator).quantize(quantum, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Totals:
    requests: int = 0
    errors: int = 0
    successes: int = 0
    cost_usd: Decimal = ZERO
    credits: Decimal = ZERO
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    latency_ms: int = 0  # the sum over the calls
    ttft_ms: int = 0  # the sum over the streamed calls that had a first token
    ttft_calls: int = 0
    active_users: int = 0  # distinct people (only where the query counted them)

    def __add__(self, other: Totals) -> Totals:
        """Sums add up; distinct people cannot be added (the result keeps the larger count)."""
        return Totals(
            self.requests + other.requests, self.errors + other.errors, self.successes + other.successes,
            self.cost_usd + other.cost_usd, self.credits + other.credits,
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens, self.latency_ms + other.latency_ms,
            self.ttft_ms + other.ttft_ms, self.ttft_calls + other.ttft_calls,
            max(self.active_users, other.active_users),
        )  # fmt: skip

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def error_rate(self) -> Decimal | None:
        """Errors per request, as a fraction (0.0523 is 5.23 %)."""
        return _ratio(self.errors, self.requests, RATE)

    @property
    def avg_cost_per_request_usd(self) -> Decimal | None:
        return _ratio(self.cost_usd, self.requests, PICO)

    @property
    def avg_latency_ms(self) -> Decimal | None:
        return _ratio(self.latency_ms, self.requests, HUNDREDTH)

    @property
    def avg_ttft_ms(self) -> Decimal | None:
        return _ratio(self.ttft_ms, self.ttft_calls, HUNDREDTH)

    @property
    def avg_cost_per_user_usd(self) -> Decimal | None:
        return _ratio(self.cost_usd, self.active_users, PICO)

    @property
    def avg_requests_per_user(self) -> Decimal | None:
        return _ratio(self.requests, self.active_users, HUNDREDTH)

    @property
    def avg_tokens_per_request(self) -> Decimal | None:
        """Input and output tokens per call."""
        return _ratio(self.tokens, self.requests, HUNDREDTH)

    @property
    def avg_tokens_per_response(self) -> Decimal | None:
        """Output tokens per successful call."""
        return _ratio(self.output_tokens, self.successes, HUNDREDTH)


def share(part: Decimal | int, whole: Decimal | int) -> Decimal:
    """A part of a whole as a fraction to the millionth (0 when the whole is 0)."""
    if not whole:
        return ZERO
    return (Decimal(part) / Decimal(whole)).quantize(RATE, rounding=ROUND_HALF_UP)
