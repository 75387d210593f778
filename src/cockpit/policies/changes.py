"""Access rules in words, announced as ``policy.changed`` when a rule is added or removed or the
defaults change ("Group Support may not use claude-sonnet-4")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.events.service import emit
from cockpit.policies.models import WILDCARD, AccessPolicy, Effect, ResourceType
from cockpit.users.names import actor_name

EVENT = "policy.changed"


def rule_words(policy: AccessPolicy, applies_to: str, what: str, features: Mapping[str, str]) -> str:
    """``applies_to``: "Everyone", "Group Support" or an e-mail; ``what``: the resource's name;
    ``features``: what each feature lets people do."""
    may = "may" if policy.effect is Effect.allow else "may not"
    if policy.resource_type is ResourceType.feature and policy.resource in features:
        doing = features[policy.resource]
        return f"{applies_to} {may} {doing[:1].lower()}{doing[1:]}"
    if policy.resource == WILDCARD:
        return f"{applies_to} {may} use {what[:1].lower()}{what[1:]}"
    kind = "" if policy.resource_type is ResourceType.model else f"the {policy.resource_type.value} "
    return f"{applies_to} {may} use {kind}{what}"


def defaults_words(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What changed in the defaults: "by default, models are denied; administrators follow the rules"."""
    parts = []
    for kind in ("model", "agent", "integration", "feature"):
        if before.get(kind) != after.get(kind):
            parts.append(
                f"by default, {kind}s are {'allowed' if after[kind] == Effect.allow.value else 'denied'}"
            )
    if before.get("admins_exempt") != after.get("admins_exempt"):
        exempt = after.get("admins_exempt")
        parts.append(
            "administrators are exempt from the rules" if exempt else "administrators follow the rules"
        )
    return "; ".join(parts)


async def announce(session: AsyncSession, actor: Actor, change: str, rule: str) -> None:
    """``change``: added, changed or removed."""
    if not rule:
        return  # nothing changed
    data = {"change": change, "rule": rule, "changed_by": await actor_name(session, actor)}
    await emit(session, actor.account_id, EVENT, data, actor_id=actor.user_id)
