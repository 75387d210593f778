"""Access policies: the account's allow/deny rules (filters, "Add rule", delete), the defaults that
apply when no rule does, and anyone's effective access (members see their own).

The decisions themselves are the policies service's: this module only reads forms and shows
what the service returns.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from cockpit.agents import service as agents
from cockpit.authz.permissions import Permission
from cockpit.console.web import SignedIn, Viewer, discard_changes, page_requires, redirect, render
from cockpit.groups import service as groups
from cockpit.kit.errors import CockpitError, InvalidInput, NotFound
from cockpit.kit.pagination import Page, PageParams
from cockpit.kit.web import DbSession
from cockpit.policies import catalogues as policy_catalogues
from cockpit.policies import service as policies
from cockpit.policies.catalogues import Catalogues
from cockpit.policies.engine import Defaults
from cockpit.policies.models import WILDCARD, Effect, ResourceType, Scope
from cockpit.policies.service import EffectiveRow, PolicyRow
from cockpit.providers import service as providers
from cockpit.providers.models import Model
from cockpit.users import service as users_service
from cockpit.users.models import User
from cockpit.users.queries import UserFilters

router = APIRouter(prefix="/policies")

ManageViewer = Annotated[Viewer, Depends(page_requires(Permission.policies_manage))]

PER_PAGE = 25
RULES_ID = "policy-rules"
# The user pickers list the first this-many people by e-mail.
MAX_USERS_LISTED = 500
PICKER_MATCHES = 20  # suggestions fetched as one types in the person picker

LEVELS: dict[str, str] = {
    Scope.account.value: "Account",
    Scope.group.value: "Group",
    Scope.user.value: "User",
}
KINDS: dict[str, str] = {
    ResourceType.model.value: "Model",
    ResourceType.agent.value: "Agent",
    ResourceType.integration.value: "Integration",
    ResourceType.feature.value: "Feature",
}
KIND_TITLES: dict[str, str] = {
    ResourceType.model.value: "Models",
    ResourceType.agent.value: "Agents",
    ResourceType.integration.value: "Integrations",
    ResourceType.feature.value: "Features",
}
EFFECTS: dict[str, str] = {Effect.allow.value: "Allow", Effect.deny.value: "Deny"}

Choice = Annotated[str, Query(max_length=40)]
PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]
FormText = Annotated[str, Form(max_length=1000)]
FormChoice = Annotated[str, Form(max_length=40)]


def _id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{what}_not_found", f"No such {what}.") from None


def _filters(scope: str, kind: str) -> tuple[str, str, str | None]:
    """The level and kind filters as given, or emptied with a message when unknown."""
    problems = []
    if scope and scope not in LEVELS:
        problems.append(f"level “{scope[:40]}”")
        scope = ""
    if kind and kind not in KINDS:
        problems.append(f"kind “{kind[:40]}”")
        kind = ""
    error = f"Unknown {' and '.join(problems)}: showing every rule of it." if problems else None
    return scope, kind, error


def _list_query(scope: str, kind: str, page: int = 1) -> str:
    values = {"scope": scope, "kind": kind, "page": str(page) if page > 1 else ""}
    return urlencode({k: v for k, v in values.items() if v})


def _rule_text(row: PolicyRow) -> str:
    """e.g. "deny model “gpt-4o” for Group Engineering"."""
    p = row.policy
    who = "everyone" if p.scope is Scope.account else row.scope_label
    return f"{p.effect.value} {p.resource_type.value} “{row.resource_label}” for {who}"


async def _users(session: DbSession, viewer: Viewer) -> tuple[list[User], bool]:
    listed = await users_service.list_all(session, viewer.actor.account_id, limit=MAX_USERS_LISTED + 1)
    return listed[:MAX_USERS_LISTED], len(listed) > MAX_USERS_LISTED


async def _models(session: DbSession, viewer: Viewer) -> list[Model]:
    return sorted(await providers.list_models(session, viewer.actor), key=lambda m: m.name.lower())


async def _catalogues(session: DbSession, viewer: Viewer) -> Catalogues:
    """The agents and integrations rules name (every one of the account for an administrator)."""
    listed = await agents.list_agents(
        session, viewer.actor, page=PageParams(per_page=policy_catalogues.CATALOGUE_LIMIT)
    )
    return await policy_catalogues.build(session, viewer.actor, agents=listed.items)


def _defaults_of(defaults: Defaults) -> dict[str, Any]:
    """The defaults as the Defaults form shows them."""
    values: dict[str, Any] = {kind.value: defaults.of(kind).value for kind in ResourceType}
    return values | {"admins_exempt": defaults.admins_exempt}


# ---- the rules, the defaults and "Add rule" ----


async def _index(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    *,
    scope: str = "",
    kind: str = "",
    page: int = 1,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    scope, kind, filter_error = _filters(scope, kind)
    catalogues = await _catalogues(session, viewer)

    async def listing(number: int) -> Page[PolicyRow]:
        return await policies.list_policies(
            session,
            viewer.actor,
            PageParams(page=number, per_page=PER_PAGE),
            scope=Scope(scope) if scope else None,
            resource_type=ResourceType(kind) if kind else None,
            catalogues=catalogues,
        )

    found = await listing(page)
    if found.total and page > found.pages:  # past the last page (after a delete): the last page
        found = await listing(found.pages)
    context: dict[str, Any] = {
        "page": found,
        "scope": scope,
        "kind": kind,
        "filter_error": filter_error,
        "filtered": bool(scope or kind),
        "query": _list_query(scope, kind),
        "levels": LEVELS,
        "kinds": KINDS,
        "effects": EFFECTS,
        "features": policies.FEATURES,
        "wildcard": WILDCARD,
        "results_id": RULES_ID,
        **extra,
    }
    if request.headers.get("hx-target") == RULES_ID:
        return render(request, "policies/_rules.html", context, status_code=status_code)
    users, more_users = await _users(session, viewer)
    defaults = await policies.get_defaults(session, viewer.actor)
    context |= {
        "defaults": defaults,
        "default_values": extra.get("defaults_form") or _defaults_of(defaults),
        "groups": await groups.list_groups(session, viewer.actor),
        "users": users,
        "more_users": more_users,
        "max_users": MAX_USERS_LISTED,
        "models": await _models(session, viewer),
        # slug -> name, by name: what the "Add rule" dialog offers.
        "agents": catalogues.agents.names if catalogues.agents else {},
        "integrations": catalogues.integrations.names if catalogues.integrations else {},
    }
    return render(request, "policies/index.html", context, status_code=status_code)


@router.get("")
async def policies_page(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    scope: Choice = "",
    kind: Choice = "",
    page: PageNumber = 1,
) -> Response:
    return await _index(request, session, viewer, scope=scope, kind=kind, page=page)


def _scope_id(scope: str, group_id: str, user_id: str) -> uuid.UUID | None:
    if scope == Scope.group.value and group_id:
        return _id(group_id, "group")
    if scope == Scope.user.value and user_id:
        return _id(user_id, "user")
    return None  # the account's own rule, or nothing chosen (the service says what is missing)


def _resource(kind: str, model: str, feature: str, agent: str, integration: str) -> str:
    """The form has one resource field per kind; the one of the chosen kind counts."""
    return {
        ResourceType.model.value: model,
        ResourceType.feature.value: feature,
        ResourceType.agent.value: agent,
        ResourceType.integration.value: integration,
    }.get(kind, "")


def _check_choices(scope: str, kind: str, effect: str) -> None:
    """Readable refusals for values the form's selects never send (the service checks them too)."""
    for value, known, what in (
        (scope, LEVELS, "level (account, group or user)"),
        (kind, KINDS, "kind (model, agent, integration or feature)"),
        (effect, EFFECTS, "effect (allow or deny)"),
    ):
        if value not in known:
            raise InvalidInput("invalid_input", f"Choose a {what}.")


