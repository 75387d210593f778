"""Integrations (/api/v1/integrations): MCP servers and OpenAPI services whose tools agents call.

Reading (list, one, tools) is open to every member, so that people can see which tools exist;
changing and testing need ``integrations:manage``. Secrets are accepted and never returned.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.dependencies import ApiActor, require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.events.service import emit
from cockpit.integrations import service
from cockpit.integrations.schemas import (
    IntegrationChange,
    IntegrationCreate,
    IntegrationDeleted,
    IntegrationList,
    IntegrationOut,
    TestResult,
    ToolList,
    ToolOut,
)
from cockpit.integrations.service import TestOutcome
from cockpit.kit.pagination import PageMeta, PageParams, catalog_page_params
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession

router = APIRouter(tags=["integrations"])

Manager = Annotated[Actor, Depends(require(Permission.integrations_manage))]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _announce_failure(
    session: AsyncSession, actor: Actor, integration_id: uuid.UUID, outcome: TestOutcome
) -> None:
    """A failed test announces ``integration.failing``, at most once a day per integration (admins are
    not told again at every test of an integration that stays down)."""
    if outcome.ok:
        return
    integration = await service.access_integration(session, actor, integration_id)
    await emit(
        session,
        actor.account_id,
        "integration.failing",
        {"integration": integration.name, "error": outcome.message},
        actor_id=actor.user_id,
        dedupe_key=f"integration-failing:{integration.id}:{utcnow().date().isoformat()}",
    )


def _auth_dict(auth: Any) -> dict[str, Any]:
    """The auth body as a dict, secrets in clear (for the service to encrypt)."""
    data: dict[str, Any] = auth.model_dump(by_alias=True)
    for key, value in list(data.items()):
        if hasattr(value, "get_secret_value"):
            data[key] = value.get_secret_value()
    return data


@router.get("/integrations", response_model=IntegrationList)
async def list_integrations(
    session: DbSession,
    actor: ApiActor,
    paging: Annotated[PageParams, Depends(catalog_page_params)],
    search: Annotated[str | None, Query(max_length=100)] = None,
    enabled: bool | None = None,
) -> IntegrationList:
    """The account's integrations by name; `search` matches name, identifier and URL."""
    page = await service.list_integrations(session, actor, paging, search=search, enabled=enabled)
    return IntegrationList(items=[IntegrationOut.of(i) for i in page.items], meta=PageMeta.of(page))


@router.post("/integrations", response_model=IntegrationOut, status_code=status.HTTP_201_CREATED)
async def create_integration(
    body: IntegrationCreate, request: Request, session: DbSession, actor: Manager
) -> IntegrationOut:
    """Add an integration. Its secret is stored encrypted and never returned (only its last 4 characters)."""
    integration = await service.create_integration(
        session,
        actor,
        settings=_settings(request),
        name=body.name,
        slug=body.slug,
        description=body.description,
        kind=body.kind,
        transport=body.transport,
        url=body.url,
        openapi_document=body.openapi_document,
        auth=_auth_dict(body.auth),
        price_credits=body.price_credits,
        timeout_seconds=body.timeout_seconds,
        enabled=body.enabled,
    )
    # Its tools are listed at once (agents can use them without a separate test), once the new row
    # is committed: the server asked may be this Cockpit (SQLite has one writer). A failure is kept
    # as the last test's result; the integration stays.
    await session.commit()
    outcome = await service.test_integration(session, actor, integration.id, settings=_settings(request))
    await _announce_failure(session, actor, integration.id, outcome)
    return IntegrationOut.of(integration)


# Where the person's browser comes back to: the console's page, which knows them by their sign-in
# session (a browser carries no API token) and says how it went with a flash message.
CONSOLE_CALLBACK = "/integrations/oauth/callback"


@router.get("/integrations/oauth/callback")
async def oauth_callback(request: Request) -> RedirectResponse:
    """Kept for authorization servers registered with this address: the browser is sent on to the
    console's callback with the same parameters (the code is exchanged there)."""
    query = urlencode([(k, v[:4000]) for k, v in request.query_params.multi_items()][:10])
    return RedirectResponse(f"{CONSOLE_CALLBACK}?{query}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/integrations/{integration_id}", response_model=IntegrationOut)
async def get_integration(integration_id: uuid.UUID, session: DbSession, actor: ApiActor) -> IntegrationOut:
    return IntegrationOut.of(await service.access_integration(session, actor, integration_id))


@router.patch("/integrations/{integration_id}", response_model=IntegrationOut)
async def change_integration(
    integration_id: uuid.UUID, body: IntegrationChange, request: Request, session: DbSession, actor: Manager
) -> IntegrationOut:
    """Change fields; `auth` without its secret keeps the stored one (same type)."""
    changes: dict[str, Any] = {field: getattr(body, field) for field in body.model_fields_set}
    if changes.get("auth") is not None:
        changes["auth"] = _auth_dict(changes["auth"])
    integration = await service.update_integration(
        session, actor, integration_id, settings=_settings(request), changes=changes
    )
    return IntegrationOut.of(integration)


@router.delete("/integrations/{integration_id}", response_model=IntegrationDeleted)
async def delete_integration(
    integration_id: uuid.UUID, session: DbSession, actor: Manager
) -> IntegrationDeleted:
    await service.remove_integration(session, actor, integration_id)
    return IntegrationDeleted(id=integration_id)


@router.post("/integrations/{integration_id}/test", response_model=TestResult)
async def test_integration(
    integration_id: uuid.UUID, request: Request, session: DbSession, actor: Manager
) -> TestResult:
    """List the tools with the stored credentials and keep them; says what failed otherwise."""
    outcome = await service.test_integration(session, actor, integration_id, settings=_settings(request))
    await _announce_failure(session, actor, integration_id, outcome)
    return TestResult(
        ok=outcome.ok,
        message=outcome.message,
        tools=[
            ToolOut(name=t.name, description=t.description, input_schema=t.input_schema)
            for t in outcome.tools
        ],
    )


@router.get("/integrations/{integration_id}/tools", response_model=ToolList)
async def list_tools(integration_id: uuid.UUID, session: DbSession, actor: ApiActor) -> ToolList:
    """The tools found by the last successful test."""
    integration = await service.access_integration(session, actor, integration_id)
    tools = await service.tools_of(session, actor, integration_id)
    return ToolList(
        items=[ToolOut(name=t.name, description=t.description, input_schema=t.input_schema) for t in tools],
        listed_at=integration.tools_listed_at,
    )


@router.get("/integrations/{integration_id}/oauth/connect")
async def oauth_connect(
    integration_id: uuid.UUID, request: Request, session: DbSession, actor: ApiActor
) -> RedirectResponse:
    """Send the person to the service's sign-in page (authorization code with PKCE). They come back
    to the console (signed in there as the same person), which keeps their tokens."""
    settings = _settings(request)
    redirect_uri = settings.base_url.rstrip("/") + CONSOLE_CALLBACK
    url = await service.start_user_connection(
        session, actor, integration_id, redirect_uri=redirect_uri, settings=settings
    )
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


@router.post("/integrations/{integration_id}/oauth/disconnect", status_code=status.HTTP_204_NO_CONTENT)
async def oauth_disconnect(integration_id: uuid.UUID, session: DbSession, actor: ApiActor) -> None:
    await service.disconnect_user(session, actor, integration_id)
