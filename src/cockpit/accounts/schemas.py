from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from cockpit.kit.schemas import InputSchema, OutputSchema


class AccountOut(OutputSchema):
    id: uuid.UUID
    name: str
    timezone: str
    created_at: datetime


class AccountUpdate(InputSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
