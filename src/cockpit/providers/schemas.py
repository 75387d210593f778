from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr

from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.providers.models import Capability, Model, Provider, ProviderKind

# USD per million tokens: a string or a number, at most 6 decimal places, stored exactly.
Price = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False)]
PricesSource = Literal["genai-prices", "manual", "unknown"]


def price_text(value: Decimal) -> str:
    """Prices leave as strings with 6 decimals (the column's scale), the same on every backend."""
    return f"{Decimal(value).quantize(Decimal('0.000001')):f}"


class ProviderOut(OutputSchema):
    id: uuid.UUID
    name: str
    kind: ProviderKind
    base_url: str | None
    has_api_key: bool
    api_key_last4: str | None
    settings: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, provider: Provider) -> ProviderOut:
        return cls(
            id=provider.id,
            name=provider.name,
            kind=provider.kind,
            base_url=provider.base_url,
            has_api_key=provider.api_key_encrypted is not None,
            api_key_last4=provider.api_key_last4,
            settings=provider.settings or {},
            created_at=provider.created_at,
        )


class ProviderList(OutputSchema):
    items: list[ProviderOut]
    meta: PageMeta


class ProviderCreate(InputSchema):
    name: str = Field(min_length=1, max_length=100)
    kind: ProviderKind
    base_url: str | None = Field(default=None, max_length=500)
    api_key: SecretStr | None = Field(default=None, max_length=1000)
    settings: dict[str, Any] = Field(default_factory=dict)


class ProviderChange(InputSchema):
    """Fields left out are unchanged; ``api_key: null`` removes the stored key."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    base_url: str | None = Field(default=None, max_length=500)
    api_key: SecretStr | None = Field(default=None, max_length=1000)
    settings: dict[str, Any] | None = None


class ProviderDeleted(OutputSchema):
    id: uuid.UUID
    models_deleted: int


class ConnectionTest(OutputSchema):
    ok: bool
    status: int | None
    message: str


class ModelOut(OutputSchema):
    id: uuid.UUID
    name: str
    provider_id: uuid.UUID
    upstream_model: str
    input_price_per_million: str
    output_price_per_million: str
    cached_input_price_per_million: str
    prices_source: PricesSource
    context_window: int | None
    max_output_tokens: int | None
    capabilities: list[Capability]
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, model: Model) -> ModelOut:
        source: PricesSource = "manual"
        if model.prices_source in ("genai-prices", "unknown"):
            source = "genai-prices" if model.prices_source == "genai-prices" else "unknown"
        return cls(
            id=model.id,
            name=model.name,
            provider_id=model.provider_id,
            upstream_model=model.upstream_model,
            input_price_per_million=price_text(model.input_price_per_million),
            output_price_per_million=price_text(model.output_price_per_million),
            cached_input_price_per_million=price_text(model.cached_input_price_per_million),
            prices_source=source,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            capabilities=[Capability(c) for c in model.capabilities or []],
            enabled=model.enabled,
            created_at=model.created_at,
        )


class ModelList(OutputSchema):
    items: list[ModelOut]
    meta: PageMeta


class ModelCreate(InputSchema):
    """Prices left out are prefilled from genai-prices when it knows ``upstream_model``."""

    name: str = Field(min_length=1, max_length=200)
    provider_id: uuid.UUID
    upstream_model: str = Field(min_length=1, max_length=200)
    input_price_per_million: Price | None = None
    output_price_per_million: Price | None = None
    cached_input_price_per_million: Price | None = None
    context_window: int | None = Field(default=None, ge=1, le=100_000_000)
    max_output_tokens: int | None = Field(default=None, ge=1, le=100_000_000)
    capabilities: list[Capability] = Field(default_factory=lambda: [Capability.chat])
    enabled: bool = True


class ModelChange(InputSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    provider_id: uuid.UUID | None = None
    upstream_model: str | None = Field(default=None, min_length=1, max_length=200)
    input_price_per_million: Price | None = None
    output_price_per_million: Price | None = None
    cached_input_price_per_million: Price | None = None
    context_window: int | None = Field(default=None, ge=1, le=100_000_000)
    max_output_tokens: int | None = Field(default=None, ge=1, le=100_000_000)
    capabilities: list[Capability] | None = None
    enabled: bool | None = None


class ModelDeleted(OutputSchema):
    id: uuid.UUID
