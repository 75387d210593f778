"""The agents catalogue: who may see, create and change an agent, and the account's defaults.

Account admins (``agents:manage``) manage every agent of the account. A project's admins and
members create and manage that project's agents; a member may not create account-wide agents.
Members see the agents shared with the whole account, with their group, and their projects' ones.
Creating (or duplicating) an agent also needs the access policy feature ``agents.create``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents import repository
from cockpit.agents.models import Agent, AgentStatus, Visibility
from cockpit.agents.schemas import (
    NAME_MAX,
    SLUG_MAX,
    AgentCreate,
    AgentUpdate,
    Labels,
    ToolSelection,
    slug_of,
)
from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.groups import service as groups
from cockpit.integrations.models import Integration
from cockpit.kit.errors import Conflict, InvalidInput, NotFound, NotPermitted
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.policies import service as policies
from cockpit.projects import service as projects
from cockpit.projects.models import Project
from cockpit.providers import service as providers
from cockpit.providers.models import Model
from cockpit.tenancy.lock import lock_account_chain
from cockpit.users import service as users

CREATE_FEATURE = "agents.create"


def target(agent: Agent) -> Target:
    return Target("agent", agent.id, agent.name)


def _state(agent: Agent) -> dict[str, Any]:
    """What the audit log records of an agent (``record_changes`` keeps what changed)."""
    return {
        "name": agent.name,
        "slug": agent.slug,
        "description": agent.description,
        "icon": agent.icon,
        "instructions": agent.instructions,
        "model_id": str(agent.model_id) if agent.model_id else None,
        "temperature": agent.temperature,
        "max_output_tokens": agent.max_output_tokens,
        "integration_ids": list(agent.integration_ids),
        "tools": dict(agent.tools),
        "starters": list(agent.starters),
        "visibility": str(agent.visibility),
        "group_ids": list(agent.group_ids),
        "project_id": str(agent.project_id) if agent.project_id else None,
        "max_steps": agent.max_steps,
        "status": str(agent.status),
        "is_default": agent.is_default,
    }


def _invalid(code: str, message: str, field: str) -> InvalidInput:
    return InvalidInput(code, message, details=[{"field": field, "message": message}])


# ---- who sees what ----


async def _membership(session: AsyncSession, actor: Actor) -> tuple[uuid.UUID | None, set[uuid.UUID]]:
    """The caller's group and the projects they belong to."""
    if actor.user_id is None:
        return None, set()
    user = await users.get_user(session, actor.account_id, actor.user_id)
    mine = {project.id for project, _ in await projects.list_projects(session, actor)}
    return (user.group_id if user is not None else None), mine


def _visible(agent: Agent, group_id: uuid.UUID | None, project_ids: set[uuid.UUID]) -> bool:
    if agent.project_id is not None and agent.project_id in project_ids:
        return True
    if agent.visibility is Visibility.account:
        return True
    return agent.visibility is Visibility.groups and group_id is not None and str(group_id) in agent.group_ids


async def access_agent(
    session: AsyncSession, actor: Actor, agent_id: uuid.UUID, *, manage: bool = False
) -> Agent:
    """An agent of the caller's account that the caller may see (any, for account admins).

    With ``manage``, the caller must be an account admin or a member of the agent's project.
    Agents the caller may not see (another account's, another project's) are NotFound; ones they
    may see but not change are NotPermitted.
    """
    agent = await repository.get_in_account(session, actor.account_id, agent_id)
    if agent is None:
        raise NotFound("agent_not_found", "No such agent.")
    if actor.can(Permission.agents_manage):
        return agent
    group_id, project_ids = await _membership(session, actor)
    if not _visible(agent, group_id, project_ids):
        raise NotFound("agent_not_found", "No such agent.")
    if manage and (agent.project_id is None or agent.project_id not in project_ids):
        raise NotPermitted(
            "not_agent_manager", "Only administrators and the members of its project can change this agent."
        )
    return agent


async def get_agent(session: AsyncSession, actor: Actor, agent_id: uuid.UUID) -> Agent:
    return await access_agent(session, actor, agent_id)


