"""Webhook endpoints (their administration) and their deliveries (the log, replay, test), and the
platform events' subscriber that turns each event into one delivery per subscribed endpoint.

Every function takes ``(session, actor, ...)``, checks ``notifications:manage`` and scopes every
query by the actor's account: another account's endpoint or delivery is not found (404). Every
change is audited without the secret. The signing secret is returned by ``create_endpoint`` and
``rotate_secret`` only: the caller shows it once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.events.catalog import EVENTS
from cockpit.events.models import PlatformEvent
from cockpit.jobs import service as jobs
from cockpit.kit import secrets as secret_box
from cockpit.kit.errors import Conflict, InvalidInput, NotFound
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.text import is_storable
from cockpit.kit.time import utcnow
from cockpit.kit.urls import check_upstream_url_async
from cockpit.webhooks.models import (
    MAX_DESCRIPTION,
    MAX_URL,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from cockpit.webhooks.signing import new_secret

DELIVER = "webhooks.deliver"
ALL_EVENTS = "*"
TEST_EVENT = "webhook.test"
PREVIOUS_SECRET_HOURS = 24
MAX_ENDPOINTS = 50  # per account


# ---- input ----


def _invalid(field: str, code: str, message: str) -> InvalidInput:
    return InvalidInput(code, message, details=[{"field": field, "message": message}])


def check_events(events: list[str]) -> list[str]:
    """The subscribed events, each once, in the catalogue's order (``["*"]`` for all)."""
    wanted = [str(name).strip() for name in events]
    if not wanted:
        raise _invalid("events", "invalid_events", "Choose at least one event.")
    if ALL_EVENTS in wanted:
        return [ALL_EVENTS]
    unknown = [name for name in wanted if name not in EVENTS]
    if unknown:
        shown = unknown[0][:100] if is_storable(unknown[0]) else "?"
        raise _invalid("events", "unknown_event", f"Unknown event: {shown}.")
    return [name for name in EVENTS if name in wanted]


async def check_url(url: str, *, settings: Settings) -> str:
    """An http(s) URL that the SSRF rules allow (metadata and link-local never; loopback and private
    networks only with COCKPIT_WEBHOOKS_ALLOW_PRIVATE). Resolves the host name."""
    url = url.strip()
    if not url:
        raise _invalid("url", "invalid_url", "Enter the endpoint's URL.")
    if len(url) > MAX_URL or not url.isprintable() or not is_storable(url) or any(c.isspace() for c in url):
        raise _invalid("url", "invalid_url", "The URL is not valid.")
    try:
        return await check_upstream_url_async(url, allow_private=settings.webhooks_allow_private)
    except InvalidInput as exc:
        message = exc.message.replace("base URL", "URL").replace(
            "COCKPIT_ALLOW_PRIVATE_UPSTREAMS=true", "COCKPIT_WEBHOOKS_ALLOW_PRIVATE=true"
        )
        message = message.replace("; use the API key field", "").replace(
            " to allow self-hosted upstreams", ""
        )
        raise _invalid("url", "invalid_url", message) from None


