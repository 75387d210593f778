from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import OutputSchema


class AuditEntryOut(OutputSchema):
    id: uuid.UUID
    seq: int
    created_at: datetime
    actor_id: uuid.UUID | None
    actor_label: str
    actor_kind: str
    action: str
    target_type: str | None
    target_id: str | None
    target_label: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ip: str | None
    user_agent: str | None
    prev_hash: str
    hash: str


class AuditPage(OutputSchema):
    items: list[AuditEntryOut]
    meta: PageMeta


class ChainStatus(OutputSchema):
    ok: bool
    entries: int
    head: str
    problem: str | None