async def manageable(session: AsyncSession, actor: Actor, agents: Sequence[Agent]) -> set[uuid.UUID]:
    """Which of these agents the caller may change (for pages: show the actions that will work)."""
    if actor.can(Permission.agents_manage):
        return {agent.id for agent in agents}
    _, project_ids = await _membership(session, actor)
    return {agent.id for agent in agents if agent.project_id is not None and agent.project_id in project_ids}


async def list_agents(
    session: AsyncSession,
    actor: Actor,
    *,
    search: str | None = None,
    status: AgentStatus | None = None,
    project_id: uuid.UUID | None = None,
    page: PageParams | None = None,
) -> Page[Agent]:
    """Every agent for account admins; for members those shared with them and their projects'."""
    visible = None
    if not actor.can(Permission.agents_manage):
        group_id, project_ids = await _membership(session, actor)
        visible = repository.visible_to(group_id, project_ids)
    search = (search or "").strip() or None
    stmt = repository.agents_stmt(
        actor.account_id, visible=visible, search=search, status=status, project_id=project_id
    )
    return await paginate(session, stmt, page or PageParams())


async def names_of(session: AsyncSession, account_id: uuid.UUID, ids: Collection[str]) -> dict[str, str]:
    """The names of these agents of the account, by id string (deleted and others' ids: left out,
    so that usage history can show them as "Deleted agent")."""
    return await repository.names(session, account_id, ids)


async def by_slug(session: AsyncSession, account_id: uuid.UUID, slug: str) -> Agent | None:
    """The account's agent of this slug (what callers send as ``model: "agent:<slug>"``), if any."""
    return await repository.by_slug(session, account_id, slug)


async def labels_of(session: AsyncSession, account_id: uuid.UUID, agents: Sequence[Agent]) -> Labels:
    """The names of the models, integrations, groups, projects and creators these agents refer to."""

    def ids(values: Collection[str]) -> set[uuid.UUID]:
        return {uuid.UUID(v) for v in values}

    return Labels(
        models=await providers.model_names_of(
            session, account_id, {a.model_id for a in agents if a.model_id}
        ),
        integrations=await repository.integration_names(
            session, account_id, set().union(*(ids(a.integration_ids) for a in agents))
        ),
        groups=await groups.names_of(session, account_id, set().union(*(ids(a.group_ids) for a in agents))),
        projects=await projects.names_of(session, account_id, {a.project_id for a in agents if a.project_id}),
        users=await users.names_of(session, account_id, {a.created_by for a in agents if a.created_by}),
    )


async def integration_choices(session: AsyncSession, actor: Actor) -> list[Integration]:
    """The account's integrations an agent may be given (for the agent form)."""
    return await repository.integrations(session, actor.account_id)


# ---- checks ----


async def _model(session: AsyncSession, actor: Actor, ref: str) -> Model:
    """The enabled catalogue model ``ref`` names (its id or its name)."""
    model: Model | None = None
    try:
        model = await providers.access_model(session, actor, uuid.UUID(ref))
    except (ValueError, NotFound):
        model = next((m for m in await providers.list_models(session, actor) if m.name == ref), None)
    if model is None or not model.enabled:
        raise _invalid("unknown_model", f"There is no enabled model '{ref}' in the catalogue.", "model")
    return model


async def _tools(
    session: AsyncSession,
    account_id: uuid.UUID,
    integration_ids: list[uuid.UUID],
    tools: dict[uuid.UUID, ToolSelection],
) -> dict[str, dict[str, Any]]:
    """Per integration given, the tools chosen (all of them when none were named)."""
    found = {i.id: i for i in await repository.integrations(session, account_id, integration_ids)}
    for integration_id in integration_ids:
        if integration_id not in found:
            raise _invalid("unknown_integration", "Unknown integration.", "integration_ids")
    for integration_id in tools:
        if integration_id not in found:
            raise _invalid(
                "tools_without_integration",
                "Tools are chosen for an integration the agent is not given.",
                f"tools.{integration_id}",
            )
    chosen: dict[str, dict[str, Any]] = {}
    for integration_id in integration_ids:
        integration = found[integration_id]
        selection = tools.get(integration_id) or ToolSelection(all=True)
        listed = {t.get("name") for t in integration.tools or [] if isinstance(t, dict)}
        if listed:
            for name in [*selection.names, *selection.confirm]:
                if name not in listed:
                    raise _invalid(
                        "unknown_tool", f"{integration.name} has no tool '{name}'.", f"tools.{integration_id}"
                    )
        chosen[str(integration_id)] = {
            "all": selection.all,
            "names": list(selection.names),
            "confirm": list(selection.confirm),
        }
    return chosen


