"""The usage statement as JSON (``GET /api/v1/usage/statement``)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from cockpit.usage.statement import UsageLine, UsageStatement


class UsageLineOut(BaseModel):
    day: date
    kind: str  # "usage", or the ledger entry's kind (allocation_set, extra_granted, ...)
    description: str
    model: str | None
    integration: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    unit: str | None  # "1M tokens" or "call"
    unit_price_credits: Decimal | None
    unit_price_usd: Decimal | None
    credits: Decimal
    usd: Decimal | None
    balance: Decimal
    at: datetime | None = Field(default=None, description="Lines of one call (lines=call): when it was made")
    request_id: uuid.UUID | None = Field(default=None, description="Lines of one call: the recorded call")

    @classmethod
    def of(cls, line: UsageLine) -> UsageLineOut:
        return cls(**line.__dict__)


class UsageStatementOut(BaseModel):
    scope: str
    user_id: uuid.UUID | None
    group_id: uuid.UUID | None
    project_id: uuid.UUID | None
    start: datetime
    end: datetime
    zone: str = Field(description="The time zone of the lines' days: the organisation's")
    opening_balance: Decimal
    closing_balance: Decimal
    credits_in: Decimal
    credits_out: Decimal
    calls: int
    input_tokens: int
    output_tokens: int
    usd: Decimal
    lines: list[UsageLineOut]

    @classmethod
    def of(cls, statement: UsageStatement) -> UsageStatementOut:
        fields = {k: v for k, v in statement.__dict__.items() if k != "lines"}
        return cls(**fields, lines=[UsageLineOut.of(line) for line in statement.lines])
