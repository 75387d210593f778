"""Models: the account's providers (keys, connection test) and the model catalogue routed to them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from cockpit.authz.permissions import Permission
from cockpit.console.formatting import without_separators
from cockpit.console.web import Viewer, discard_changes, page_requires, redirect, render
from cockpit.kit.errors import CockpitError, InvalidInput, NotFound
from cockpit.kit.web import DbSession
from cockpit.providers import service
from cockpit.providers.models import Capability, ProviderKind
from cockpit.providers.schemas import Price, price_text

router = APIRouter(prefix="/models")

ManageViewer = Annotated[Viewer, Depends(page_requires(Permission.providers_manage))]
Text = Annotated[str, Form(max_length=1000)]
Flag = Annotated[str, Form(max_length=10)]

_PRICE = TypeAdapter(Price)
PRICE_LABELS = {
    "input_price_per_million": "input",
    "output_price_per_million": "output",
    "cached_input_price_per_million": "cached input",
}
MAX_TOKENS = 100_000_000


def _id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound(f"{what}_not_found", f"No such {what}.") from exc


def _secret_key(request: Request) -> str:
    key: str = request.app.state.secret_key
    return key


def _allow_private(request: Request) -> bool:
    return bool(request.app.state.settings.allow_private_upstreams)


def _price(field: str, value: str) -> Decimal | None:
    text = value.strip()
    if not text:
        return None
    try:
        return _PRICE.validate_python(without_separators(text))  # "1,000.50" as people type it
    except ValidationError:
        message = (
            f"The {PRICE_LABELS[field]} price must be a number of USD per million tokens, "
            "at least 0, with at most 6 decimal places."
        )
        raise InvalidInput("invalid_price", message, details=[{"field": field, "message": message}]) from None


def _tokens(field: str, label: str, value: str) -> int | None:
    text = without_separators(value)
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_TOKENS:
        message = f"The {label} must be a whole number of tokens between 1 and {MAX_TOKENS:,}."
        raise InvalidInput("invalid_input", message, details=[{"field": field, "message": message}])
    return int(text)


def _capabilities(values: list[str] | None) -> list[Capability]:
    try:
        return [Capability(v) for v in values or []]
    except ValueError as exc:
        raise InvalidInput("invalid_input", "Unknown capability.") from exc


Short = Annotated[str, Form(max_length=100)]


@dataclass(frozen=True)
class ModelForm:
    """The fields of the add and edit model forms, as sent."""

    name: str
    provider_id: str
    upstream_model: str
    input_price: str
    output_price: str
    cached_price: str
    context_window: str
    max_output_tokens: str
    capabilities: list[str] | None
    enabled: str

    def provider(self) -> uuid.UUID:
        try:
            return uuid.UUID(self.provider_id)
        except ValueError:
            raise InvalidInput("unknown_provider", "Choose a provider.") from None

    def fields(self) -> dict[str, Any]:
        """The parsed fields shared by create and edit (InvalidInput on a bad value)."""
        return {
            "upstream_model": self.upstream_model,
            "input_price_per_million": _price("input_price_per_million", self.input_price),
            "output_price_per_million": _price("output_price_per_million", self.output_price),
            "cached_input_price_per_million": _price("cached_input_price_per_million", self.cached_price),
            "context_window": _tokens("context_window", "context window", self.context_window),
            "max_output_tokens": _tokens("max_output_tokens", "maximum output", self.max_output_tokens),
            "capabilities": _capabilities(self.capabilities),
        }

    def shown(self) -> dict[str, Any]:
        """What the form sent, to show it again after an error."""
        return {
            "name": self.name[:200],
            "provider_id": self.provider_id[:40],
            "upstream_model": self.upstream_model[:200],
            "input_price": self.input_price[:40],
            "output_price": self.output_price[:40],
            "cached_price": self.cached_price[:40],
            "context_window": self.context_window[:20],
            "max_output_tokens": self.max_output_tokens[:20],
            "capabilities": [c for c in self.capabilities or [] if c in Capability.__members__],
            "enabled": bool(self.enabled),
        }


def _model_form(
    name: Text = "",
    provider_id: Short = "",
    upstream_model: Text = "",
    input_price: Short = "",
    output_price: Short = "",
    cached_price: Short = "",
    context_window: Short = "",
    max_output_tokens: Short = "",
    capabilities: Annotated[list[str] | None, Form()] = None,
    enabled: Flag = "",
) -> ModelForm:
    return ModelForm(
        name, provider_id, upstream_model, input_price, output_price, cached_price, context_window,
        max_output_tokens, capabilities, enabled,
    )  # fmt: skip


ModelFormData = Annotated[ModelForm, Depends(_model_form)]


# ---- the page ----


async def _index(
    request: Request, session: DbSession, viewer: Viewer, *, status_code: int = 200, **extra: Any
) -> Response:
    providers = await service.list_providers(session, viewer.actor)
    models = await service.list_models(session, viewer.actor)
    counts: dict[uuid.UUID, int] = {}
    for m in models:
        counts[m.provider_id] = counts.get(m.provider_id, 0) + 1
    return render(
        request,
        "models/index.html",
        {
            "providers": providers,
            "models": models,
            "model_counts": counts,
            "provider_names": {p.id: p.name for p in providers},
            "kinds": list(ProviderKind),
            "capabilities": list(Capability),
            "price_text": price_text,
            "gateway_url": request.app.state.settings.base_url.rstrip("/") + "/v1",
            **extra,
        },
        status_code=status_code,
    )


@router.get("")
async def models_page(request: Request, session: DbSession, viewer: ManageViewer) -> Response:
    return await _index(request, session, viewer)


# ---- providers ----


@router.post("/providers")
async def create_provider(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    name: Text = "",
    kind: Annotated[str, Form(max_length=20)] = "",
    base_url: Text = "",
    api_key: Text = "",
) -> Response:
    try:
        try:
            provider_kind = ProviderKind(kind)
        except ValueError:
            raise InvalidInput("invalid_input", "Choose the kind of provider.") from None
        provider = await service.create_provider(
            session,
            viewer.actor,
            name=name,
            kind=provider_kind,
            base_url=base_url.strip() or None,
            api_key=api_key or None,
            secret_key=_secret_key(request),
            allow_private=_allow_private(request),
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        # Never the API key: it is typed again.
        form = {"name": name[:100], "kind": kind[:20], "base_url": base_url[:500]}
        return await _index(
            request, session, viewer, status_code=exc.status, provider_error=exc.message, provider_form=form
        )
    return redirect(request, "/models", message=f"Provider “{provider.name}” added.")


@router.post("/providers/{provider_id}")
async def edit_provider(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    provider_id: str,
    name: Text = "",
    base_url: Text = "",
    api_key: Text = "",
    remove_key: Flag = "",
) -> Response:
    provider = await service.access_provider(session, viewer.actor, _id(provider_id, "provider"))
    pid = provider.id
    changes: dict[str, Any] = {"name": name}
    if provider.kind is not ProviderKind.simulated:
        changes["base_url"] = base_url.strip() or None
    if api_key.strip():
        changes["api_key"] = api_key
    elif remove_key:
        changes["api_key"] = None
    try:
        provider = await service.edit_provider(
            session,
            viewer.actor,
            pid,
            changes=changes,
            secret_key=_secret_key(request),
            allow_private=_allow_private(request),
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        form = {"name": name[:100], "base_url": base_url[:500], "remove_key": bool(remove_key)}
        return await _index(
            request,
            session,
            viewer,
            status_code=exc.status,
            edit_provider_id=pid,
            edit_provider_error=exc.message,
            edit_provider_form=form,
        )
    return redirect(request, "/models", message=f"Provider “{provider.name}” saved.")


@router.post("/providers/{provider_id}/test")
async def test_provider(
    request: Request, session: DbSession, viewer: ManageViewer, provider_id: str
) -> Response:
    provider = await service.access_provider(session, viewer.actor, _id(provider_id, "provider"))
    pid, name = provider.id, provider.name
    try:
        ok, _, message = await service.check_connection(
            session,
            viewer.actor,
            pid,
            secret_key=_secret_key(request),
            client=request.app.state.gateway.client,
        )
    except CockpitError as exc:
        ok, message = False, exc.message
    if ok:
        return redirect(request, "/models", message=f"{name}: Connection OK. {message}")
    return redirect(request, "/models", message=f"{name}: connection failed. {message}", kind="error")


@router.post("/providers/{provider_id}/delete")
async def delete_provider(
    request: Request, session: DbSession, viewer: ManageViewer, provider_id: str
) -> Response:
    provider = await service.access_provider(session, viewer.actor, _id(provider_id, "provider"))
    pid, name = provider.id, provider.name
    try:
        count = await service.delete_provider(session, viewer.actor, pid)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, "/models", message=exc.message, kind="error")
    gone = "" if not count else (" and its model" if count == 1 else f" and its {count} models")
    return redirect(request, "/models", message=f"Provider “{name}”{gone} deleted.")


# ---- models ----


@router.post("")
async def create_model(
    request: Request, session: DbSession, viewer: ManageViewer, form: ModelFormData
) -> Response:
    try:
        model = await service.create_model(
            session, viewer.actor, name=form.name, provider_id=form.provider(), enabled=bool(form.enabled),
            **form.fields(),
        )  # fmt: skip
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _index(
            request, session, viewer, status_code=exc.status, model_error=exc.message, model_form=form.shown()
        )
    return redirect(request, "/models", message=f"Model “{model.name}” added.")


@router.post("/{model_id}")
async def edit_model(
    request: Request, session: DbSession, viewer: ManageViewer, model_id: str, form: ModelFormData
) -> Response:
    current = await service.access_model(session, viewer.actor, _id(model_id, "model"))
    mid = current.id
    current_prices = {f: Decimal(getattr(current, f)) for f in service.PRICE_FIELDS}
    try:
        pid = form.provider()
        fields = form.fields()
        # The form shows the current prices: sent back unchanged, they keep their source.
        for field, price in current_prices.items():
            if fields[field] is not None and fields[field] == price:
                fields[field] = None
        model = await service.edit_model(
            session,
            viewer.actor,
            mid,
            changes={"name": form.name, "provider_id": pid, "enabled": bool(form.enabled), **fields},
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _index(
            request,
            session,
            viewer,
            status_code=exc.status,
            edit_model_id=mid,
            edit_model_error=exc.message,
            edit_model_form=form.shown(),
        )
    return redirect(request, "/models", message=f"Model “{model.name}” saved.")


@router.post("/{model_id}/toggle")
async def toggle_model(request: Request, session: DbSession, viewer: ManageViewer, model_id: str) -> Response:
    model = await service.access_model(session, viewer.actor, _id(model_id, "model"))
    model = await service.edit_model(session, viewer.actor, model.id, changes={"enabled": not model.enabled})
    state = "enabled" if model.enabled else "disabled"
    return redirect(request, "/models", message=f"Model “{model.name}” {state}.")


@router.post("/{model_id}/delete")
async def delete_model(request: Request, session: DbSession, viewer: ManageViewer, model_id: str) -> Response:
    model = await service.access_model(session, viewer.actor, _id(model_id, "model"))
    mid, name = model.id, model.name
    await service.delete_model(session, viewer.actor, mid)
    return redirect(request, "/models", message=f"Model “{name}” deleted.")
