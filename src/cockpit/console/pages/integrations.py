"""Integrations: MCP servers and OpenAPI services agents may call (list, add, test, enable, remove)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.console.web import Viewer, discard_changes, page_requires, redirect, render
from cockpit.integrations import service
from cockpit.integrations.models import AuthType, IntegrationKind, Transport
from cockpit.integrations.schemas import IntegrationCreate
from cockpit.kit.errors import CockpitError, InvalidInput, NotFound
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/integrations")

ManageViewer = Annotated[Viewer, Depends(page_requires(Permission.integrations_manage))]
Text = Annotated[str, Form(max_length=2000)]
Document = Annotated[str, Form(max_length=2 * 1024 * 1024)]
AUTH_FIELDS = (
    "in",
    "name",
    "value",
    "token",
    "username",
    "password",
    "token_url",
    "authorize_url",
    "client_id",
    "client_secret",
    "scope",
)
SECRET_FORM_FIELDS = ("value", "token", "password", "client_secret")


def _id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound("integration_not_found", "No such integration.") from exc


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _body(form: dict[str, str]) -> IntegrationCreate:
    """The form as the API's create body (the same validation, the same messages)."""
    auth: dict[str, Any] = {"type": form.get("auth_type") or "none"}
    for key in AUTH_FIELDS:
        value = form.get(f"auth_{key}", "").strip()
        if value:
            auth[key] = value
    data: dict[str, Any] = {
        "name": form.get("name", ""),
        "kind": form.get("kind") or "mcp",
        "url": form.get("url", ""),
        "description": form.get("description", ""),
        "auth": auth,
        "timeout_seconds": form.get("timeout_seconds") or 30,
        "price_credits": form.get("price_credits") or "0",
    }
    if form.get("slug"):
        data["slug"] = form["slug"]
    if form.get("transport"):
        data["transport"] = form["transport"]
    if form.get("openapi_document", "").strip():
        try:
            data["openapi_document"] = json.loads(form["openapi_document"])
        except ValueError:
            raise InvalidInput(
                "invalid_openapi_document", "The OpenAPI document is not valid JSON."
            ) from None
    try:
        Decimal(str(data["price_credits"]))
    except InvalidOperation:
        raise InvalidInput("invalid_price", "The price must be a number of credits.") from None
    try:
        return IntegrationCreate.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][-2:] if not str(p).startswith("Auth"))
        raise InvalidInput("invalid_input", f"{where}: {first['msg']}") from None


async def _index(
    request: Request, session: DbSession, viewer: Viewer, *, status_code: int = 200, **extra: Any
) -> Response:
    page = await service.list_integrations(session, viewer.actor, PageParams(page=1, per_page=200))
    return render(
        request,
        "integrations/index.html",
        {
            "integrations": page.items,
            "kinds": list(IntegrationKind),
            "auth_types": list(AuthType),
            "transports": list(Transport),
            **extra,
        },
        status_code=status_code,
    )


@router.get("")
async def integrations_page(request: Request, session: DbSession, viewer: ManageViewer) -> Response:
    return await _index(request, session, viewer)


@router.post("")
async def create_integration(request: Request, session: DbSession, viewer: ManageViewer) -> Response:
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    try:
        body = _body(form)
        auth = body.auth.model_dump(by_alias=True)
        for key, value in list(auth.items()):
            if hasattr(value, "get_secret_value"):
                auth[key] = value.get_secret_value()
        integration = await service.create_integration(
            session,
            viewer.actor,
            settings=_settings(request),
            name=body.name,
            slug=body.slug,
            description=body.description,
            kind=body.kind,
            transport=body.transport,
            url=body.url,
            openapi_document=body.openapi_document,
            auth=auth,
            price_credits=body.price_credits,
            timeout_seconds=body.timeout_seconds,
            enabled=True,
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        # Never the secrets: they are typed again.
        shown = {k: v[:2000] for k, v in form.items() if k.removeprefix("auth_") not in SECRET_FORM_FIELDS}
        shown.pop("openapi_document", None)
        return await _index(
            request, session, viewer, status_code=exc.status, create_error=exc.message, create_form=shown
        )
    return redirect(request, "/integrations", message=f"Integration “{integration.name}” added.")


@router.post("/{integration_id}/test")
async def test_integration(
    request: Request, session: DbSession, viewer: ManageViewer, integration_id: str
) -> Response:
    integration = await service.access_integration(session, viewer.actor, _id(integration_id))
    name = integration.name
    outcome = await service.test_integration(
        session, viewer.actor, integration.id, settings=_settings(request)
    )
    if outcome.ok:
        names = ", ".join(t.name for t in outcome.tools[:20])
        return redirect(
            request, "/integrations", message=f"{name}: {outcome.message}" + (f" ({names})" if names else "")
        )
    return redirect(request, "/integrations", message=f"{name}: {outcome.message}", kind="error")


@router.post("/{integration_id}/toggle")
async def toggle_integration(
    request: Request, session: DbSession, viewer: ManageViewer, integration_id: str
) -> Response:
    integration = await service.access_integration(session, viewer.actor, _id(integration_id))
    integration = await service.update_integration(
        session,
        viewer.actor,
        integration.id,
        settings=_settings(request),
        changes={"enabled": not integration.enabled},
    )
    state = "enabled" if integration.enabled else "disabled"
    return redirect(request, "/integrations", message=f"Integration “{integration.name}” {state}.")


@router.post("/{integration_id}/delete")
async def delete_integration(
    request: Request, session: DbSession, viewer: ManageViewer, integration_id: str
) -> Response:
    integration = await service.access_integration(session, viewer.actor, _id(integration_id))
    name = integration.name
    await service.remove_integration(session, viewer.actor, integration.id)
    return redirect(request, "/integrations", message=f"Integration “{name}” removed.")