async def _placement(
    session: AsyncSession,
    actor: Actor,
    *,
    project_id: uuid.UUID | None,
    visibility: Visibility | None,
    group_ids: list[uuid.UUID],
) -> tuple[Project | None, Visibility, list[str]]:
    """Where an agent lives (its project, or the account) and who sees it, checked for the caller."""
    admin = actor.can(Permission.agents_manage)
    project: Project | None = None
    if project_id is not None:
        try:
            project = await projects.access_project(session, actor, project_id)
        except NotFound as exc:
            raise _invalid("unknown_project", "Unknown project.", "project_id") from exc
    elif not admin:
        raise NotPermitted(
            "account_agent_not_permitted",
            "Only administrators can create account-wide agents: choose one of your projects.",
        )
    visibility = visibility or (Visibility.project if project is not None else Visibility.account)
    if visibility is Visibility.project and project is None:
        raise _invalid("project_required", "An agent visible to a project needs that project.", "project_id")
    if not admin and visibility is not Visibility.project:
        raise NotPermitted(
            "agent_visibility_not_permitted",
            "Only administrators can share an agent beyond its project.",
        )
    if visibility is not Visibility.groups:
        if group_ids:
            raise _invalid(
                "groups_without_visibility", "Groups are only for visibility 'groups'.", "group_ids"
            )
        return project, visibility, []
    if not group_ids:
        raise _invalid("groups_required", "Choose the groups that may use the agent.", "group_ids")
    known = await groups.names_of(session, actor.account_id, group_ids)
    if any(group_id not in known for group_id in group_ids):
        raise _invalid("unknown_group", "Unknown group.", "group_ids")
    return project, visibility, [str(g) for g in group_ids]