@router.post("")
async def add_rule(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    scope: FormChoice = "",
    group_id: FormChoice = "",
    user_id: FormChoice = "",
    resource_type: FormChoice = "",
    model: FormText = "",
    feature: FormText = "",
    agent: FormText = "",
    integration: FormText = "",
    effect: FormChoice = "",
    note: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    form = {
        "scope": scope, "group_id": group_id, "user_id": user_id, "resource_type": resource_type,
        "model": model[:200], "feature": feature[:200], "agent": agent[:200],
        "integration": integration[:200], "effect": effect, "note": note[:600],
    }  # fmt: skip
    try:
        _check_choices(scope, resource_type, effect)
        row = await policies.create_policy(
            session,
            viewer.actor,
            scope=scope,
            scope_id=_scope_id(scope, group_id, user_id),
            resource_type=resource_type,
            resource=_resource(resource_type, model, feature, agent, integration),
            effect=effect,
            note=note,
            catalogues=await _catalogues(session, viewer),
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _index(
            request, session, viewer, status_code=exc.status, create_error=exc.message, create_form=form
        )
    return redirect(request, "/policies", message=f"Rule added: {_rule_text(row)}.")


@router.post("/defaults")
async def save_defaults(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    model: FormChoice = "",
    agent: FormChoice = "",
    integration: FormChoice = "",
    feature: FormChoice = "",
    admins_exempt: FormChoice = "",
) -> Response:
    before = await policies.get_defaults(session, viewer.actor)
    exempt = bool(admins_exempt)
    try:
        for name, value in (
            ("model", model),
            ("agent", agent),
            ("integration", integration),
            ("feature", feature),
        ):
            if value not in EFFECTS:
                raise InvalidInput(
                    "invalid_input", f"Choose Allow or Deny as the default for {KIND_TITLES[name].lower()}."
                )
        after = await policies.change_defaults(
            session,
            viewer.actor,
            model=model,
            agent=agent,
            integration=integration,
            feature=feature,
            admins_exempt=exempt,
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        form = {
            "model": model,
            "agent": agent,
            "integration": integration,
            "feature": feature,
            "admins_exempt": exempt,
        }
        return await _index(
            request, session, viewer, status_code=exc.status, defaults_error=exc.message, defaults_form=form
        )
    message = (
        "Defaults saved." if after != before else "Nothing changed: the defaults were already set this way."
    )
    return redirect(request, "/policies", message=message)


@router.post("/{policy_id}/delete")
async def delete_rule(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    policy_id: str,
    scope: FormChoice = "",
    kind: FormChoice = "",
    page: Annotated[int, Form(ge=1, le=1_000_000)] = 1,
) -> Response:
    # 404 for another account's (or an unknown) rule before anything else.
    catalogues = await _catalogues(session, viewer)
    row = await policies.get_policy(session, viewer.actor, _id(policy_id, "policy"), catalogues=catalogues)
    text = _rule_text(row)
    await policies.delete_policy(session, viewer.actor, row.policy.id, catalogues=catalogues)
    scope, kind, _ = _filters(scope, kind)
    query = _list_query(scope, kind, page)
    return redirect(request, "/policies" + (f"?{query}" if query else ""), message=f"Rule deleted: {text}.")


# ---- effective access ----


@dataclass(frozen=True)
class KindSection:
    kind: str
    title: str
    rows: list[EffectiveRow]
    # Any other agent or integration, e.g. one added later (decided by a "*" rule or the default).
    others: EffectiveRow | None = None


async def _sections(session: DbSession, viewer: Viewer, user_id: uuid.UUID) -> tuple[User, list[KindSection]]:
    catalogues = await _catalogues(session, viewer)
    user, rows = await policies.effective_access(session, viewer.actor, user_id, catalogues=catalogues)
    sections = []
    for kind in ResourceType:
        others = None
        if kind in (ResourceType.agent, ResourceType.integration):
            _, found = await policies.effective_access(
                session, viewer.actor, user_id, resource_type=kind, resource=WILDCARD, catalogues=catalogues
            )
            others = found[0] if found else None
        sections.append(
            KindSection(
                kind.value, KIND_TITLES[kind.value], [r for r in rows if r.resource_type is kind], others
            )
        )
    return user, sections


def person_label(user: User) -> str:
    """How a person is shown in a picker: their name and e-mail (the e-mail alone without a name)."""
    return f"{user.name} <{user.email}>" if user.name else user.email


@router.get("/effective/people")
async def people_options(
    request: Request, session: DbSession, viewer: ManageViewer, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """The person picker's suggestions for what is typed (names or e-mails), for long lists."""
    found = await users_service.search_users(
        session, viewer.actor, UserFilters(q=q.strip() or None), PageParams(page=1, per_page=PICKER_MATCHES)
    )
    options = [(str(u.id), person_label(u)) for u in found.items]
    return render(request, "policies/_people_options.html", {"options": options})


@router.get("/effective")
async def effective_page(
    request: Request, session: DbSession, viewer: SignedIn, user_id: Choice = ""
) -> Response:
    """Administrators pick anyone; members see their own (the service refuses anyone else's)."""
    admin = viewer.can(Permission.policies_manage)
    target = _id(user_id, "user") if user_id else viewer.actor.user_id
    if target is None:
        raise NotFound("user_not_found", "No such user.")
    user, sections = await _sections(session, viewer, target)
    group = await groups.get_group(session, viewer.actor.account_id, user.group_id)
    users: list[User] = []
    more_users = False
    if admin:
        users, more_users = await _users(session, viewer)
        if user not in users:
            users.append(user)
    rows = [r for s in sections for r in s.rows]
    context: dict[str, Any] = {
        "admin": admin,
        "subject": user,
        "own": user.id == viewer.actor.user_id,
        "group": group,
        "sections": sections,
        "allowed_count": sum(1 for r in rows if r.decision.allowed),
        "denied_count": sum(1 for r in rows if not r.decision.allowed),
        "people": [(str(u.id), person_label(u)) for u in users],
        "subject_label": person_label(user),
        "more_users": more_users,
        "max_users": MAX_USERS_LISTED,
        "features": policies.FEATURES,
        "wildcard": WILDCARD,
    }
    return render(request, "policies/effective.html", context)
