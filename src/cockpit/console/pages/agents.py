"""Agents: the catalogue's list (everyone sees the agents shared with them), one form to create or
edit an agent, and its actions (duplicate, default, deactivate/reactivate, delete)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from cockpit.agents import service as agents
from cockpit.agents.models import Agent, AgentStatus, Visibility
from cockpit.agents.schemas import NAME_MAX, STARTERS_MAX, AgentCreate, AgentUpdate, parsed
from cockpit.analytics import service as analytics
from cockpit.analytics.figures import Totals
from cockpit.analytics.filters import Dimension, Filters
from cockpit.analytics.labels import names
from cockpit.authz.permissions import Permission
from cockpit.console.web import SignedIn, Viewer, discard_changes, path_id, redirect, render
from cockpit.credits.cycles import current_cycle
from cockpit.groups import service as groups
from cockpit.kit.errors import CockpitError, NotPermitted
from cockpit.kit.pagination import PageParams
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession
from cockpit.policies import service as policies
from cockpit.projects import service as projects
from cockpit.providers import service as providers
from cockpit.tenancy.service import account_by_id

router = APIRouter(prefix="/agents")

PER_PAGE = 25
Text = Annotated[str, Query(max_length=200)]


def _agent_id(value: str) -> uuid.UUID:
    return path_id(value, "agent_not_found", "No such agent.")


def _status(value: str) -> AgentStatus | None:
    try:
        return AgentStatus(value) if value else None
    except ValueError:
        return None


# ---- the list ----


@router.get("")
async def agents_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    q: Text = "",
    status: Annotated[str, Query(max_length=20)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    found = await agents.list_agents(
        session, viewer.actor, search=q, status=_status(status), page=PageParams(page=page, per_page=PER_PAGE)
    )
    labels = await agents.labels_of(session, viewer.actor.account_id, found.items)
    context = {
        "usage": await _usage_this_cycle(session, viewer),
        "usage_everyone": viewer.can(Permission.usage_read_all),
        "page": found,
        "agents": found.items,
        "labels": labels,
        "integration_names": {str(k): v for k, v in labels.integrations.items()},
        "manageable": await agents.manageable(session, viewer.actor, found.items),
        "can_create": await can_create(session, viewer),
        "form": {"q": q, "status": status},
        "statuses": list(AgentStatus),
        "base_query": urlencode({"q": q, "status": status}),
        "filtered": bool(q or status),
    }
    return render(request, "agents/index.html", context)


async def _usage_this_cycle(session: DbSession, viewer: Viewer) -> dict[str, Totals]:
    """Calls and cost per agent (by id) since the start of the account's credit cycle: the whole
    account's for administrators, the viewer's own calls for everyone else."""
    account = await account_by_id(session, viewer.actor.account_id)
    if account is None:
        return {}
    cycle = await current_cycle(session, account)
    now = utcnow()
    if cycle.starts_at >= now:
        return {}
    scope = await analytics.scope_for(session, viewer.actor)
    found = await analytics.breakdown(
        session,
        scope,
        Filters(start=cycle.starts_at, end=now),
        Dimension.agent,
        names,
        limit=analytics.MAX_LIMIT,
    )
    return {str(item.key): item.totals for item in found.items if item.key is not None}


async def can_create(session: DbSession, viewer: Viewer) -> bool:
    """Mirrors create_agent: an admin, or a member of a project; and the access policies allow it."""
    if not viewer.can(Permission.agents_manage) and not await projects.list_projects(session, viewer.actor):
        return False
    return await policies.feature_allowed(session, viewer.actor, agents.CREATE_FEATURE)


# ---- the form ----


def _number(value: str) -> Any:
    """A number typed in a form: None when empty; what was typed when it is not one (the schema
    then says what is wrong with it)."""
    text = value.strip()
    if not text:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def form_fields(form: FormData, integration_ids_listed: dict[str, bool]) -> dict[str, Any]:
    """The agent's fields from the form (every field: the edit form sends them all)."""

    def text(name: str) -> str:
        value = form.get(name, "")
        return value if isinstance(value, str) else ""

    def values(name: str) -> list[str]:
        return [v for v in form.getlist(name) if isinstance(v, str)]

    integration_ids = values("integration_ids")
    tools: dict[str, Any] = {}
    for integration_id in integration_ids:
        everything = text(f"all:{integration_id}") == "true" or not integration_ids_listed.get(integration_id)
        tools[integration_id] = {
            "all": everything,
            "names": [] if everything else values(f"tools:{integration_id}"),
            "confirm": values(f"confirm:{integration_id}"),
        }
    visibility = text("visibility") or None
    max_steps = _number(text("max_steps"))
    return {
        "name": text("name"),
        "slug": text("slug").strip() or None,
        "description": text("description"),
        "icon": text("icon"),
        "model": text("model"),
        "instructions": text("instructions"),
        "temperature": _number(text("temperature")),
        "max_output_tokens": _number(text("max_output_tokens")),
        "integration_ids": integration_ids,
        "tools": tools,
        "starters": [s for s in values("starters") if s.strip()],
        "visibility": visibility,
        "group_ids": values("group_ids") if visibility == Visibility.groups else [],
        "project_id": text("project_id") or None,
        "max_steps": 5 if max_steps is None else max_steps,
    }


