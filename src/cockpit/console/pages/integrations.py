"""Integrations: MCP servers and OpenAPI services agents may call.

Every member sees the catalogue (which tools exist) and connects their own account to the
integrations that sign in per person (OAuth 2.0, authorization code); administrators
(``integrations:manage``) add, edit, test, enable and remove them."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents import service as agents
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.console.web import SignedIn, Viewer, discard_changes, page_requires, path_id, redirect, render
from cockpit.events.service import emit
from cockpit.integrations import service
from cockpit.integrations.models import AuthType, Integration, IntegrationKind, Transport
from cockpit.integrations.schemas import IntegrationChange, IntegrationCreate
from cockpit.integrations.service import TestOutcome
from cockpit.kit.errors import CockpitError, InvalidInput
from cockpit.kit.pagination import PageParams
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/integrations")

ManageViewer = Annotated[Viewer, Depends(page_requires(Permission.integrations_manage))]
Param = Annotated[str, Query(max_length=4000)]
CALLBACK_PATH = "/integrations/oauth/callback"
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
LABELS = {
    "name": "Name",
    "slug": "Identifier",
    "description": "Description",
    "kind": "Kind",
    "transport": "Transport",
    "url": "URL",
    "openapi_document": "OpenAPI document",
    "timeout_seconds": "Timeout",
    "price_credits": "Credits per call",
    "auth_type": "Authentication",
}
# What the schema's messages say in a form's words, for the fields where they are not clear enough.
MESSAGES = {
    "slug": "Lowercase letters, digits, - and _ only (at most 100).",
    "timeout_seconds": "A whole number of seconds from 1 to 300.",
    "price_credits": "A number of credits, at least 0, with at most 6 decimals.",
}
M = TypeVar("M", bound=BaseModel)
MAX_AGENT_PAGES = 50  # 10,000 agents: the removal warning does not page through more


def _id(value: str) -> uuid.UUID:
    return path_id(value, "integration_not_found", "No such integration.")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# ---- the form ----


def _field(loc: tuple[int | str, ...]) -> str:
    """The form field a validation error belongs to: ``("auth", "bearer", "token")`` → ``auth_token``."""
    parts = [str(p) for p in loc]
    if not parts:
        return ""
    if parts[0] == "auth":
        return "auth_" + parts[2] if len(parts) > 2 else "auth_type"
    return parts[0]


def _invalid(exc: ValidationError) -> InvalidInput:
    details = []
    for error in exc.errors():
        field = _field(tuple(error["loc"]))
        message = MESSAGES.get(field) or str(error["msg"]).removeprefix("Value error, ")
        details.append({"field": field, "message": message[:300]})
    first = details[0] if details else {"field": "", "message": "The form is not valid."}
    label = LABELS.get(first["field"]) or first["field"].removeprefix("auth_").replace("_", " ").capitalize()
    message = f"{label}: {first['message']}" if label else first["message"]
    return InvalidInput("invalid_input", message, details=details)


def _auth(form: dict[str, str]) -> dict[str, Any]:
    auth: dict[str, Any] = {"type": form.get("auth_type") or "none"}
    for key in AUTH_FIELDS:
        value = form.get(f"auth_{key}", "").strip()
        if value:
            auth[key] = value
    return auth


def _common(form: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": form.get("name", ""),
        "url": form.get("url", ""),
        "description": form.get("description", ""),
        "auth": _auth(form),
        "timeout_seconds": form.get("timeout_seconds", "").strip() or 30,
        "price_credits": form.get("price_credits", "").strip() or "0",
    }
    if form.get("slug", "").strip():
        data["slug"] = form["slug"].strip()
    if form.get("transport"):
        data["transport"] = form["transport"]
    if form.get("openapi_document", "").strip():
        try:
            data["openapi_document"] = json.loads(form["openapi_document"])
        except ValueError:
            message = "The OpenAPI document is not valid JSON."
            raise InvalidInput(
                "invalid_openapi_document",
                message,
                details=[{"field": "openapi_document", "message": message}],
            ) from None
    return data


def _parsed(schema: type[M], data: dict[str, Any]) -> M:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _plain_auth(auth: BaseModel) -> dict[str, Any]:
    """The auth body as a dict, secrets in clear (for the service to encrypt)."""
    data: dict[str, Any] = auth.model_dump(by_alias=True)
    for key, value in list(data.items()):
        if hasattr(value, "get_secret_value"):
            data[key] = value.get_secret_value()
    return data


def _errors(exc: CockpitError) -> dict[str, str]:
    """Form field → message, to show each next to its field (the service names ``auth.token``)."""
    errors: dict[str, str] = {}
    for detail in exc.details or []:
        field = str(detail.get("field", "")).replace("auth.", "auth_")
        if field:
            errors.setdefault(field, str(detail.get("message", "")))
    return errors


def _shown(form: dict[str, str]) -> dict[str, str]:
    """What a form shows again after an error: never the secrets (typed again), nor the document."""
    shown = {k: v[:2000] for k, v in form.items() if k.removeprefix("auth_") not in SECRET_FORM_FIELDS}
    shown.pop("openapi_document", None)
    shown.pop("csrf_token", None)
    return shown


async def _form(request: Request) -> dict[str, str]:
    raw = await request.form()
    return {k: v for k, v in raw.items() if isinstance(v, str)}


def _choices() -> dict[str, Any]:
    return {"kinds": list(IntegrationKind), "auth_types": list(AuthType), "transports": list(Transport)}


# ---- the list ----


async def _agents_using(session: DbSession, viewer: Viewer) -> dict[str, list[str]]:
    """Integration id → the names of the agents that use it (for the removal warning). Read through
    the agents' service: the integrations package sits below agents and cannot ask itself."""
    using: dict[str, list[str]] = {}
    for number in range(1, MAX_AGENT_PAGES + 1):
        found = await agents.list_agents(session, viewer.actor, page=PageParams(page=number, per_page=200))
        for agent in found.items:
            for integration_id in agent.integration_ids or []:
                using.setdefault(str(integration_id), []).append(agent.name)
        if not found.has_next:
            break
    return {key: sorted(names, key=str.lower) for key, names in using.items()}


