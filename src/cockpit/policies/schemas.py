from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from cockpit.kit.pagination import Page, PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.policies.engine import Defaults, Rule
from cockpit.policies.models import Effect, ResourceType, Scope
from cockpit.policies.service import EffectiveRow, PolicyRow


class PolicyCreate(InputSchema):
    scope: Scope
    scope_id: uuid.UUID | None = None  # the group or user (omitted for the account)
    resource_type: ResourceType
    resource: str = Field(min_length=1, max_length=200, description="A model's id or name, an agent's or "
                          "integration's slug or id (stored as its slug), a feature key, or '*' for all of "
                          "the kind")  # fmt: skip
    effect: Effect
    note: str = Field(default="", max_length=500)


class PolicyOut(OutputSchema):
    id: uuid.UUID
    scope: Scope
    scope_id: uuid.UUID
    applies_to: str  # "Everyone", "Group Engineering" or a user's e-mail
    resource_type: ResourceType
    resource: str
    resource_name: str
    effect: Effect
    note: str
    created_by: uuid.UUID | None
    created_by_label: str
    created_at: datetime

    @classmethod
    def of(cls, row: PolicyRow) -> PolicyOut:
        p = row.policy
        return cls(
            id=p.id, scope=p.scope, scope_id=p.scope_id, applies_to=row.scope_label,
            resource_type=p.resource_type, resource=p.resource, resource_name=row.resource_label,
            effect=p.effect, note=p.note, created_by=p.created_by, created_by_label=p.created_by_label,
            created_at=p.created_at,
        )  # fmt: skip


class PolicyList(OutputSchema):
    items: list[PolicyOut]
    meta: PageMeta

    @classmethod
    def of(cls, page: Page[PolicyRow]) -> PolicyList:
        return cls(items=[PolicyOut.of(r) for r in page.items], meta=PageMeta.of(page))


class PolicyDeleted(OutputSchema):
    id: uuid.UUID
    deleted: bool = True


class DefaultsOut(OutputSchema):
    model: Effect
    agent: Effect
    integration: Effect
    feature: Effect
    admins_exempt: bool

    @classmethod
    def of(cls, defaults: Defaults) -> DefaultsOut:
        return cls(
            model=defaults.model, agent=defaults.agent, integration=defaults.integration,
            feature=defaults.feature, admins_exempt=defaults.admins_exempt,
        )  # fmt: skip


class DefaultsChange(InputSchema):
    model: Effect | None = None
    agent: Effect | None = None
    integration: Effect | None = None
    feature: Effect | None = None
    admins_exempt: bool | None = None


class DecidingRule(OutputSchema):
    id: uuid.UUID
    scope: Scope
    scope_id: uuid.UUID
    applies_to: str
    resource: str
    effect: Effect
    note: str
    created_by_label: str
    created_at: datetime | None

    @classmethod
    def of(cls, rule: Rule, applies_to: str) -> DecidingRule:
        return cls(
            id=rule.id, scope=rule.scope, scope_id=rule.scope_id, applies_to=applies_to,
            resource=rule.resource, effect=rule.effect, note=rule.note,
            created_by_label=rule.created_by_label, created_at=rule.created_at,
        )  # fmt: skip


class EffectiveOut(OutputSchema):
    resource_type: ResourceType
    resource: str
    name: str
    allowed: bool
    decided_by: Literal["rule", "default", "exempt"]
    level: Scope | None  # of the deciding rule
    rule: DecidingRule | None
    explanation: str

    @classmethod
    def of(cls, row: EffectiveRow) -> EffectiveOut:
        rule = row.decision.rule
        return cls(
            resource_type=row.resource_type, resource=row.resource, name=row.label,
            allowed=row.decision.allowed, decided_by=row.decision.basis,
            level=rule.scope if rule else None, rule=DecidingRule.of(rule, row.scope_label) if rule else None,
            explanation=row.explanation,
        )  # fmt: skip


class EffectiveAccessOut(OutputSchema):
    user_id: uuid.UUID
    email: str
    items: list[EffectiveOut]
