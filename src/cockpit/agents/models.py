"""The agents catalogue: an assistant's instructions, model, tools and who may run it."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, Float, ForeignKey, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, TimestampMixin


class AgentStatus(StrEnum):
    active = "active"
    inactive = "inactive"  # no new runs; its conversations stay readable


class Visibility(StrEnum):
    account = "account"  # everyone in the account (within the access policies)
    groups = "groups"  # the members of some groups
    project = "project"  # the members of its project


def _enum(cls: type[StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=20, validate_strings=True)


class Agent(IdMixin, TimestampMixin, Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("account_id", "slug"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # A project's agent (its admins and members manage it); NULL: an account-wide agent.
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    # What callers send as ``model: "agent:<slug>"``; unique in the account.
    slug: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(1000), default="")
    icon: Mapped[str] = mapped_column(String(40), default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
    model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    temperature: Mapped[float | None] = mapped_column(Float)  # a sampling knob, not money
    max_output_tokens: Mapped[int | None]
    # The integrations it may call, and per integration which tools:
    # {"<integration id>": {"all": bool, "names": [...], "confirm": [...]}}.
    integration_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    tools: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    starters: Mapped[list[str]] = mapped_column(JSON, default=list)
    visibility: Mapped[Visibility] = mapped_column(_enum(Visibility), default=Visibility.account)
    group_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_steps: Mapped[int] = mapped_column(default=5, server_default="5")
    status: Mapped[AgentStatus] = mapped_column(_enum(AgentStatus), default=AgentStatus.active)
    # The account's default agent (project_id NULL) or its project's default.
    is_default: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
