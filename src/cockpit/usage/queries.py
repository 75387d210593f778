"""The shape of a search of the request log: its filters and its rows (``repository`` runs it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from cockpit.usage.models import CallStatus, UsageRecord


@dataclass(frozen=True)
class RequestFilters:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    model: str | None = None
    user_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    agent_id: str | None = None  # "": the calls made without an agent (direct API)
    api_token_id: uuid.UUID | None = None
    status: CallStatus | None = None
    group_id: uuid.UUID | None = None
    operation: str | None = None


@dataclass(frozen=True)
class RequestRow:
    """A usage record with the names that are joined in for display (None once the object is gone)."""

    record: UsageRecord
    user_email: str | None
    project_name: str | None