def field_errors(exc: CockpitError) -> dict[str, str]:
    """Field → message, to show each next to its field (``tools.<id>`` under its integration)."""
    errors: dict[str, str] = {}
    for detail in exc.details or []:
        field = str(detail.get("field", ""))
        parts = field.split(".")
        key = ".".join(parts[:2]) if parts[0] == "tools" and len(parts) > 1 else parts[0]
        errors.setdefault(key, str(detail.get("message", "")))
    return errors


def _values_of(agent: Agent) -> dict[str, Any]:
    """What the edit form shows of a stored agent."""
    return {
        "name": agent.name,
        "slug": agent.slug,
        "description": agent.description,
        "icon": agent.icon,
        "model": str(agent.model_id) if agent.model_id else "",
        "instructions": agent.instructions,
        "temperature": agent.temperature,
        "max_output_tokens": agent.max_output_tokens,
        "integration_ids": list(agent.integration_ids),
        "tools": dict(agent.tools),
        "starters": list(agent.starters),
        "visibility": str(agent.visibility),
        "group_ids": list(agent.group_ids),
        "project_id": str(agent.project_id) if agent.project_id else None,
        "max_steps": agent.max_steps,
    }


async def _form_page(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    *,
    agent: Agent | None,
    values: dict[str, Any],
    error: CockpitError | None = None,
    can_edit: bool = True,
) -> Response:
    actor = viewer.actor
    admin = viewer.can(Permission.agents_manage)
    models = [m for m in await providers.list_models(session, actor) if m.enabled]
    integrations = await agents.integration_choices(session, actor)
    context = {
        "agent": agent,
        "f": values,
        "error": error.message if error else None,
        "errors": field_errors(error) if error else {},
        "can_edit": can_edit,
        "admin": admin,
        "models": models,
        "integrations": integrations,
        "groups": await groups.groups_of(session, actor.account_id) if admin else [],
        "projects": [p for p, _ in await projects.list_projects(session, actor)],
        "visibilities": list(Visibility) if admin else [Visibility.project],
        "starters_max": STARTERS_MAX,
        "labels": await agents.labels_of(session, actor.account_id, [agent]) if agent else None,
    }
    return render(request, "agents/form.html", context, status_code=422 if error else 200)


async def listed_integrations(session: DbSession, viewer: Viewer) -> dict[str, bool]:
    """Each integration (by id string): whether it has listed its tools."""
    return {str(i.id): bool(i.tools) for i in await agents.integration_choices(session, viewer.actor)}


@router.get("/new")
async def new_agent_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    project_id: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    if not await can_create(session, viewer):
        raise NotPermitted("agents_create_not_allowed", "You cannot create agents.")
    values: dict[str, Any] = {"max_steps": 5, "project_id": project_id or None, "starters": []}
    if not viewer.can(Permission.agents_manage):
        values["visibility"] = Visibility.project.value
    return await _form_page(request, session, viewer, agent=None, values=values)


