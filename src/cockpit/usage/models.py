"""One row per gateway call: who, what, how it went, what it cost. Written by the recorder."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, MicroDecimal, PicoDecimal


class CallStatus(StrEnum):
    success = "success"
    error = "error"  # refused by Cockpit or failed upstream
    client_disconnected = "client_disconnected"  # the caller went away before the answer ended


class Operation(StrEnum):
    chat = "chat"
    embedding = "embedding"
    tool_call = "tool_call"  # an agent's call of an integration's tool


class UsageRecord(Base):
    __tablename__ = "usage_requests"
    __table_args__ = (
        Index("ix_usage_requests_account_created", "account_id", "created_at"),
        Index("ix_usage_requests_account_user_created", "account_id", "user_id", "created_at"),
        Index("ix_usage_requests_account_project_created", "account_id", "project_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # When the call arrived.
    created_at: Mapped[datetime]
    # Attribution as it was at the time of the call (no foreign keys: history outlives its objects).
    user_id: Mapped[uuid.UUID | None]
    group_id: Mapped[uuid.UUID | None]
    project_id: Mapped[uuid.UUID | None]
    agent_id: Mapped[str | None] = mapped_column(String(100))
    # A tool call's integration and tool (operation ``tool_call``).
    integration_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    tool: Mapped[str | None] = mapped_column(String(200), default=None)
    api_token_id: Mapped[uuid.UUID | None]
    model_id: Mapped[uuid.UUID | None]
    model: Mapped[str] = mapped_column(String(200))
    provider_id: Mapped[uuid.UUID | None]
    provider_kind: Mapped[str | None] = mapped_column(String(20))
    operation: Mapped[str] = mapped_column(String(20))
    stream: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(30))
    error_type: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(String(500))
    http_status: Mapped[int]
    latency_ms: Mapped[int]
    ttft_ms: Mapped[int | None]
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    cached_tokens: Mapped[int] = mapped_column(default=0)
    # True when the upstream reported no usage and the tokens were counted by Cockpit.
    tokens_estimated: Mapped[bool] = mapped_column(default=False)
    cost_usd: Mapped[Decimal] = mapped_column(PicoDecimal(), default=Decimal(0))
    # cost_usd x the account's credit factor at the time, rounded half up to the millionth
    # (0 when the account does not track credits); debited from the ledger with the same amount.
    credits: Mapped[Decimal] = mapped_column(MicroDecimal(), default=Decimal(0), server_default="0")
    # The credit lease the call's hold came from (credits enforced): its credits move from that
    # lease's held credits to used when the record is written.
    credit_lease_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    upstream_id: Mapped[str | None] = mapped_column(String(200))
    # Stored only when the account enables it, and cleared after its retention period.
    request_content: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    response_content: Mapped[str | None] = mapped_column(Text)
    content_expires_at: Mapped[datetime | None]
