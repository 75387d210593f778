from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from cockpit.kit.schemas import InputSchema, OutputSchema

MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650
# Conversations: deleted after this many days without activity (0: kept until their owner deletes them).
MAX_CONVERSATION_RETENTION_DAYS = 3650


class AccountOut(OutputSchema):
    id: uuid.UUID
    name: str
    timezone: str
    locale: str  # how the console writes dates: en-GB, en-US, de-DE, fr-FR or iso
    created_at: datetime
    # Gateway: whether each call's input and output are kept, and for how many days.
    store_request_content: bool
    content_retention_days: int
    # Prepended to every agent's instructions ("" when none).
    custom_instructions: str
    # Conversations: administrators may review them (each review audited); deleted after this many
    # days without activity (0: never).
    conversation_review_enabled: bool
    conversation_retention_days: int
    # Scheduled cost reports: "off", "weekly" or "monthly", as "pdf", "xlsx" or "csv".
    report_cadence: str
    report_format: str


class AccountUpdate(InputSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    locale: str | None = Field(default=None, min_length=1, max_length=16)
    # Strict: "30", 30.5 or true are refused rather than coerced into a retention setting.
    store_request_content: bool | None = Field(default=None, strict=True)
    content_retention_days: int | None = Field(
        default=None, ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS, strict=True
    )
    custom_instructions: str | None = Field(default=None, max_length=20_000)
    conversation_review_enabled: bool | None = Field(default=None, strict=True)
    conversation_retention_days: int | None = Field(
        default=None, ge=0, le=MAX_CONVERSATION_RETENTION_DAYS, strict=True
    )
    report_cadence: Literal["off", "weekly", "monthly"] | None = None
    report_format: Literal["pdf", "xlsx", "csv"] | None = None
