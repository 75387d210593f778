"""An export asked for by someone: what it covers, how far it got, and its file once made."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, TimestampMixin


class ExportFormat(StrEnum):
    pdf = "pdf"
    xlsx = "xlsx"
    csv = "csv"


class ExportView(StrEnum):
    cost = "cost"  # the cost tracking view: indicators, breakdowns, timelines, top users, pivot
    calls = "calls"  # the raw calls of the filtered view, one row each


class ExportStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class Export(IdMixin, TimestampMixin, Base):
    __tablename__ = "exports"
    __table_args__ = (Index("ix_exports_account_created", "account_id", "created_at"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    requested_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    format: Mapped[str] = mapped_column(String(10))
    view: Mapped[str] = mapped_column(String(20))
    # The filters as given (ISO instants and ids as text) and whose calls the requester could see.
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    scope_project_id: Mapped[uuid.UUID | None]
    scope_user_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(20), default=ExportStatus.queued.value)
    progress: Mapped[int] = mapped_column(default=0)  # percent
    rows: Mapped[int] = mapped_column(default=0)
    file_name: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    finished_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
