"""Access policies: allow or deny rules for models, agents, integrations and platform features, set
for the whole account, a group or a user; and each account's defaults for when no rule applies."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, TimestampMixin
from cockpit.kit.time import utcnow


class Scope(StrEnum):
    account = "account"  # everyone in the account
    group = "group"  # the members of one group
    user = "user"  # one user


class ResourceType(StrEnum):
    model = "model"
    agent = "agent"
    integration = "integration"
    feature = "feature"


class Effect(StrEnum):
    allow = "allow"
    deny = "deny"


WILDCARD = "*"


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=20, validate_strings=True)


class AccessPolicy(IdMixin, TimestampMixin, Base):
    """One rule. ``scope_id`` is the group's or user's id, or the account's own id for the account
    level (never NULL, so that the unique constraint holds on every backend). ``resource`` is a
    model's id, an agent's or integration's identifier, a feature key, or ``*`` (all of the kind)."""

    __tablename__ = "access_policies"
    __table_args__ = (
        # The same rule twice is refused; an allow and a deny for the same thing may coexist (deny wins).
        UniqueConstraint(
            "account_id",
            "scope",
            "scope_id",
            "resource_type",
            "resource",
            "effect",
            name="uq_access_policies_rule",
        ),
        Index("ix_access_policies_account_scope", "account_id", "scope", "scope_id"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    scope: Mapped[Scope] = mapped_column(_enum(Scope, "policy_scope"))
    scope_id: Mapped[uuid.UUID]
    resource_type: Mapped[ResourceType] = mapped_column(_enum(ResourceType, "policy_resource_type"))
    resource: Mapped[str] = mapped_column(String(200))
    effect: Mapped[Effect] = mapped_column(_enum(Effect, "policy_effect"))
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_label: Mapped[str] = mapped_column(String(320), default="")


class PolicyDefaults(Base):
    """What applies when no rule does, per kind of resource; and whether owners and admins are
    exempt from the rules."""

    __tablename__ = "policy_defaults"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[Effect] = mapped_column(_enum(Effect, "policy_effect"), default=Effect.allow)
    agent: Mapped[Effect] = mapped_column(_enum(Effect, "policy_effect"), default=Effect.allow)
    integration: Mapped[Effect] = mapped_column(_enum(Effect, "policy_effect"), default=Effect.allow)
    feature: Mapped[Effect] = mapped_column(_enum(Effect, "policy_effect"), default=Effect.allow)
    admins_exempt: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