async def _index(
    request: Request, session: DbSession, viewer: Viewer, *, status_code: int = 200, **extra: Any
) -> Response:
    page = await service.list_integrations(session, viewer.actor, PageParams(page=1, per_page=200))
    can_manage = viewer.can(Permission.integrations_manage)
    connected = {
        str(i.id)
        for i in page.items
        if i.auth_type is AuthType.oauth2_user and await service.user_connected(session, viewer.actor, i)
    }
    return render(
        request,
        "integrations/index.html",
        {
            "integrations": page.items,
            "can_manage": can_manage,
            "connected": connected,
            "agents_using": await _agents_using(session, viewer) if can_manage else {},
            "create_errors": {},
            **_choices(),
            **extra,
        },
        status_code=status_code,
    )


@router.get("")
async def integrations_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    return await _index(request, session, viewer)


@router.post("")
async def create_integration(request: Request, session: DbSession, viewer: ManageViewer) -> Response:
    form = await _form(request)
    try:
        data = _common(form) | {"kind": form.get("kind") or "mcp"}
        body = _parsed(IntegrationCreate, data)
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
            auth=_plain_auth(body.auth),
            price_credits=body.price_credits,
            timeout_seconds=body.timeout_seconds,
            enabled=True,
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _index(
            request,
            session,
            viewer,
            status_code=exc.status,
            create_error=exc.message,
            create_errors=_errors(exc),
            create_form=_shown(form),
        )
    # Its tools are listed at once (after the commit: the server may be this Cockpit, and SQLite has
    # one writer); what the listing said is shown with the integration.
    await session.commit()
    outcome = await service.test_integration(
        session, viewer.actor, integration.id, settings=_settings(request)
    )
    await _announce_failure(session, viewer.actor, integration.id, outcome)
    return redirect(
        request, "/integrations", message=f"Integration “{integration.name}” added. {outcome.message}."
    )


# ---- one person's account (OAuth 2.0, authorization code with PKCE) ----
# Declared before the routes of one integration, whose first segment is its id.


