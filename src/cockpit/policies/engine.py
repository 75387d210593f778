"""How an access decision is made, in memory (no database): the resolution order in one place.

For a user, a kind of resource and a resource:

1. the most specific **level** that has a rule for it wins: the user's own rules, then their group's,
   then the account's;
2. within that level, a rule for the **specific resource** beats a wildcard (``*``) rule;
3. at the same level and specificity, **deny beats allow**;
4. with no rule at any level, the account's **default for that kind** applies (allow or deny);
5. owners and admins follow the rules like everyone else, unless the account's ``admins_exempt``
   setting says they are exempt (then they are allowed everything).

``PolicySet`` indexes an account's rules so that a decision is a handful of dictionary lookups,
whatever the number of rules (the gateway keeps one per account in its directory).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cockpit.policies.models import WILDCARD, Effect, ResourceType, Scope
from cockpit.users.models import UserRole

LEVELS = (Scope.user, Scope.group, Scope.account)


@dataclass(frozen=True, slots=True)
class Rule:
    id: uuid.UUID
    scope: Scope
    scope_id: uuid.UUID
    resource_type: ResourceType
    resource: str
    effect: Effect
    note: str = ""
    created_by_label: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Defaults:
    model: Effect = Effect.allow
    agent: Effect = Effect.allow
    integration: Effect = Effect.allow
    feature: Effect = Effect.allow
    admins_exempt: bool = False

    def of(self, kind: ResourceType) -> Effect:
        return Effect(getattr(self, kind.value))


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    resource_type: ResourceType
    resource: str
    rule: Rule | None  # the deciding rule; None: the default, or the admins' exemption
    exempt: bool = False  # allowed because owners and admins are exempt

    @property
    def basis(self) -> str:
        """``rule``, ``default`` or ``exempt``."""
        return "exempt" if self.exempt else "rule" if self.rule is not None else "default"

    def explain(
        self, resource_label: str | None = None, scope_label: str | None = None, *, for_page: bool = False
    ) -> str:
        """One sentence: what was decided and why, e.g. for a refused gateway call.

        ``for_page``: without the rule's id and date, for a page that shows who set the rule and
        when beside it (in the account's date format) and never prints a raw id."""
        what = f"{self.resource_type.value} '{resource_label or self.resource}'"
        verdict = "allowed" if self.allowed else "denied"
        if self.exempt:
            return f"Access to {what} is allowed: owners and admins are exempt from access policies."
        rule = self.rule
        if rule is None:
            return f"Access to {what} is {verdict} by the account's default for {self.resource_type.value}s."
        target = "all " + self.resource_type.value + "s" if rule.resource == WILDCARD else "it"
        verb = "allows" if rule.effect is Effect.allow else "denies"
        where = {
            Scope.user: "a user-level rule",
            Scope.group: "a group-level rule",
            Scope.account: "an account-level rule",
        }[rule.scope]
        if scope_label:
            where += f" ({scope_label})"
        who = f" set by {rule.created_by_label}" if rule.created_by_label else ""
        when = f" on {rule.created_at:%Y-%m-%d}" if rule.created_at is not None else ""
        if for_page:
            return f"Access to {what} is {verdict} by {where} that {verb} {target}{who}."
        return f"Access to {what} is {verdict} by {where} that {verb} {target}{who}{when} (rule {rule.id})."


@dataclass
class PolicySet:
    """An account's rules, indexed for decisions."""

    defaults: Defaults = field(default_factory=Defaults)
    # (level, scope id, kind) -> resource (or "*") -> the rule that decides there (deny over allow)
    _index: dict[tuple[Scope, uuid.UUID, ResourceType], dict[str, Rule]] = field(default_factory=dict)
    size: int = 0

    @classmethod
    def of(cls, rules: Iterable[Rule], defaults: Defaults | None = None) -> PolicySet:
        policies = cls(defaults or Defaults())
        for rule in rules:
            policies.add(rule)
        return policies

    def add(self, rule: Rule) -> None:
        bucket = self._index.setdefault((rule.scope, rule.scope_id, rule.resource_type), {})
        present = bucket.get(rule.resource)
        if present is None or (present.effect is Effect.allow and rule.effect is Effect.deny):
            bucket[rule.resource] = rule
        self.size += 1

    def decide(
        self,
        *,
        account_id: uuid.UUID,
        user_id: uuid.UUID,
        group_id: uuid.UUID | None,
        role: UserRole | None,
        resource_type: ResourceType,
        resource: str,
    ) -> Decision:
        if self.defaults.admins_exempt and role in (UserRole.owner, UserRole.admin):
            return Decision(True, resource_type, resource, None, exempt=True)
        index = self._index
        if index:
            for level, scope_id in (
                (Scope.user, user_id),
                (Scope.group, group_id),
                (Scope.account, account_id),
            ):
                if scope_id is None:
                    continue
                bucket = index.get((level, scope_id, resource_type))
                if bucket is None:
                    continue
                rule = bucket.get(resource) or bucket.get(WILDCARD)
                if rule is not None:
                    return Decision(rule.effect is Effect.allow, resource_type, resource, rule)
        allowed = self.defaults.of(resource_type) is Effect.allow
        return Decision(allowed, resource_type, resource, None)