async def _free_slug(session: AsyncSession, account_id: uuid.UUID, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``… : the first slug no agent of the account has."""
    base = base[:SLUG_MAX].strip("-_") or "agent"
    taken = await repository.slugs_like(session, account_id, base)
    for n in itertools.count(1):
        candidate = base if n == 1 else f"{base[: SLUG_MAX - len(str(n)) - 1]}-{n}"
        if candidate in taken:
            continue
        if candidate == base or candidate.startswith(base + "-"):
            return candidate  # ``taken`` holds every slug of this shape
        if await repository.by_slug(session, account_id, candidate) is None:
            return candidate
    raise AssertionError("unreachable")


async def _check_slug(session: AsyncSession, account_id: uuid.UUID, slug: str) -> None:
    if await repository.by_slug(session, account_id, slug) is not None:
        raise Conflict("agent_slug_taken", f"An agent with the slug '{slug}' already exists.")


# ---- writes ----


async def create_agent(session: AsyncSession, actor: Actor, data: AgentCreate) -> Agent:
    project, visibility, group_ids = await _placement(
        session, actor, project_id=data.project_id, visibility=data.visibility, group_ids=data.group_ids
    )
    await policies.require_feature(session, actor, CREATE_FEATURE)
    model = await _model(session, actor, data.model)
    tools = await _tools(session, actor.account_id, data.integration_ids, data.tools)
    await lock_account_chain(session, actor.account_id)  # slugs are checked and taken one at a time
    if data.slug:
        await _check_slug(session, actor.account_id, data.slug)
        slug = data.slug
    else:
        slug = await _free_slug(session, actor.account_id, slug_of(data.name))
    agent = Agent(
        id=uuid.uuid4(),
        account_id=actor.account_id,
        project_id=project.id if project else None,
        name=data.name,
        slug=slug,
        description=data.description,
        icon=data.icon,
        instructions=data.instructions,
        model_id=model.id,
        temperature=data.temperature,
        max_output_tokens=data.max_output_tokens,
        integration_ids=list(tools),
        tools=tools,
        starters=list(data.starters),
        visibility=visibility,
        group_ids=group_ids,
        max_steps=data.max_steps,
        status=AgentStatus.active,
        is_default=False,
        created_by=actor.user_id,
    )
    session.add(agent)
    await session.flush()
    await audit.record(session, actor, "agent.created", target=target(agent), after=_state(agent))
    return agent


def _current_tools(agent: Agent, keep: list[uuid.UUID]) -> dict[uuid.UUID, ToolSelection]:
    """The agent's tool choices of the integrations it keeps."""
    current: dict[uuid.UUID, ToolSelection] = {}
    for key, value in (agent.tools or {}).items():
        integration_id = uuid.UUID(key)
        if integration_id in keep and isinstance(value, dict):
            current[integration_id] = ToolSelection.model_validate(value)
    return current


async def update_agent(session: AsyncSession, actor: Actor, agent_id: uuid.UUID, data: AgentUpdate) -> Agent:
    """Apply a PATCH: only the fields sent change (``temperature``, ``max_output_tokens`` and
    ``project_id`` may be cleared with null)."""
    agent = await access_agent(session, actor, agent_id, manage=True)
    sent = data.model_fields_set
    await lock_account_chain(session, actor.account_id)
    before = _state(agent)
    if sent & {"project_id", "visibility", "group_ids"}:
        project_id = data.project_id if "project_id" in sent else agent.project_id
        visibility = data.visibility if "visibility" in sent else agent.visibility
        if "group_ids" in sent:
            group_ids = data.group_ids or []
        else:
            group_ids = [uuid.UUID(g) for g in agent.group_ids] if visibility is Visibility.groups else []
        if "project_id" in sent and "visibility" not in sent and project_id != agent.project_id:
            visibility = None  # the default of its new place
        project, visibility, checked_groups = await _placement(
            session, actor, project_id=project_id, visibility=visibility, group_ids=group_ids
        )
        new_project = project.id if project else None
        if new_project != agent.project_id:
            agent.is_default = False  # it was the default of its former place
        agent.project_id, agent.visibility, agent.group_ids = new_project, visibility, checked_groups
    if data.slug is not None and data.slug != agent.slug:
        await _check_slug(session, actor.account_id, data.slug)
        agent.slug = data.slug
    if data.model is not None:
        agent.model_id = (await _model(session, actor, data.model)).id
    if sent & {"integration_ids", "tools"}:
        ids = (
            data.integration_ids
            if data.integration_ids is not None
            else [uuid.UUID(i) for i in agent.integration_ids]
        )
        chosen = data.tools if data.tools is not None else _current_tools(agent, ids)
        agent.tools = await _tools(session, actor.account_id, ids, chosen)
        agent.integration_ids = list(agent.tools)
    for field in ("name", "description", "icon", "instructions", "max_steps"):
        value = getattr(data, field)
        if value is not None:
            setattr(agent, field, value)
    if data.starters is not None:
        agent.starters = list(data.starters)
    if "temperature" in sent:
        agent.temperature = data.temperature
    if "max_output_tokens" in sent:
        agent.max_output_tokens = data.max_output_tokens
    await session.flush()
    await audit.record_changes(
        session, actor, "agent.updated", target=target(agent), before=before, after=_state(agent)
    )
    return agent


async def duplicate_agent(session: AsyncSession, actor: Actor, agent_id: uuid.UUID) -> Agent:
    """A copy named "… (copy)" with a slug of its own, active and not a default, in the same place."""
    source = await access_agent(session, actor, agent_id, manage=True)
    await policies.require_feature(session, actor, CREATE_FEATURE)
    await lock_account_chain(session, actor.account_id)
    suffix = " (copy)"
    copy = Agent(
        id=uuid.uuid4(),
        account_id=source.account_id,
        project_id=source.project_id,
        name=source.name[: NAME_MAX - len(suffix)] + suffix,
        slug=await _free_slug(session, actor.account_id, f"{source.slug[: SLUG_MAX - 5]}-copy"),
        description=source.description,
        icon=source.icon,
        instructions=source.instructions,
        model_id=source.model_id,
        temperature=source.temperature,
        max_output_tokens=source.max_output_tokens,
        integration_ids=list(source.integration_ids),
        tools=dict(source.tools),
        starters=list(source.starters),
        visibility=source.visibility,
        group_ids=list(source.group_ids),
        max_steps=source.max_steps,
        status=AgentStatus.active,
        is_default=False,
        created_by=actor.user_id,
    )
    session.add(copy)
    await session.flush()
    after = {**_state(copy), "copied_from": str(source.id)}
    await audit.record(session, actor, "agent.duplicated", target=target(copy), after=after)
    return copy


async def set_default_agent(session: AsyncSession, actor: Actor, agent_id: uuid.UUID) -> Agent:
    """Make the agent the account's default (an account-wide agent) or its project's default; the
    previous default of that place stops being one, in the same transaction. Concurrent calls take
    the account lock and run one after the other, so a place never has two defaults."""
    agent = await access_agent(session, actor, agent_id, manage=True)
    await lock_account_chain(session, actor.account_id)
    await session.refresh(agent)  # as committed before the lock was ours
    if agent.status is not AgentStatus.active:
        raise Conflict("agent_inactive", "An inactive agent cannot be a default: reactivate it first.")
    previous = await repository.clear_default(session, actor.account_id, agent.project_id, keep=agent.id)
    if agent.is_default and not previous:
        return agent
    agent.is_default = True
    await session.flush()
    names = await repository.names(session, actor.account_id, [str(p) for p in previous])
    place = "project" if agent.project_id else "account"
    await audit.record(
        session,
        actor,
        "agent.default_set",
        target=target(agent),
        before={"default": sorted(names.values()) or None, "of": place},
        after={"default": agent.name, "of": place},
    )
    return agent


async def _set_status(session: AsyncSession, actor: Actor, agent_id: uuid.UUID, status: AgentStatus) -> Agent:
    agent = await access_agent(session, actor, agent_id, manage=True)
    if agent.status is status:
        return agent
    await lock_account_chain(session, actor.account_id)
    before = {"status": str(agent.status), "is_default": agent.is_default}
    agent.status = status
    if status is AgentStatus.inactive:
        agent.is_default = False  # a default is an agent people can run
    await session.flush()
    action = "agent.deactivated" if status is AgentStatus.inactive else "agent.reactivated"
    after = {"status": str(agent.status), "is_default": agent.is_default}
    await audit.record(session, actor, action, target=target(agent), before=before, after=after)
    return agent


async def deactivate_agent(session: AsyncSession, actor: Actor, agent_id: uuid.UUID) -> Agent:
    """No new runs (and no longer a default); its conversations stay readable."""
    return await _set_status(session, actor, agent_id, AgentStatus.inactive)


async def reactivate_agent(session: AsyncSession, actor: Actor, agent_id: uuid.UUID) -> Agent:
    return await _set_status(session, actor, agent_id, AgentStatus.active)


async def delete_agent(
    session: AsyncSession, actor: Actor, agent_id: uuid.UUID, *, confirm_name: str
) -> None:
    """Delete the agent once its name is typed exactly. Usage keeps the id: "Deleted agent"."""
    agent = await access_agent(session, actor, agent_id, manage=True)
    if confirm_name != agent.name:
        raise _invalid(
            "confirmation_mismatch", f"Type the agent's name, “{agent.name}”, to delete it.", "confirm"
        )
    await lock_account_chain(session, actor.account_id)
    await audit.record(session, actor, "agent.deleted", target=target(agent), before=_state(agent))
    await session.delete(agent)
    await session.flush()