def _description(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_DESCRIPTION or not is_storable(text):
        raise _invalid("description", "invalid_description", f"At most {MAX_DESCRIPTION} characters.")
    return text


def _state(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the audit log keeps of an endpoint (never its secret)."""
    return {
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
    }


def _target(endpoint: WebhookEndpoint) -> Target:
    return Target("webhook_endpoint", endpoint.id, endpoint.url[:300])


def _secret_key(settings: Settings) -> str:
    return settings.resolved_secret_key()


# ---- endpoints ----


async def list_endpoints(session: AsyncSession, actor: Actor) -> list[WebhookEndpoint]:
    actor.require(Permission.notifications_manage)
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.account_id == actor.account_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return list(rows.all())


async def access_endpoint(
    session: AsyncSession, actor: Actor, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint:
    """One of the account's endpoints (locked with ``for_update``); another account's is not found."""
    actor.require(Permission.notifications_manage)
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.account_id == actor.account_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    endpoint = await session.scalar(stmt)
    if endpoint is None:
        raise NotFound("webhook_not_found", "No such webhook endpoint.")
    return endpoint


async def create_endpoint(
    session: AsyncSession,
    actor: Actor,
    *,
    settings: Settings,
    url: str,
    events: list[str],
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """A new, enabled endpoint and its signing secret (returned this once, stored encrypted)."""
    actor.require(Permission.notifications_manage)
    count = len(await list_endpoints(session, actor))
    if count >= MAX_ENDPOINTS:
        raise Conflict("too_many_webhooks", f"An organisation may have at most {MAX_ENDPOINTS} endpoints.")
    checked_events = check_events(events)
    text = _description(description)
    checked_url = await check_url(url, settings=settings)
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(), account_id=actor.account_id, url=checked_url, description=text,
        events=checked_events, secret_encrypted=secret_box.encrypt(secret, _secret_key(settings)),
        enabled=True, consecutive_failures=0, created_by=actor.user_id, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(endpoint)
    await session.flush()
    await audit.record(session, actor, "webhook.created", target=_target(endpoint), after=_state(endpoint))
    return endpoint, secret


async def change_endpoint(
    session: AsyncSession,
    actor: Actor,
    endpoint_id: uuid.UUID,
    *,
    settings: Settings,
    url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change what was given. Enabling a disabled endpoint clears its failure count and reason."""
    endpoint = await access_endpoint(session, actor, endpoint_id, for_update=True)
    before = _state(endpoint)
    if url is not None:
        endpoint.url = await check_url(url, settings=settings)
    if events is not None:
        endpoint.events = check_events(events)
    if description is not None:
        endpoint.description = _description(description)
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        endpoint.consecutive_failures = 0
        endpoint.disabled_reason = None if enabled else "Disabled by an administrator."
    endpoint.updated_at = utcnow()
    await session.flush()
    await audit.record_changes(session, actor, "webhook.changed", target=_target(endpoint), before=before,
                               after=_state(endpoint))  # fmt: skip
    return endpoint


async def remove_endpoint(session: AsyncSession, actor: Actor, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    """Delete the endpoint and its delivery log (deliveries still queued are dropped by the worker)."""
    endpoint = await access_endpoint(session, actor, endpoint_id, for_update=True)
    await audit.record(session, actor, "webhook.deleted", target=_target(endpoint), before=_state(endpoint))
    await session.delete(endpoint)
    await session.flush()
    return endpoint


async def rotate_secret(
    session: AsyncSession,
    actor: Actor,
    endpoint_id: uuid.UUID,
    *,
    settings: Settings,
    keep_previous: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret (returned this once). With ``keep_previous`` the old one also signs every
    message for 24 hours (two signatures in ``webhook-signature``), so receivers can switch over."""
    endpoint = await access_endpoint(session, actor, endpoint_id, for_update=True)
    secret = new_secret()
    now = utcnow()
    if keep_previous:
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = now + timedelta(hours=PREVIOUS_SECRET_HOURS)
    else:
        endpoint.previous_secret_encrypted = endpoint.previous_secret_expires_at = None
    endpoint.secret_encrypted = secret_box.encrypt(secret, _secret_key(settings))
    endpoint.updated_at = now
    await session.flush()
    await audit.record(
        session, actor, "webhook.secret_rotated", target=_target(endpoint),
        after={"previous_secret_valid_until": endpoint.previous_secret_expires_at},
    )  # fmt: skip
    return endpoint, secret


def signing_secrets(endpoint: WebhookEndpoint, *, settings: Settings, now: datetime) -> list[str]:
    """The secrets that sign a message now: the current one, and the previous one for a day."""
    key = _secret_key(settings)
    found = [secret_box.decrypt(endpoint.secret_encrypted, key)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and expires > now:
        found.append(secret_box.decrypt(endpoint.previous_secret_encrypted, key))
    return found


# ---- deliveries ----


async def list_deliveries(
    session: AsyncSession,
    actor: Actor,
    endpoint_id: uuid.UUID,
    params: PageParams,
    *,
    status: DeliveryStatus | None = None,
) -> Page[WebhookDelivery]:
    """An endpoint's deliveries, newest first."""
    endpoint = await access_endpoint(session, actor, endpoint_id)
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.account_id == actor.account_id
    )
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status.value)
    stmt = stmt.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return await paginate(session, stmt, params)


async def access_delivery(
    session: AsyncSession, actor: Actor, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    endpoint = await access_endpoint(session, actor, endpoint_id)
    delivery = await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.account_id == actor.account_id,
        )
    )
    if delivery is None:
        raise NotFound("webhook_delivery_not_found", "No such delivery.")
    return delivery


async def attempts_of(session: AsyncSession, actor: Actor, delivery: WebhookDelivery) -> list[WebhookAttempt]:
    """Every attempt of a delivery (one the caller may see), first to last."""
    actor.require(Permission.notifications_manage)
    rows = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery.id, WebhookAttempt.account_id == actor.account_id)
        .order_by(WebhookAttempt.number)
    )
    return list(rows.all())


