from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from cockpit.agents import service
from cockpit.agents.models import Agent, AgentStatus
from cockpit.agents.schemas import NAME_MAX, AgentCreate, AgentList, AgentOut, AgentUpdate, agent_out
from cockpit.auth.dependencies import ApiActor
from cockpit.kit.pagination import PageMeta, PageParams, catalog_page_params
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/agents", tags=["agents"])


async def _out(session: DbSession, agent: Agent) -> AgentOut:
    return agent_out(agent, await service.labels_of(session, agent.account_id, [agent]))


@router.get("", response_model=AgentList)
async def list_agents(
    session: DbSession,
    actor: ApiActor,
    paging: Annotated[PageParams, Depends(catalog_page_params)],
    search: Annotated[str | None, Query(max_length=200)] = None,
    status: AgentStatus | None = None,
    project_id: uuid.UUID | None = None,
) -> AgentList:
    """Every agent for account admins; for members the agents shared with them and their projects'
    (defaults first, then by name, paged). ``search`` looks in names, slugs and descriptions."""
    page = await service.list_agents(
        session, actor, search=search, status=status, project_id=project_id, page=paging
    )
    labels = await service.labels_of(session, actor.account_id, page.items)
    return AgentList(items=[agent_out(a, labels) for a in page.items], meta=PageMeta.of(page))


@router.post("", response_model=AgentOut, status_code=status.HTTP_201_CREATED)
async def create_agent(body: AgentCreate, session: DbSession, actor: ApiActor) -> AgentOut:
    return await _out(session, await service.create_agent(session, actor, body))


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: uuid.UUID, session: DbSession, actor: ApiActor) -> AgentOut:
    return await _out(session, await service.get_agent(session, actor, agent_id))


@router.patch("/{agent_id}", response_model=AgentOut)
async def change_agent(
    agent_id: uuid.UUID, body: AgentUpdate, session: DbSession, actor: ApiActor
) -> AgentOut:
    return await _out(session, await service.update_agent(session, actor, agent_id, body))


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(
    agent_id: uuid.UUID,
    session: DbSession,
    actor: ApiActor,
    confirm: Annotated[str, Query(max_length=NAME_MAX, description="The agent's name, typed exactly")] = "",
) -> Response:
    await service.delete_agent(session, actor, agent_id, confirm_name=confirm)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{agent_id}/deactivate", response_model=AgentOut)
async def deactivate_agent(agent_id: uuid.UUID, session: DbSession, actor: ApiActor) -> AgentOut:
    return await _out(session, await service.deactivate_agent(session, actor, agent_id))


@router.post("/{agent_id}/reactivate", response_model=AgentOut)
async def reactivate_agent(agent_id: uuid.UUID, session: DbSession, actor: ApiActor) -> AgentOut:
    return await _out(session, await service.reactivate_agent(session, actor, agent_id))


@router.post("/{agent_id}/set-default", response_model=AgentOut)
async def set_default_agent(agent_id: uuid.UUID, session: DbSession, actor: ApiActor) -> AgentOut:
    """Make it the account's default (an account-wide agent) or its project's default."""
    return await _out(session, await service.set_default_agent(session, actor, agent_id))


@router.post("/{agent_id}/duplicate", response_model=AgentOut, status_code=status.HTTP_201_CREATED)
async def duplicate_agent(agent_id: uuid.UUID, session: DbSession, actor: ApiActor) -> AgentOut:
    return await _out(session, await service.duplicate_agent(session, actor, agent_id))
