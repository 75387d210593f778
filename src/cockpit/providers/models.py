from __future__ import annotations

import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, MicroDecimal, TimestampMixin

# Every body field an upstream may read as the output-token limit of one choice. The gateway clamps
# each of them that a caller sends (an upstream that reads another one than Cockpit expects must not
# be able to spend more than was held); a provider's ``output_limit_param`` setting names one of them.
OUTPUT_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens", "max_new_tokens")


class ProviderKind(StrEnum):
    openai = "openai"  # any OpenAI-compatible endpoint
    anthropic = "anthropic"  # the native Messages API
    simulated = "simulated"  # built in, answers offline


class Capability(StrEnum):
    chat = "chat"
    embeddings = "embeddings"
    vision = "vision"
    tools = "tools"


# USD per million tokens, exact to the millionth of a dollar on every backend.
PRICE = MicroDecimal()


class Provider(IdMixin, TimestampMixin, Base):
    """An upstream LLM service and how to reach it. The API key is stored encrypted (Fernet)."""

    __tablename__ = "providers"
    __table_args__ = (UniqueConstraint("account_id", "name_key"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # Lower-cased name: "OpenAI" and "openai" are the same provider.
    name_key: Mapped[str] = mapped_column(String(100))
    kind: Mapped[ProviderKind] = mapped_column(
        Enum(ProviderKind, native_enum=False, length=20, validate_strings=True)
    )
    base_url: Mapped[str | None] = mapped_column(String(500))
    api_key_encrypted: Mapped[str | None] = mapped_column(String(2000))
    api_key_last4: Mapped[str | None] = mapped_column(String(4))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Model(IdMixin, TimestampMixin, Base):
    """A catalogue entry: the public name callers send as ``model``, routed to a provider."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    upstream_model: Mapped[str] = mapped_column(String(200))
    # USD per million tokens, exact.
    input_price_per_million: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    output_price_per_million: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    cached_input_price_per_million: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    prices_source: Mapped[str] = mapped_column(String(20), default="manual")
    context_window: Mapped[int | None]
    max_output_tokens: Mapped[int | None]
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
