"""Default prices from the ``genai-prices`` package (USD per million tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cockpit.providers.models import ProviderKind

MILLION = 1_000_000


@dataclass(frozen=True)
class KnownPrices:
    input: Decimal
    output: Decimal
    cached_input: Decimal


def lookup_prices(upstream_model: str, kind: ProviderKind, base_url: str | None) -> KnownPrices | None:
    """The list prices genai-prices knows for this model, or None when it does not know it."""
    if kind is ProviderKind.simulated or not upstream_model.strip():
        return None
    from genai_prices import Usage, calc_price

    def price(usage: Usage) -> tuple[Decimal, Decimal]:
        if kind is ProviderKind.anthropic:
            result = calc_price(usage, upstream_model, provider_id="anthropic")
        else:
            try:
                result = calc_price(usage, upstream_model, provider_api_url=base_url or None)
            except LookupError:  # a compatible endpoint genai-prices does not know: match by model
                result = calc_price(usage, upstream_model)
        return result.input_price, result.output_price

    try:
        input_price, _ = price(Usage(input_tokens=MILLION))
        _, output_price = price(Usage(output_tokens=MILLION))
        # genai-prices counts cache reads inside input_tokens.
        cached_price, _ = price(Usage(input_tokens=MILLION, cache_read_tokens=MILLION))
    except (LookupError, ValueError, TypeError, ArithmeticError):
        return None
    return KnownPrices(Decimal(input_price), Decimal(output_price), Decimal(cached_price))
