"""CONTROL → Notifications → Webhooks (issue 16): endpoints, their signing secret (shown once), the
delivery log with each attempt, replay and test messages. For ``notifications:manage``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.console.web import Viewer, discard_changes, page_requires, path_id, redirect, render
from cockpit.events.catalog import EVENTS
from cockpit.kit.errors import CockpitError
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import DbSession
from cockpit.webhooks import service
from cockpit.webhooks.models import DeliveryStatus, WebhookEndpoint

router = APIRouter(prefix="/webhooks")

ManageViewer = Annotated[Viewer, Depends(page_requires(Permission.notifications_manage))]
PER_PAGE = 25
GROUP_LABELS = {
    "invitation": "Invitations",
    "user": "People",
    "credit_request": "Credit requests",
    "budget": "Budgets",
    "cycle": "Credit cycles",
    "policy": "Access policies",
    "integration": "Integrations",
    "job": "Background jobs",
    "export": "Exports",
    "ticket": "Support tickets",
    "webhook": "Webhooks",
}
STATUS_TONES = {"succeeded": "success", "failed": "warning", "dead": "danger", "pending": "info"}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _endpoint_id(value: str) -> uuid.UUID:
    return path_id(value, "webhook_not_found", "No such webhook endpoint.")


def _delivery_id(value: str) -> uuid.UUID:
    return path_id(value, "webhook_delivery_not_found", "No such delivery.")


def event_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """The catalogue's events grouped by their first word, for the form's checkboxes."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name, spec in EVENTS.items():
        groups.setdefault(name.split(".", 1)[0], []).append((name, spec.label))
    return [
        (GROUP_LABELS.get(key, key.replace("_", " ").capitalize()), items) for key, items in groups.items()
    ]


async def _form(request: Request) -> tuple[dict[str, str], list[str]]:
    raw = await request.form()
    fields = {k: v[:4000] for k, v in raw.items() if isinstance(v, str) and k != "events"}
    events = [v[:200] for v in raw.getlist("events") if isinstance(v, str)][:200]
    return fields, events


def _common(extra: dict[str, Any]) -> dict[str, Any]:
    return {"event_groups": event_groups(), "events": EVENTS, "tones": STATUS_TONES, **extra}


async def _index(
    request: Request, session: DbSession, viewer: Viewer, *, status_code: int = 200, **extra: Any
) -> Response:
    endpoints = await service.list_endpoints(session, viewer.actor)
    return render(
        request, "webhooks/index.html", _common({"endpoints": endpoints, **extra}), status_code=status_code
    )


@router.get("")
async def webhooks_page(request: Request, session: DbSession, viewer: ManageViewer) -> Response:
    return await _index(request, session, viewer)


@router.post("")
async def create_webhook(request: Request, session: DbSession, viewer: ManageViewer) -> Response:
    fields, events = await _form(request)
    try:
        endpoint, secret = await service.create_endpoint(
            session, viewer.actor, settings=_settings(request), url=fields.get("url", ""), events=events,
            description=fields.get("description", ""),
        )  # fmt: skip
    except CockpitError as exc:
        await discard_changes(session, viewer)
        form = {"url": fields.get("url", "")[:2000], "description": fields.get("description", "")[:500]}
        return await _index(
            request, session, viewer, status_code=exc.status, error=exc.message, form=form, chosen=events
        )
    # The secret is in this response only: never in a redirect, a cookie or a log.
    await session.commit()
    return await _endpoint_page(request, session, viewer, endpoint, status_code=201, secret=secret)


async def _endpoint_page(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    endpoint: WebhookEndpoint,
    *,
    status_code: int = 200,
    page: int = 1,
    status: DeliveryStatus | None = None,
    **extra: Any,
) -> Response:
    deliveries = await service.list_deliveries(
        session, viewer.actor, endpoint.id, PageParams(page=page, per_page=PER_PAGE), status=status
    )
    context = {
        "endpoint": endpoint, "deliveries": deliveries, "status_filter": status.value if status else "",
        "statuses": list(DeliveryStatus), "chosen": list(endpoint.events), **extra,
    }  # fmt: skip
    return render(request, "webhooks/endpoint.html", _common(context), status_code=status_code)


@router.get("/{webhook_id}")
async def endpoint_page(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    webhook_id: str,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    status: DeliveryStatus | None = None,
) -> Response:
    endpoint = await service.access_endpoint(session, viewer.actor, _endpoint_id(webhook_id))
    return await _endpoint_page(request, session, viewer, endpoint, page=page, status=status)


