from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status

from cockpit.auth.dependencies import ApiActor, require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.pagination import PageMeta, PageParams, catalog_page_params
from cockpit.kit.web import DbSession
from cockpit.providers import service
from cockpit.providers.schemas import (
    ConnectionTest,
    ModelChange,
    ModelCreate,
    ModelDeleted,
    ModelList,
    ModelOut,
    ProviderChange,
    ProviderCreate,
    ProviderDeleted,
    ProviderList,
    ProviderOut,
)

router = APIRouter(tags=["providers"])

Manager = Annotated[Actor, Depends(require(Permission.providers_manage))]


def _secret_key(request: Request) -> str:
    key: str = request.app.state.secret_key
    return key


def _allow_private(request: Request) -> bool:
    return bool(request.app.state.settings.allow_private_upstreams)


# ---- providers ----


@router.get("/providers", response_model=ProviderList)
async def list_providers(
    session: DbSession, actor: Manager, paging: Annotated[PageParams, Depends(catalog_page_params)]
) -> ProviderList:
    page = await service.page_providers(session, actor, paging)
    return ProviderList(items=[ProviderOut.of(p) for p in page.items], meta=PageMeta.of(page))


@router.post("/providers", response_model=ProviderOut, status_code=status.HTTP_201_CREATED)
async def create_provider(
    body: ProviderCreate, request: Request, session: DbSession, actor: Manager
) -> ProviderOut:
    """Add a provider. The API key is stored encrypted and never returned (only its last 4 characters)."""
    provider = await service.create_provider(
        session,
        actor,
        name=body.name,
        kind=body.kind,
        base_url=body.base_url,
        api_key=body.api_key.get_secret_value() if body.api_key is not None else None,
        settings=body.settings,
        secret_key=_secret_key(request),
        allow_private=_allow_private(request),
    )
    return ProviderOut.of(provider)


@router.get("/providers/{provider_id}", response_model=ProviderOut)
async def get_provider(provider_id: uuid.UUID, session: DbSession, actor: Manager) -> ProviderOut:
    return ProviderOut.of(await service.access_provider(session, actor, provider_id))


@router.patch("/providers/{provider_id}", response_model=ProviderOut)
async def change_provider(
    provider_id: uuid.UUID, body: ProviderChange, request: Request, session: DbSession, actor: Manager
) -> ProviderOut:
    """Change fields; `api_key: null` removes the stored key, a left-out `api_key` keeps it."""
    changes: dict[str, Any] = {field: getattr(body, field) for field in body.model_fields_set}
    if "api_key" in changes and changes["api_key"] is not None:
        changes["api_key"] = changes["api_key"].get_secret_value()
    provider = await service.edit_provider(
        session,
        actor,
        provider_id,
        changes=changes,
        secret_key=_secret_key(request),
        allow_private=_allow_private(request),
    )
    return ProviderOut.of(provider)


@router.delete("/providers/{provider_id}", response_model=ProviderDeleted)
async def delete_provider(provider_id: uuid.UUID, session: DbSession, actor: Manager) -> ProviderDeleted:
    """Delete a provider and its models."""
    return ProviderDeleted(
        id=provider_id, models_deleted=await service.delete_provider(session, actor, provider_id)
    )


@router.post("/providers/{provider_id}/test", response_model=ConnectionTest)
async def test_provider(
    provider_id: uuid.UUID, request: Request, session: DbSession, actor: Manager
) -> ConnectionTest:
    """Ask the upstream for its model list with the stored key; reports success or the upstream's error."""
    ok, code, message = await service.check_connection(
        session, actor, provider_id, secret_key=_secret_key(request), client=request.app.state.gateway.client
    )
    return ConnectionTest(ok=ok, status=code, message=message)


# ---- models ----


@router.get("/models", response_model=ModelList)
async def list_models(
    session: DbSession, actor: ApiActor, paging: Annotated[PageParams, Depends(catalog_page_params)]
) -> ModelList:
    """The model catalogue: enabled models; administrators also see disabled ones (by name, paged)."""
    page = await service.page_models(session, actor, paging)
    return ModelList(items=[ModelOut.of(m) for m in page.items], meta=PageMeta.of(page))


@router.post("/models", response_model=ModelOut, status_code=status.HTTP_201_CREATED)
async def create_model(body: ModelCreate, session: DbSession, actor: Manager) -> ModelOut:
    """Add a model; prices left out are prefilled from genai-prices when it knows the upstream model."""
    model = await service.create_model(session, actor, **body.model_dump())
    return ModelOut.of(model)


@router.get("/models/{model_id}", response_model=ModelOut)
async def get_model(model_id: uuid.UUID, session: DbSession, actor: ApiActor) -> ModelOut:
    return ModelOut.of(await service.access_model(session, actor, model_id))


@router.patch("/models/{model_id}", response_model=ModelOut)
async def change_model(
    model_id: uuid.UUID, body: ModelChange, session: DbSession, actor: Manager
) -> ModelOut:
    changes = {field: getattr(body, field) for field in body.model_fields_set}
    return ModelOut.of(await service.edit_model(session, actor, model_id, changes=changes))


@router.delete("/models/{model_id}", response_model=ModelDeleted)
async def delete_model(model_id: uuid.UUID, session: DbSession, actor: Manager) -> ModelDeleted:
    await service.delete_model(session, actor, model_id)
    return ModelDeleted(id=model_id)
