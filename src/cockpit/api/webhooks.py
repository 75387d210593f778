"""Webhook endpoints and their deliveries (/api/v1/webhooks; issue 16), for ``notifications:manage``.

The signing secret is in the answers of ``POST /webhooks`` and ``POST /webhooks/{id}/rotate-secret``
only. Another account's endpoint or delivery is not found (404).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.web import DbSession
from cockpit.webhooks import service
from cockpit.webhooks.models import DeliveryStatus, WebhookEndpoint
from cockpit.webhooks.schemas import (
    AttemptOut,
    DeliveryDetail,
    DeliveryList,
    DeliveryOut,
    RotateSecret,
    WebhookChange,
    WebhookCreate,
    WebhookCreated,
    WebhookDeleted,
    WebhookList,
    WebhookOut,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Manager = Annotated[Actor, Depends(require(Permission.notifications_manage))]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _created(endpoint: WebhookEndpoint, secret: str) -> WebhookCreated:
    return WebhookCreated.model_validate(
        {**WebhookOut.model_validate(endpoint).model_dump(), "secret": secret}
    )


@router.get("", response_model=WebhookList)
async def list_webhooks(session: DbSession, actor: Manager) -> WebhookList:
    return WebhookList(
        items=[WebhookOut.model_validate(e) for e in await service.list_endpoints(session, actor)]
    )


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
async def create_webhook(
    body: WebhookCreate, request: Request, session: DbSession, actor: Manager
) -> WebhookCreated:
    """Add an endpoint. The answer holds its signing secret (`whsec_…`): shown this once."""
    endpoint, secret = await service.create_endpoint(
        session,
        actor,
        settings=_settings(request),
        url=body.url,
        events=body.events,
        description=body.description,
    )
    return _created(endpoint, secret)


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: uuid.UUID, session: DbSession, actor: Manager) -> WebhookOut:
    return WebhookOut.model_validate(await service.access_endpoint(session, actor, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookOut)
async def change_webhook(
    webhook_id: uuid.UUID, body: WebhookChange, request: Request, session: DbSession, actor: Manager
) -> WebhookOut:
    """Change the URL, events or description; `enabled: true` re-enables and resets the failures."""
    endpoint = await service.change_endpoint(
        session, actor, webhook_id, settings=_settings(request),
        url=body.url, events=body.events, description=body.description, enabled=body.enabled,
    )  # fmt: skip
    return WebhookOut.model_validate(endpoint)


@router.delete("/{webhook_id}", response_model=WebhookDeleted)
async def delete_webhook(webhook_id: uuid.UUID, session: DbSession, actor: Manager) -> WebhookDeleted:
    await service.remove_endpoint(session, actor, webhook_id)
    return WebhookDeleted(id=webhook_id)


@router.post("/{webhook_id}/rotate-secret", response_model=WebhookCreated)
async def rotate_secret(
    webhook_id: uuid.UUID,
    request: Request,
    session: DbSession,
    actor: Manager,
    body: RotateSecret | None = None,
) -> WebhookCreated:
    """A new signing secret, shown this once; by default the old one also signs for 24 hours."""
    keep = body.keep_previous if body is not None else True
    endpoint, secret = await service.rotate_secret(
        session, actor, webhook_id, settings=_settings(request), keep_previous=keep
    )
    return _created(endpoint, secret)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList)
async def list_deliveries(
    webhook_id: uuid.UUID,
    session: DbSession,
    actor: Manager,
    paging: Annotated[PageParams, Depends(page_params)],
    status: DeliveryStatus | None = None,
) -> DeliveryList:
    """The endpoint's deliveries, newest first; `status`: pending, failed, succeeded or dead."""
    page = await service.list_deliveries(session, actor, webhook_id, paging, status=status)
    return DeliveryList(items=[DeliveryOut.model_validate(d) for d in page.items], meta=PageMeta.of(page))


@router.get("/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, session: DbSession, actor: Manager
) -> DeliveryDetail:
    """A delivery with its payload and every attempt (request headers, status, response excerpt)."""
    delivery = await service.access_delivery(session, actor, webhook_id, delivery_id)
    attempts = await service.attempts_of(session, actor, delivery)
    return DeliveryDetail.model_validate(
        {
            **DeliveryOut.model_validate(delivery).model_dump(),
            "event_name": delivery.event_name,
            "message_id": delivery.message_id,
            "payload": delivery.payload,
            "attempt_log": [AttemptOut.model_validate(a) for a in attempts],
        }
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    status_code=status.HTTP_202_ACCEPTED,
)
async def replay_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, session: DbSession, actor: Manager
) -> DeliveryOut:
    """Send it again now: same `webhook-id`, new timestamp and signature."""
    return DeliveryOut.model_validate(await service.replay_delivery(session, actor, webhook_id, delivery_id))


@router.post("/{webhook_id}/test", response_model=DeliveryOut, status_code=status.HTTP_202_ACCEPTED)
async def send_test(webhook_id: uuid.UUID, session: DbSession, actor: Manager) -> DeliveryOut:
    """Queue a synthetic `webhook.test` message (tried once; see its delivery for the outcome)."""
    return DeliveryOut.model_validate(await service.send_test(session, actor, webhook_id))
