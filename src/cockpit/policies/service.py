"""Access policies: rules, defaults, decisions and their explanations (resolution: ``engine``)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor, ActorKind
from cockpit.authz.permissions import Permission
from cockpit.groups.models import Group
from cockpit.kit.errors import Conflict, InvalidInput, NotFound, NotPermitted
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.policies import changes
from cockpit.policies.catalogues import (
    Catalogue,
    Catalogues,
    complete,
    model_names,
    named_by_rules,
    resource_label,
)
from cockpit.policies.engine import Decision, Defaults, PolicySet, Rule
from cockpit.policies.models import WILDCARD, AccessPolicy, Effect, PolicyDefaults, ResourceType, Scope
from cockpit.providers.models import Model
from cockpit.tenancy.lock import lock_account
from cockpit.users.models import User

# The platform features a rule can allow or deny (later features add theirs here).
FEATURES: dict[str, str] = {
    "gateway.api_access": "Call the LLM gateway with API tokens",
    "api_tokens.create": "Create personal API tokens",
    "conversations.use": "Chat with agents in conversations",
    "conversations.share": "Share conversations with others",
    "files.upload": "Upload files",
    "agents.create": "Create agents",
    "credit_requests.create": "Ask for extra credits",
    "support_tickets.create": "Open support tickets",
    "export.reports": "Export reports (CSV, Excel, PDF)",
}


@dataclass(frozen=True)
class PolicyRow:
    policy: AccessPolicy
    scope_label: str  # "Everyone", the group's name or the user's e-mail
    resource_label: str  # the model's or agent's name, the feature's key, "*" -> "All models", ...


@dataclass(frozen=True)
class EffectiveRow:
    resource_type: ResourceType
    resource: str
    label: str
    decision: Decision
    scope_label: str  # of the deciding rule ("" for a default)
    explanation: str


def to_rule(policy: AccessPolicy) -> Rule:
    return Rule(
        id=policy.id,
        scope=policy.scope,
        scope_id=policy.scope_id,
        resource_type=policy.resource_type,
        resource=policy.resource,
        effect=policy.effect,
        note=policy.note,
        created_by_label=policy.created_by_label,
        created_at=policy.created_at,
    )


def to_defaults(row: PolicyDefaults | None) -> Defaults:
    if row is None:
        return Defaults()
    return Defaults(row.model, row.agent, row.integration, row.feature, row.admins_exempt)


def _target(policy: AccessPolicy) -> Target:
    return Target(
        "access_policy", policy.id, f"{policy.effect.value} {policy.resource_type.value} {policy.resource}"
    )


def _state(policy: AccessPolicy, scope_label: str, resource_label: str) -> dict[str, Any]:
    return {
        "scope": policy.scope.value,
        "scope_id": str(policy.scope_id),
        "applies_to": scope_label,
        "resource_type": policy.resource_type.value,
        "resource": policy.resource,
        "resource_name": resource_label,
        "effect": policy.effect.value,
        "note": policy.note,
    }


def _words(row: PolicyRow) -> str:
    return changes.rule_words(row.policy, row.scope_label, row.resource_label, FEATURES)


# ---- loading ----


async def policy_set(session: AsyncSession, account_id: uuid.UUID) -> PolicySet:
    """Every rule of the account and its defaults, indexed for decisions (the gateway's cache)."""
    rows = await session.scalars(select(AccessPolicy).where(AccessPolicy.account_id == account_id))
    defaults = await session.get(PolicyDefaults, account_id)
    return PolicySet.of((to_rule(p) for p in rows), to_defaults(defaults))


async def _rules_in_scope(
    session: AsyncSession, user: User, resource_type: ResourceType | None = None, resource: str | None = None
) -> PolicySet:
    """The rules that can apply to ``user`` (theirs, their group's, the account's), optionally of one
    kind and resource: one query."""
    stmt = select(AccessPolicy).where(
        AccessPolicy.account_id == user.account_id,
        or_(
            (AccessPolicy.scope == Scope.account) & (AccessPolicy.scope_id == user.account_id),
            (AccessPolicy.scope == Scope.group) & (AccessPolicy.scope_id == user.group_id),
            (AccessPolicy.scope == Scope.user) & (AccessPolicy.scope_id == user.id),
        ),
    )
    if resource_type is not None:
        stmt = stmt.where(AccessPolicy.resource_type == resource_type)
    if resource is not None:
        stmt = stmt.where(AccessPolicy.resource.in_((resource, WILDCARD)))
    rows = await session.scalars(stmt)
    defaults = await session.get(PolicyDefaults, user.account_id)
    return PolicySet.of((to_rule(p) for p in rows), to_defaults(defaults))


def _decide(policies: PolicySet, user: User, resource_type: ResourceType, resource: str) -> Decision:
    return policies.decide(
        account_id=user.account_id,
        user_id=user.id,
        group_id=user.group_id,
        role=user.role,
        resource_type=resource_type,
        resource=resource,
    )


async def decide(session: AsyncSession, user: User, resource_type: ResourceType, resource: str) -> Decision:
    """Whether ``user`` may use ``resource`` (a model id, agent or integration identifier, or feature key)."""
    return _decide(
        await _rules_in_scope(session, user, resource_type, resource), user, resource_type, resource
    )


async def _scope_label_of(
    session: AsyncSession, account_id: uuid.UUID, scope: Scope, scope_id: uuid.UUID
) -> str:
    """How a rule's level reads; ``session.get`` serves repeated groups and users from the session."""
    if scope is Scope.account:
        return "Everyone"
    if scope is Scope.group:
        group = await session.get(Group, scope_id)
        return (
            f"Group {group.name}"
            if group is not None and group.account_id == account_id
            else "A deleted group"
        )
    user = await session.get(User, scope_id)
    return user.email if user is not None and user.account_id == account_id else "A deleted user"


async def explain(
    session: AsyncSession, user: User, decision: Decision, resource_label: str | None = None
) -> str:
    rule = decision.rule
    scope_label = await _scope_label_of(session, user.account_id, rule.scope, rule.scope_id) if rule else None
    return decision.explain(resource_label, scope_label)


async def require_feature(session: AsyncSession, actor: Actor, feature: str) -> None:
    """Refuse (403 ``feature_not_allowed``) when the acting user's policies deny ``feature``. The
    system (command line, scheduler) is not a user and is never refused."""
    assert feature in FEATURES, feature
    if actor.kind is ActorKind.system or actor.user_id is None:
        return
    user = await session.scalar(
        select(User).where(User.id == actor.user_id, User.account_id == actor.account_id)
    )
    if user is None:
        raise NotFound("user_not_found", "No such user.")
    decision = await decide(session, user, ResourceType.feature, feature)
    if not decision.allowed:
        raise NotPermitted("feature_not_allowed", await explain(session, user, decision))


async def feature_allowed(session: AsyncSession, actor: Actor, feature: str) -> bool:
    """For pages: whether to show what ``feature`` offers."""
    try:
        await require_feature(session, actor, feature)
    except (NotPermitted, NotFound):
        return False
    return True


# ---- rules ----


async def names_of(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """What each of these access rules of the account is about ("model gpt-4o", "feature x")."""
    if not ids:
        return {}
    rules = await session.execute(
        select(AccessPolicy.id, AccessPolicy.resource_type, AccessPolicy.resource).where(
            AccessPolicy.account_id == account_id, AccessPolicy.id.in_(list(ids))
        )
    )
    return {rule_id: f"{kind} {resource}" for rule_id, kind, resource in rules.all()}


async def _check_scope(
    session: AsyncSession, actor: Actor, scope: Scope, scope_id: uuid.UUID | None
) -> uuid.UUID:
    if scope is Scope.account:
        if scope_id is not None and scope_id != actor.account_id:
            raise NotFound("account_not_found", "An account-level rule applies to your own account only.")
        return actor.account_id
    if scope_id is None:
        raise InvalidInput(
            "invalid_input",
            f"Choose the {scope.value} the rule applies to.",
            details=[{"field": "scope_id", "message": "required"}],
        )
    if scope is Scope.group:
        found = await session.scalar(
            select(Group.id).where(Group.id == scope_id, Group.account_id == actor.account_id)
        )
        if found is None:
            raise NotFound("group_not_found", "No such group.")
    else:
        found = await session.scalar(
            select(User.id).where(User.id == scope_id, User.account_id == actor.account_id)
        )
        if found is None:
            raise NotFound("user_not_found", "No such user.")
    return scope_id


async def _check_resource(
    session: AsyncSession, actor: Actor, resource_type: ResourceType, resource: str, catalogues: Catalogues
) -> str:
    value = (resource or "").strip()
    if not value:
        raise InvalidInput(
            "invalid_input",
            "Choose what the rule is about.",
            details=[{"field": "resource", "message": "required"}],
        )
    if value == WILDCARD:
        return value
    if resource_type is ResourceType.model:
        # A model by its id or by the name callers send; stored by id (it survives a rename).
        model = None
        with contextlib.suppress(ValueError):  # not an id: a name
            model = await session.scalar(
                select(Model).where(Model.account_id == actor.account_id, Model.id == uuid.UUID(value))
            )
        if model is None:
            model = await session.scalar(
                select(Model).where(Model.account_id == actor.account_id, Model.name == value)
            )
        if model is None:
            raise InvalidInput(
                "unknown_model",
                f"There is no model '{value}' in the catalogue.",
                details=[{"field": "resource", "message": "unknown model"}],
            )
        return str(model.id)
    if resource_type is ResourceType.feature:
        if value not in FEATURES:
            known = ", ".join(FEATURES)
            raise InvalidInput(
                "unknown_feature",
                f"There is no feature '{value}'. Features: {known}.",
                details=[{"field": "resource", "message": "unknown feature"}],
            )
        return value
    # An agent or an integration, by its slug or its id; stored by slug (what the gateway decides on).
    # Without the caller's agents, no agent is known.
    return (catalogues.of(resource_type) or Catalogue.of(resource_type, ())).resolve(value)


async def _row(
    session: AsyncSession, policy: AccessPolicy, catalogues: Catalogues, models: dict[str, str] | None = None
) -> PolicyRow:
    models = models if models is not None else await model_names(session, policy.account_id)
    return PolicyRow(
        policy,
        await _scope_label_of(session, policy.account_id, policy.scope, policy.scope_id),
        resource_label(policy.resource_type, policy.resource, models, catalogues),
    )


async def list_policies(
    session: AsyncSession,
    actor: Actor,
    params: PageParams,
    *,
    scope: Scope | None = None,
    scope_id: uuid.UUID | None = None,
    resource_type: ResourceType | None = None,
    catalogues: Catalogues | None = None,
) -> Page[PolicyRow]:
    """The account's rules, agents and integrations named from ``catalogues`` (the caller's agents)."""
    actor.require(Permission.policies_manage)
    stmt = select(AccessPolicy).where(AccessPolicy.account_id == actor.account_id)
    if scope is not None:
        stmt = stmt.where(AccessPolicy.scope == scope)
    if scope_id is not None:
        stmt = stmt.where(AccessPolicy.scope_id == scope_id)
    if resource_type is not None:
        stmt = stmt.where(AccessPolicy.resource_type == resource_type)
    # Account first, then groups, then users; newest first within a level.
    level = case((AccessPolicy.scope == Scope.account, 0), (AccessPolicy.scope == Scope.group, 1), else_=2)
    page = await paginate(
        session, stmt.order_by(level, AccessPolicy.created_at.desc(), AccessPolicy.id), params
    )
    models = await model_names(session, actor.account_id)
    catalogues = await complete(session, actor, catalogues)
    rows = [await _row(session, p, catalogues, models) for p in page.items]
    return Page(items=rows, total=page.total, page=page.page, per_page=page.per_page)


async def access_policy(session: AsyncSession, actor: Actor, policy_id: uuid.UUID) -> AccessPolicy:
    actor.require(Permission.policies_manage)
    policy = await session.scalar(
        select(AccessPolicy).where(AccessPolicy.id == policy_id, AccessPolicy.account_id == actor.account_id)
    )
    if policy is None:
        raise NotFound("policy_not_found", "No such access policy.")
    return policy


async def get_policy(
    session: AsyncSession, actor: Actor, policy_id: uuid.UUID, *, catalogues: Catalogues | None = None
) -> PolicyRow:
    policy = await access_policy(session, actor, policy_id)
    return await _row(session, policy, await complete(session, actor, catalogues))


async def create_policy(
    session: AsyncSession,
    actor: Actor,
    *,
    scope: Scope | str,
    scope_id: uuid.UUID | None,
    resource_type: ResourceType | str,
    resource: str,
    effect: Effect | str,
    note: str = "",
    catalogues: Catalogues | None = None,
) -> PolicyRow:
    """A rule. An agent or integration is named by its slug or id (stored by slug) from
    ``catalogues``: without the caller's agents, no agent can be named."""
    actor.require(Permission.policies_manage)
    # Rule changes of an account are serialised (the duplicate check below cannot race).
    await lock_account(session, actor.account_id)
    try:
        scope, resource_type, effect = Scope(scope), ResourceType(resource_type), Effect(effect)
    except ValueError as exc:
        raise InvalidInput("invalid_input", str(exc)) from None
    scope_id = await _check_scope(session, actor, scope, scope_id)
    catalogues = await complete(session, actor, catalogues)
    resource = await _check_resource(session, actor, resource_type, resource, catalogues)
    note = (note or "").strip()
    if len(note) > 500:
        raise InvalidInput(
            "invalid_input",
            "The note is at most 500 characters.",
            details=[{"field": "note", "message": "too long"}],
        )
    existing = await session.scalar(
        select(AccessPolicy).where(
            AccessPolicy.account_id == actor.account_id,
            AccessPolicy.scope == scope,
            AccessPolicy.scope_id == scope_id,
            AccessPolicy.resource_type == resource_type,
            AccessPolicy.resource == resource,
            AccessPolicy.effect == effect,
        )
    )
    if existing is not None:
        raise Conflict("policy_exists", f"The same rule already exists (rule {existing.id}).")
    policy = AccessPolicy(
        id=uuid.uuid4(),
        account_id=actor.account_id,
        scope=scope,
        scope_id=scope_id,
        resource_type=resource_type,
        resource=resource,
        effect=effect,
        note=note,
        created_by=actor.user_id,
        created_by_label=actor.label,
    )
    session.add(policy)
    await session.flush()
    row = await _row(session, policy, catalogues)
    await audit.record(
        session,
        actor,
        "policy.created",
        target=_target(policy),
        after=_state(policy, row.scope_label, row.resource_label),
    )
    await changes.announce(session, actor, "added", _words(row))
    return row


async def delete_policy(
    session: AsyncSession, actor: Actor, policy_id: uuid.UUID, *, catalogues: Catalogues | None = None
) -> None:
    policy = await access_policy(session, actor, policy_id)
    row = await _row(session, policy, await complete(session, actor, catalogues))
    await audit.record(
        session,
        actor,
        "policy.deleted",
        target=_target(policy),
        before=_state(policy, row.scope_label, row.resource_label),
    )
    await changes.announce(session, actor, "removed", _words(row))
    await session.delete(policy)
    await session.flush()


async def delete_scope_policies(
    session: AsyncSession, actor: Actor, scope: Scope, scope_id: uuid.UUID
) -> int:
    """The rules of a group or user that is going away (audited one by one)."""
    rows = list(
        await session.scalars(
            select(AccessPolicy).where(
                AccessPolicy.account_id == actor.account_id,
                AccessPolicy.scope == scope,
                AccessPolicy.scope_id == scope_id,
            )
        )
    )
    catalogues = await complete(session, actor, None) if rows else None
    for policy in rows:
        await delete_policy(session, actor, policy.id, catalogues=catalogues)
    return len(rows)


# ---- defaults ----


def _defaults_state(row: PolicyDefaults | Defaults) -> dict[str, Any]:
    return {
        "model": Effect(row.model).value,
        "agent": Effect(row.agent).value,
        "integration": Effect(row.integration).value,
        "feature": Effect(row.feature).value,
        "admins_exempt": bool(row.admins_exempt),
    }


async def get_defaults(session: AsyncSession, actor: Actor) -> Defaults:
    actor.require(Permission.policies_manage)
    return to_defaults(await session.get(PolicyDefaults, actor.account_id))


async def change_defaults(
    session: AsyncSession,
    actor: Actor,
    *,
    model: Effect | str | None = None,
    agent: Effect | str | None = None,
    integration: Effect | str | None = None,
    feature: Effect | str | None = None,
    admins_exempt: bool | None = None,
) -> Defaults:
    actor.require(Permission.policies_manage)
    await lock_account(session, actor.account_id)
    row = await session.get(PolicyDefaults, actor.account_id)
    if row is None:
        row = PolicyDefaults(
            account_id=actor.account_id,
            model=Effect.allow,
            agent=Effect.allow,
            integration=Effect.allow,
            feature=Effect.allow,
            admins_exempt=False,
        )
        session.add(row)
        before = _defaults_state(Defaults())
    else:
        before = _defaults_state(row)
    try:
        for name, value in (
            ("model", model),
            ("agent", agent),
            ("integration", integration),
            ("feature", feature),
        ):
            if value is not None:
                setattr(row, name, Effect(value))
    except ValueError:
        raise InvalidInput("invalid_input", "A default is 'allow' or 'deny'.") from None
    if admins_exempt is not None:
        row.admins_exempt = bool(admins_exempt)
    after = _defaults_state(row)
    await session.flush()
    await audit.record_changes(
        session,
        actor,
        "policy.defaults_updated",
        target=Target("account", actor.account_id, "Access policy defaults"),
        before=before,
        after=after,
    )
    await changes.announce(session, actor, "changed", changes.defaults_words(before, after))
    return to_defaults(row)


# ---- effective access ----


async def effective_access(
    session: AsyncSession,
    actor: Actor,
    user_id: uuid.UUID,
    *,
    resource_type: ResourceType | None = None,
    resource: str | None = None,
    catalogues: Catalogues | None = None,
) -> tuple[User, list[EffectiveRow]]:
    """For one user: every model, agent, integration and feature (or one kind, or one resource, by
    its name, slug or id), allowed or denied and what decided it. Administrators see anyone's; users
    their own. The agents are those of ``catalogues`` (the caller's listing: every agent of the
    account for an administrator), by name; for an administrator also the slugs rules still name
    after their agent or integration went ("Deleted agent"). Without the caller's agents, the agents
    named by rules are listed by slug."""
    if user_id != actor.user_id:
        actor.require(Permission.policies_manage)
    user = await session.scalar(select(User).where(User.id == user_id, User.account_id == actor.account_id))
    if user is None:
        raise NotFound("user_not_found", "No such user.")
    policies = await _rules_in_scope(session, user, resource_type)
    models = await model_names(session, user.account_id)
    kinds = [resource_type] if resource_type is not None else list(ResourceType)
    if any(kind in (ResourceType.agent, ResourceType.integration) for kind in kinds):
        catalogues = await complete(session, actor, catalogues)
    wanted: list[tuple[ResourceType, str]] = []
    for kind in kinds:
        catalogue = catalogues.of(kind) if catalogues is not None else None
        if resource is not None:
            value = resource
            if kind is ResourceType.model and value not in models:
                value = next((i for i, n in models.items() if n == resource), value)
            elif catalogue is not None:
                value = catalogue.slug_of(value) or value
            wanted.append((kind, value))
        elif kind is ResourceType.model:
            wanted += [(kind, model_id) for model_id, _ in sorted(models.items(), key=lambda item: item[1])]
        elif kind is ResourceType.feature:
            wanted += [(kind, key) for key in FEATURES]
        elif catalogue is None:  # the agents were not supplied: those the account's rules name
            wanted += [(kind, name) for name in await named_by_rules(session, user.account_id, kind)]
        else:
            wanted += [(kind, slug) for slug in catalogue.names]
            if actor.can(Permission.policies_manage):
                named = await named_by_rules(session, user.account_id, kind)
                wanted += [(kind, slug) for slug in named if slug not in catalogue.names]
    labels: dict[tuple[Scope, uuid.UUID], str] = {}
    rows = []
    for kind, value in wanted:
        decision = _decide(policies, user, kind, value)
        label = resource_label(kind, value, models, catalogues) if kind is not ResourceType.feature else value
        scope_label = ""
        if decision.rule is not None:
            key = (decision.rule.scope, decision.rule.scope_id)
            if key not in labels:
                labels[key] = await _scope_label_of(session, user.account_id, *key)
            scope_label = labels[key]
        rows.append(
            EffectiveRow(
                kind, value, label, decision, scope_label, decision.explain(label, scope_label or None)
            )
        )
    return user, rows