@router.get("/oauth/callback")
async def oauth_callback(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    state: Param = "",
    code: Param = "",
    error: Annotated[str, Query(max_length=200)] = "",
    error_description: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    """Where the service sends the person back: their code becomes their tokens (kept encrypted)."""
    if error or not code or not state:
        reason = error_description or error or "no authorization code came back"
        return redirect(
            request,
            "/integrations",
            message=f"Your account was not connected: the service said “{reason[:200]}”. Try again.",
            kind="error",
        )
    try:
        integration = await service.finish_user_connection(
            session, viewer.actor, state, code, settings=_settings(request)
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(
            request, "/integrations", message=f"Your account was not connected: {exc.message}", kind="error"
        )
    return redirect(request, "/integrations", message=f"Your account is connected to {integration.name}.")


@router.post("/{integration_id}/connect")
async def connect_account(
    request: Request, session: DbSession, viewer: SignedIn, integration_id: str
) -> Response:
    settings = _settings(request)
    try:
        url = await service.start_user_connection(
            session,
            viewer.actor,
            _id(integration_id),
            redirect_uri=settings.base_url.rstrip("/") + CALLBACK_PATH,
            settings=settings,
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, "/integrations", message=exc.message, kind="error")
    # To the service's sign-in page (another site: not an htmx redirect).
    return RedirectResponse(url, status_code=303)


@router.post("/{integration_id}/disconnect")
async def disconnect_account(
    request: Request, session: DbSession, viewer: SignedIn, integration_id: str
) -> Response:
    integration = await service.access_integration(session, viewer.actor, _id(integration_id))
    name = integration.name
    try:
        await service.disconnect_user(session, viewer.actor, integration.id)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, "/integrations", message=exc.message, kind="error")
    return redirect(request, "/integrations", message=f"Your account is no longer connected to {name}.")


# ---- editing ----


def _values_of(integration: Integration) -> dict[str, Any]:
    """What the edit form shows of a stored integration (never the secret)."""
    auth = integration.auth_settings or {}
    values: dict[str, Any] = {
        "name": integration.name,
        "slug": integration.slug,
        "description": integration.description,
        "transport": integration.transport.value,
        "url": integration.url,
        "timeout_seconds": str(integration.timeout_seconds),
        "price_credits": service.state_of(integration)["price_credits"],
        "auth_type": integration.auth_type.value,
    }
    for key in AUTH_FIELDS:
        if key not in SECRET_FORM_FIELDS and auth.get(key) is not None:
            values[f"auth_{key}"] = str(auth[key])
    return values


async def _edit_page(
    request: Request,
    integration: Integration,
    values: dict[str, Any],
    *,
    error: CockpitError | None = None,
) -> Response:
    secret_field = service.SECRET_FIELDS.get(integration.auth_type)
    context = {
        "integration": integration,
        "f": values,
        "error": error.message if error else None,
        "errors": _errors(error) if error else {},
        # The form field whose secret is stored (shown as •••• and its last 4, blank keeps it).
        "stored_secret": f"auth_{secret_field}" if secret_field and integration.secret_encrypted else None,
        **_choices(),
    }
    return render(request, "integrations/edit.html", context, status_code=error.status if error else 200)


@router.get("/{integration_id}/edit")
async def edit_integration_page(
    request: Request, session: DbSession, viewer: ManageViewer, integration_id: str
) -> Response:
    integration = await service.access_integration(session, viewer.actor, _id(integration_id))
    return await _edit_page(request, integration, _values_of(integration))


@router.post("/{integration_id}/edit")
async def edit_integration(
    request: Request, session: DbSession, viewer: ManageViewer, integration_id: str
) -> Response:
    integration = await service.access_integration(session, viewer.actor, _id(integration_id))
    known_id = integration.id  # read before a rollback expires the object
    form = await _form(request)
    try:
        data = _common(form)
        data["slug"] = data.get("slug") or integration.slug
        body = _parsed(IntegrationChange, data)
        changes: dict[str, Any] = {field: getattr(body, field) for field in body.model_fields_set}
        if body.auth is not None:
            changes["auth"] = _plain_auth(body.auth)
        integration = await service.update_integration(
            session, viewer.actor, integration.id, settings=_settings(request), changes=changes
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        integration = await service.access_integration(session, viewer.actor, known_id)
        return await _edit_page(request, integration, _shown(form), error=exc)
    return redirect(request, "/integrations", message=f"Integration “{integration.name}” saved.")


# ---- actions ----
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


@router.post("/{integration_id}/test")
async def test_integration(
    request: Request, session: DbSession, viewer: ManageViewer, integration_id: str
) -> Response:
    integration = await service.access_integration(session, viewer.actor, _id(integration_id))
    name = integration.name
    outcome = await service.test_integration(
        session, viewer.actor, integration.id, settings=_settings(request)
    )
    await _announce_failure(session, viewer.actor, integration.id, outcome)
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
