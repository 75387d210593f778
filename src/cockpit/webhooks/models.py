"""The tables of webhooks: endpoints, their deliveries (one per event and endpoint) and each attempt
at a delivery (the delivery log)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, TimestampMixin
from cockpit.kit.time import utcnow

MAX_URL = 2000
MAX_DESCRIPTION = 500
MAX_RESPONSE_EXCERPT = 2048  # bytes of a receiver's answer kept in the log
MAX_ERROR = 1000


class DeliveryStatus(StrEnum):
    pending = "pending"  # not tried yet
    failed = "failed"  # the last attempt failed; another one is scheduled (next_attempt_at)
    succeeded = "succeeded"  # a 2xx answer
    dead = "dead"  # given up: attempts used up, endpoint disabled or removed


class WebhookEndpoint(IdMixin, TimestampMixin, Base):
    """Where an account's events are POSTed. The signing secret (``whsec_…``) is stored encrypted
    (Fernet, ``kit.secrets``) and shown only when it is made (creation, rotation)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_account_created", "account_id", "created_at"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(MAX_URL))
    description: Mapped[str] = mapped_column(String(MAX_DESCRIPTION), default="")
    # Event names of events.catalog.EVENTS, or ["*"] for every event.
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # After a rotation the previous secret signs too (a second signature) until this time, so that
    # receivers can switch over without losing messages.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column()
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    # Failed attempts since the last success (any delivery of this endpoint); reset by a success
    # and by enabling the endpoint again.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_delivery_at: Mapped[datetime | None] = mapped_column()
    last_delivery_status: Mapped[str | None] = mapped_column(String(20))


class WebhookDelivery(IdMixin, TimestampMixin, Base):
    """One message to one endpoint: an event (or a test). Its ``message_id`` is the ``webhook-id``
    header of every attempt, replays included: the receiver's idempotency key."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # A fan-out that runs again creates no second delivery of an event to an endpoint.
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("platform_events.id", ondelete="SET NULL"))
    event_name: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(MAX_ERROR))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(IdMixin, Base):
    """One POST of a delivery: what was sent (headers; never the secret) and what came back."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_number"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1 for the first attempt
    trigger: Mapped[str] = mapped_column(String(20), default="scheduled")  # scheduled, replay, test
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    url: Mapped[str] = mapped_column(String(MAX_URL))
    request_headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status_code: Mapped[int | None] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    response_body: Mapped[str | None] = mapped_column(Text)  # at most MAX_RESPONSE_EXCERPT bytes
    error: Mapped[str | None] = mapped_column(String(MAX_ERROR))