@router.post("/new")
async def create_agent(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    values = form_fields(await request.form(), await listed_integrations(session, viewer))
    try:
        agent = await agents.create_agent(session, viewer.actor, parsed(AgentCreate, values))
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _form_page(request, session, viewer, agent=None, values=values, error=exc)
    return redirect(request, "/agents", message=f"Agent “{agent.name}” created.")


@router.post("/check")
async def check_agent_form(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    agent_id: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """Live validation of the form as it is typed (htmx): what is wrong with each field, without
    saving anything — the checks of the schema, the model chosen and the slug being free."""
    values = form_fields(await request.form(), await listed_integrations(session, viewer))
    problems: dict[str, str] = {}
    try:
        parsed(AgentCreate, values)
    except CockpitError as exc:
        problems = field_errors(exc)
    slug = values.get("slug")
    if isinstance(slug, str) and "slug" not in problems:
        taken = await agents.by_slug(session, viewer.actor.account_id, slug)
        if taken is not None and str(taken.id) != agent_id:
            problems["slug"] = f"“{slug}” is already the slug of {taken.name}."
    return render(request, "agents/_check.html", {"problems": problems})


@router.get("/{agent_id}")
async def agent_page(request: Request, session: DbSession, viewer: SignedIn, agent_id: str) -> Response:
    agent = await agents.get_agent(session, viewer.actor, _agent_id(agent_id))
    can_edit = agent.id in await agents.manageable(session, viewer.actor, [agent])
    return await _form_page(
        request, session, viewer, agent=agent, values=_values_of(agent), can_edit=can_edit
    )


@router.post("/{agent_id}")
async def edit_agent(request: Request, session: DbSession, viewer: SignedIn, agent_id: str) -> Response:
    agent = await agents.get_agent(session, viewer.actor, _agent_id(agent_id))
    values = form_fields(await request.form(), await listed_integrations(session, viewer))
    patch = {**values, "slug": values["slug"] or agent.slug}
    try:
        agent = await agents.update_agent(session, viewer.actor, agent.id, parsed(AgentUpdate, patch))
    except CockpitError as exc:
        await discard_changes(session, viewer)
        agent = await agents.get_agent(session, viewer.actor, agent.id)
        return await _form_page(request, session, viewer, agent=agent, values=values, error=exc)
    return redirect(request, f"/agents/{agent.id}", message=f"Agent “{agent.name}” saved.")


# ---- actions ----


async def _act(request: Request, session: DbSession, viewer: Viewer, agent_id: str, action: str) -> Response:
    agent = await agents.get_agent(session, viewer.actor, _agent_id(agent_id))
    aid, name = agent.id, agent.name
    try:
        if action == "duplicate":
            copy = await agents.duplicate_agent(session, viewer.actor, aid)
            return redirect(request, f"/agents/{copy.id}", message=f"“{name}” duplicated as “{copy.name}”.")
        if action == "default":
            agent = await agents.set_default_agent(session, viewer.actor, aid)
            place = "its project's" if agent.project_id else "the organisation's"
            message = f"“{name}” is now {place} default agent."
        elif action == "deactivate":
            await agents.deactivate_agent(session, viewer.actor, aid)
            message = f"“{name}” deactivated: it takes no new runs."
        else:
            await agents.reactivate_agent(session, viewer.actor, aid)
            message = f"“{name}” reactivated."
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, "/agents", message=exc.message, kind="error")
    return redirect(request, "/agents", message=message)


@router.post("/{agent_id}/duplicate")
async def duplicate_agent(request: Request, session: DbSession, viewer: SignedIn, agent_id: str) -> Response:
    return await _act(request, session, viewer, agent_id, "duplicate")


@router.post("/{agent_id}/default")
async def set_default_agent(
    request: Request, session: DbSession, viewer: SignedIn, agent_id: str
) -> Response:
    return await _act(request, session, viewer, agent_id, "default")


@router.post("/{agent_id}/deactivate")
async def deactivate_agent(request: Request, session: DbSession, viewer: SignedIn, agent_id: str) -> Response:
    return await _act(request, session, viewer, agent_id, "deactivate")


@router.post("/{agent_id}/reactivate")
async def reactivate_agent(request: Request, session: DbSession, viewer: SignedIn, agent_id: str) -> Response:
    return await _act(request, session, viewer, agent_id, "reactivate")


@router.post("/{agent_id}/delete")
async def delete_agent(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    agent_id: str,
    confirm: Annotated[str, Form(max_length=NAME_MAX)] = "",
) -> Response:
    agent = await agents.get_agent(session, viewer.actor, _agent_id(agent_id))
    aid, name = agent.id, agent.name
    try:
        await agents.delete_agent(session, viewer.actor, aid, confirm_name=confirm)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, "/agents", message=exc.message, kind="error")
    return redirect(request, "/agents", message=f"Agent “{name}” deleted.")