async def schedule_attempt(
    session: AsyncSession, delivery: WebhookDelivery, *, run_at: datetime | None = None, trigger: str
) -> None:
    """Queue the next attempt of a delivery (after its ``attempts`` so far). Deduplicated: queuing
    the same attempt twice (a fan-out run again, a double click) queues it once."""
    suffix = "" if trigger == "scheduled" else f":{trigger}"
    await jobs.enqueue(
        session, DELIVER,
        {"delivery_id": str(delivery.id), "expect": delivery.attempts, "trigger": trigger},
        account_id=delivery.account_id, run_at=run_at,
        dedupe_key=f"webhook:{delivery.id}:{delivery.attempts}{suffix}",
    )  # fmt: skip


async def replay_delivery(
    session: AsyncSession, actor: Actor, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Send a delivery again now: a new attempt with the same ``webhook-id`` (the receiver's
    idempotency key), a new timestamp and signature."""
    endpoint = await access_endpoint(session, actor, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("webhook_disabled", "Enable the endpoint before replaying its deliveries.")
    delivery = await access_delivery(session, actor, endpoint_id, delivery_id)
    delivery.status, delivery.next_attempt_at, delivery.updated_at = (
        DeliveryStatus.pending.value,
        None,
        utcnow(),
    )
    await schedule_attempt(session, delivery, trigger="replay")
    await audit.record(
        session, actor, "webhook.delivery_replayed", target=_target(endpoint),
        after={"delivery_id": str(delivery.id), "event": delivery.event_name,
               "webhook_id": delivery.message_id},
    )  # fmt: skip
    return delivery


async def send_test(session: AsyncSession, actor: Actor, endpoint_id: uuid.UUID) -> WebhookDelivery:
    """Queue a synthetic ``webhook.test`` message to the endpoint (enabled or not; no platform event
    is emitted). It is tried once, and its failure does not count towards disabling the endpoint."""
    endpoint = await access_endpoint(session, actor, endpoint_id)
    now = utcnow()
    delivery_id = uuid.uuid4()
    delivery = WebhookDelivery(
        id=delivery_id, account_id=actor.account_id, endpoint_id=endpoint.id, event_id=None,
        event_name=TEST_EVENT, message_id=f"msg_{delivery_id.hex}",
        payload={
            "type": TEST_EVENT, "timestamp": now.isoformat(),
            "data": {"account_id": str(actor.account_id), "endpoint_id": str(endpoint.id),
                     "message": "A test message sent from Cockpit."},
        },
        status=DeliveryStatus.pending.value, attempts=0, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(delivery)
    await session.flush()
    await schedule_attempt(session, delivery, trigger="test")
    await audit.record(session, actor, "webhook.test_sent", target=_target(endpoint),
                       after={"delivery_id": str(delivery.id)})  # fmt: skip
    return delivery


# ---- the platform events' subscriber ----


def _subscribed(endpoint: WebhookEndpoint, name: str) -> bool:
    return ALL_EVENTS in endpoint.events or name in endpoint.events


def payload_of(event: PlatformEvent) -> dict[str, Any]:
    """The message of an event: ``{"type", "timestamp", "data": {...its data, "account_id", "event_id"}}``."""
    data = {**(event.data or {}), "account_id": str(event.account_id), "event_id": str(event.id)}
    return {"type": event.name, "timestamp": event.created_at.isoformat(), "data": data}


async def on_event(session: AsyncSession, event: PlatformEvent) -> None:
    """One delivery per enabled endpoint of the account subscribed to the event, and its first
    attempt queued. Run again (the fan-out's retry), it creates and queues nothing twice."""
    endpoints = await session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.account_id == event.account_id, WebhookEndpoint.enabled.is_(True)
        )
    )
    wanted = [e for e in endpoints.all() if _subscribed(e, event.name)]
    if not wanted:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    payload = payload_of(event)
    rows = [
        {
            "id": uuid.uuid4(), "account_id": event.account_id, "endpoint_id": endpoint.id,
            "event_id": event.id, "event_name": event.name, "message_id": f"msg_{event.id.hex}",
            "payload": payload, "status": DeliveryStatus.pending.value, "attempts": 0,
            "created_at": now, "updated_at": now,
        }
        for endpoint in wanted
    ]  # fmt: skip
    await session.execute(
        insert(WebhookDelivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
    )
    deliveries = await session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.event_id == event.id,
            WebhookDelivery.endpoint_id.in_([e.id for e in wanted]),
            WebhookDelivery.attempts == 0,
        )
    )
    for delivery in deliveries.all():
        await schedule_attempt(session, delivery, trigger="scheduled")
