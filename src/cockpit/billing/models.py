"""The tables of billing (issue 17)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin


class BillingAccount(IdMixin, Base):
    """An account's Stripe customer and its plan; limits as the last applied subscription set them."""

    __tablename__ = "billing_accounts"

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    plan: Mapped[str] = mapped_column(String(100), default="")
    seat_limit: Mapped[int | None]
    included_credits: Mapped[int | None]
    subscription_status: Mapped[str] = mapped_column(String(40), default="")
    # Stripe's ``created`` of the last subscription event applied: older ones are ignored.
    subscription_event_created: Mapped[int] = mapped_column(BigInteger, default=0)
    # The account's own limits (seats per product, credits per cycle) from before a plan set them:
    # given back when the subscription ends. None while no plan's limits are applied.
    limits_before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    updated_at: Mapped[datetime]


class BillingEvent(IdMixin, Base):
    """A Stripe event processed once: the unique event id makes a replay change nothing."""

    __tablename__ = "billing_events"

    stripe_event_id: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    created: Mapped[int] = mapped_column(BigInteger)  # Stripe's timestamp (seconds)
    processed_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(40), default="applied")
