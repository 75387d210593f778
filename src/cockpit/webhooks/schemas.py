"""Request and response bodies of webhooks. The signing secret goes out in ``WebhookCreated`` only
(the answers of creation and rotation), never in any other body."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.webhooks.models import MAX_DESCRIPTION, MAX_URL

Url = Annotated[str, Field(min_length=1, max_length=MAX_URL)]
EventName = Annotated[str, Field(min_length=1, max_length=100)]
Events = Annotated[list[EventName], Field(min_length=1, max_length=100)]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION)]


class WebhookCreate(InputSchema):
    url: Url
    events: Events = Field(description='Event names (e.g. "credit_request.created"), or ["*"] for all.')
    description: Description = ""


class WebhookChange(InputSchema):
    url: Url | None = None
    events: Events | None = None
    description: Description | None = None
    enabled: bool | None = Field(default=None, description="true re-enables and resets the failure count.")


class RotateSecret(InputSchema):
    keep_previous: bool = Field(default=True, description="The old secret also signs for 24 hours.")


class WebhookOut(OutputSchema):
    id: uuid.UUID
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    previous_secret_expires_at: datetime | None
    last_delivery_at: datetime | None
    last_delivery_status: str | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret (whsec_…): shown this once. Keep it.")


class WebhookList(OutputSchema):
    items: list[WebhookOut]


class WebhookDeleted(OutputSchema):
    id: uuid.UUID
    deleted: bool = True


class AttemptOut(OutputSchema):
    number: int
    trigger: str
    started_at: datetime
    duration_ms: int
    url: str
    request_headers: dict[str, str]
    status_code: int | None
    ok: bool
    response_body: str | None
    error: str | None


class DeliveryOut(OutputSchema):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID | None
    event: str = Field(validation_alias="event_name")
    webhook_id: str = Field(validation_alias="message_id")
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_duration_ms: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class DeliveryDetail(DeliveryOut):
    payload: dict[str, Any]
    attempt_log: list[AttemptOut]


class DeliveryList(OutputSchema):
    items: list[DeliveryOut]
    meta: PageMeta
