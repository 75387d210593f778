"""Access policies API: /api/v1/policies, /api/v1/policies/defaults, /api/v1/users/{id}/effective-access."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents import service as agents
from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.pagination import PageParams, page_params
from cockpit.kit.web import DbSession
from cockpit.policies import catalogues, service
from cockpit.policies.catalogues import Catalogues
from cockpit.policies.models import ResourceType, Scope
from cockpit.policies.schemas import (
    DefaultsChange,
    DefaultsOut,
    EffectiveAccessOut,
    EffectiveOut,
    PolicyCreate,
    PolicyDeleted,
    PolicyList,
    PolicyOut,
)

router = APIRouter(tags=["access policies"])

Manager = Annotated[Actor, Depends(require(Permission.policies_manage))]
Anyone = Annotated[Actor, Depends(require(Permission.account_read))]


async def catalogues_for(session: AsyncSession, actor: Actor) -> Catalogues:
    """The agents and integrations rules name: every one of the account for an administrator (the
    agents a member may see, for their own effective access)."""
    listed = await agents.list_agents(session, actor, page=PageParams(per_page=catalogues.CATALOGUE_LIMIT))
    return await catalogues.build(session, actor, agents=listed.items)


@router.get("/policies", response_model=PolicyList)
async def list_policies(
    session: DbSession,
    actor: Manager,
    paging: Annotated[PageParams, Depends(page_params)],
    scope: Scope | None = None,
    scope_id: uuid.UUID | None = None,
    resource_type: ResourceType | None = None,
) -> PolicyList:
    """The account's rules: account level first, then groups, then users; newest first within each."""
    page = await service.list_policies(
        session, actor, paging, scope=scope, scope_id=scope_id, resource_type=resource_type,
        catalogues=await catalogues_for(session, actor),
    )  # fmt: skip
    return PolicyList.of(page)


@router.post("/policies", response_model=PolicyOut, status_code=status.HTTP_201_CREATED)
async def create_policy(body: PolicyCreate, session: DbSession, actor: Manager) -> PolicyOut:
    """Allow or deny a model, agent, integration or feature (or all of a kind with `*`) for the
    account, a group or a user. Takes effect on the next request. An agent or integration is named
    by its slug or its id and stored by slug; one the account does not have is refused (422
    `unknown_agent`, `unknown_integration`)."""
    row = await service.create_policy(
        session, actor, scope=body.scope, scope_id=body.scope_id, resource_type=body.resource_type,
        resource=body.resource, effect=body.effect, note=body.note,
        catalogues=await catalogues_for(session, actor),
    )  # fmt: skip
    return PolicyOut.of(row)


@router.get("/policies/defaults", response_model=DefaultsOut)
async def get_defaults(session: DbSession, actor: Manager) -> DefaultsOut:
    """What applies when no rule does, per kind; and whether owners and admins are exempt."""
    return DefaultsOut.of(await service.get_defaults(session, actor))


@router.patch("/policies/defaults", response_model=DefaultsOut)
async def change_defaults(body: DefaultsChange, session: DbSession, actor: Manager) -> DefaultsOut:
    defaults = await service.change_defaults(
        session, actor, model=body.model, agent=body.agent, integration=body.integration,
        feature=body.feature, admins_exempt=body.admins_exempt,
    )  # fmt: skip
    return DefaultsOut.of(defaults)


@router.get("/policies/{policy_id}", response_model=PolicyOut)
async def get_policy(policy_id: uuid.UUID, session: DbSession, actor: Manager) -> PolicyOut:
    row = await service.get_policy(session, actor, policy_id, catalogues=await catalogues_for(session, actor))
    return PolicyOut.of(row)


@router.delete("/policies/{policy_id}", response_model=PolicyDeleted)
async def delete_policy(policy_id: uuid.UUID, session: DbSession, actor: Manager) -> PolicyDeleted:
    await service.delete_policy(session, actor, policy_id, catalogues=await catalogues_for(session, actor))
    return PolicyDeleted(id=policy_id)


@router.get("/users/{user_id}/effective-access", response_model=EffectiveAccessOut)
async def effective_access(
    user_id: uuid.UUID,
    session: DbSession,
    actor: Anyone,
    resource_type: ResourceType | None = None,
    resource: str | None = None,
) -> EffectiveAccessOut:
    """For every model, agent, integration and feature (or the ones asked for): allowed or denied,
    and which rule decided it (or the default). Agents and integrations by name; a rule's agent or
    integration that no longer exists as "Deleted agent" ("Deleted integration"). Administrators ask
    about anyone, users about themselves."""
    user, rows = await service.effective_access(
        session, actor, user_id, resource_type=resource_type, resource=resource,
        catalogues=await catalogues_for(session, actor),
    )  # fmt: skip
    return EffectiveAccessOut(user_id=user.id, email=user.email, items=[EffectiveOut.of(r) for r in rows])
