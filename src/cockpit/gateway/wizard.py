"""The agent wizard, for the REST API and the console: a draft from a plain description (a metered
model call attributed to the person) and a preview run of an unsaved agent configuration (its model
and tool calls metered like any run)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from cockpit.agents.service import CREATE_FEATURE
from cockpit.authz.actor import Actor
from cockpit.gateway import drafting
from cockpit.gateway.directory import AgentSpec, Caller
from cockpit.gateway.errors import GatewayError
from cockpit.gateway.internal import cockpit_error, complete_for, person
from cockpit.gateway.service import Gateway
from cockpit.kit.errors import InvalidInput, NotFound
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.policies import service as policies
from cockpit.users.models import User


class DraftIn(InputSchema):
    description: Annotated[str, Field(min_length=10, max_length=4000)]
    model: Annotated[str | None, Field(max_length=200)] = None


class DraftOut(OutputSchema):
    name: str
    slug: str
    description: str
    icon: str
    instructions: str
    starters: list[str]
    model: str
    integration_ids: list[str]
    tools: dict[str, dict[str, Any]]


class PreviewMessage(InputSchema):
    role: Annotated[str, Field(pattern="^(user|assistant)$")]
    content: Annotated[str, Field(max_length=20_000)]


class PreviewIn(InputSchema):
    model: Annotated[str, Field(min_length=1, max_length=200)]
    instructions: Annotated[str, Field(max_length=20_000)] = ""
    integration_ids: Annotated[list[uuid.UUID], Field(max_length=50)] = []
    tools: dict[str, dict[str, Any]] = {}
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    max_output_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    max_steps: Annotated[int, Field(ge=1, le=20)] = 5
    messages: Annotated[list[PreviewMessage], Field(min_length=1, max_length=50)]


async def caller_of(session: AsyncSession, actor: Actor) -> Caller:
    if actor.user_id is None or actor.role is None:
        raise NotFound("user_not_found", "Only a person can use the wizard.")
    # The request's sign-in has usually loaded the person already (no round trip then).
    user = await session.get(User, actor.user_id)
    if user is None or user.account_id != actor.account_id:
        raise NotFound("user_not_found", "No such user.")
    return person(
        account_id=user.account_id, user_id=user.id, email=user.email, role=user.role, group_id=user.group_id
    )


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def draft(
    request: Request, session: AsyncSession, actor: Actor, description: str, model: str | None
) -> DraftOut:
    """Shared by the API and the console's wizard."""
    await policies.require_feature(session, actor, CREATE_FEATURE)
    caller = await caller_of(session, actor)
    await session.commit()  # the gateway uses its own sessions (SQLite: one writer at a time)
    try:
        found = await drafting.draft_agent(_gateway(request), caller, description=description, model=model)
    except GatewayError as exc:
        raise cockpit_error(exc) from None
    return DraftOut(
        name=found.name, slug=found.slug, description=found.description, icon=found.icon,
        instructions=found.instructions, starters=found.starters, model=found.model,
        integration_ids=list(found.tools),
        tools={iid: {"all": False, "names": names, "confirm": []} for iid, names in found.tools.items()},
    )  # fmt: skip


async def preview(request: Request, session: AsyncSession, actor: Actor, body: PreviewIn) -> dict[str, Any]:
    """Run an unsaved agent configuration (the wizard's preview chat)."""
    await policies.require_feature(session, actor, CREATE_FEATURE)
    caller = await caller_of(session, actor)
    await session.commit()  # the gateway uses its own sessions (SQLite: one writer at a time)
    gateway = _gateway(request)
    catalog = await gateway.directory.catalog(actor.account_id)
    route = catalog.routes.get(body.model)
    if route is None:
        raise InvalidInput("unknown_model", f"There is no model '{body.model[:100]}' in the catalogue.")
    spec = AgentSpec(
        id=uuid.uuid4(), slug="preview", name="Preview", active=True, project_id=None,
        model_id=route.model_id, instructions=body.instructions, temperature=body.temperature,
        max_output_tokens=body.max_output_tokens,
        integration_ids=tuple(body.integration_ids), tools=body.tools, visibility="account",
        group_ids=frozenset(), max_steps=body.max_steps,
    )  # fmt: skip
    messages = [m.model_dump() for m in body.messages]
    try:
        return await complete_for(
            gateway, caller, {"model": "agent:preview", "messages": messages}, agent=spec
        )
    except GatewayError as exc:
        raise cockpit_error(exc) from None