@router.post("/{webhook_id}")
async def change_webhook(
    request: Request, session: DbSession, viewer: ManageViewer, webhook_id: str
) -> Response:
    endpoint_id = _endpoint_id(webhook_id)
    fields, events = await _form(request)
    try:
        await service.change_endpoint(
            session, viewer.actor, endpoint_id, settings=_settings(request), url=fields.get("url", ""),
            events=events, description=fields.get("description", ""),
        )  # fmt: skip
    except CockpitError as exc:
        await discard_changes(session, viewer)
        endpoint = await service.access_endpoint(session, viewer.actor, endpoint_id)
        form = {"url": fields.get("url", "")[:2000], "description": fields.get("description", "")[:500]}
        return await _endpoint_page(
            request,
            session,
            viewer,
            endpoint,
            status_code=exc.status,
            error=exc.message,
            form=form,
            chosen=events,
        )
    return redirect(request, f"/webhooks/{endpoint_id}", message="The endpoint was saved.")


@router.post("/{webhook_id}/enable")
async def enable_webhook(
    request: Request, session: DbSession, viewer: ManageViewer, webhook_id: str
) -> Response:
    endpoint_id = _endpoint_id(webhook_id)
    await service.change_endpoint(
        session, viewer.actor, endpoint_id, settings=_settings(request), enabled=True
    )
    return redirect(
        request, f"/webhooks/{endpoint_id}", message="The endpoint is enabled; its failures were reset."
    )


@router.post("/{webhook_id}/disable")
async def disable_webhook(
    request: Request, session: DbSession, viewer: ManageViewer, webhook_id: str
) -> Response:
    endpoint_id = _endpoint_id(webhook_id)
    await service.change_endpoint(
        session, viewer.actor, endpoint_id, settings=_settings(request), enabled=False
    )
    return redirect(request, f"/webhooks/{endpoint_id}", message="The endpoint is disabled.")


@router.post("/{webhook_id}/rotate")
async def rotate_secret(
    request: Request, session: DbSession, viewer: ManageViewer, webhook_id: str
) -> Response:
    endpoint, secret = await service.rotate_secret(
        session, viewer.actor, _endpoint_id(webhook_id), settings=_settings(request)
    )
    await session.commit()
    return await _endpoint_page(request, session, viewer, endpoint, secret=secret, rotated=True)


@router.post("/{webhook_id}/delete")
async def delete_webhook(
    request: Request, session: DbSession, viewer: ManageViewer, webhook_id: str
) -> Response:
    endpoint = await service.remove_endpoint(session, viewer.actor, _endpoint_id(webhook_id))
    return redirect(request, "/webhooks", message=f"The endpoint {endpoint.url} was deleted.")


@router.post("/{webhook_id}/test")
async def send_test(request: Request, session: DbSession, viewer: ManageViewer, webhook_id: str) -> Response:
    endpoint_id = _endpoint_id(webhook_id)
    delivery = await service.send_test(session, viewer.actor, endpoint_id)
    return redirect(
        request, f"/webhooks/{endpoint_id}/deliveries/{delivery.id}", message="A test message is on its way."
    )


@router.get("/{webhook_id}/deliveries/{delivery_id}")
async def delivery_page(
    request: Request, session: DbSession, viewer: ManageViewer, webhook_id: str, delivery_id: str
) -> Response:
    endpoint = await service.access_endpoint(session, viewer.actor, _endpoint_id(webhook_id))
    delivery = await service.access_delivery(session, viewer.actor, endpoint.id, _delivery_id(delivery_id))
    attempts = await service.attempts_of(session, viewer.actor, delivery)
    context = {"endpoint": endpoint, "delivery": delivery, "attempts": attempts}
    return render(request, "webhooks/delivery.html", _common(context))


@router.post("/{webhook_id}/deliveries/{delivery_id}/replay")
async def replay_delivery(
    request: Request, session: DbSession, viewer: ManageViewer, webhook_id: str, delivery_id: str
) -> Response:
    endpoint_id, found = _endpoint_id(webhook_id), _delivery_id(delivery_id)
    target = f"/webhooks/{endpoint_id}/deliveries/{found}"
    try:
        await service.replay_delivery(session, viewer.actor, endpoint_id, found)
    except CockpitError as exc:
        if exc.status == 404:
            raise
        await discard_changes(session, viewer)
        return redirect(request, target, message=exc.message, kind="error")
    return redirect(request, target, message="The delivery will be sent again (same webhook-id).")
