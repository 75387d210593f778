"""The ``webhooks.deliver`` job: one attempt at one delivery.

An attempt, in three steps:

1. read the delivery and its endpoint (a short transaction). A job that is stale — the delivery
   has had more attempts since it was queued (a replay came first), or it finished — does nothing;
   a delivery whose endpoint was disabled is given up (``dead``);
2. check the URL against the SSRF rules (every attempt: a DNS name may have started resolving to a
   private address), sign and POST it with aiohttp: no redirect followed, no proxy, no cookie,
   ``COCKPIT_WEBHOOKS_TIMEOUT_SECONDS`` in all, at most 2 KiB of the answer read. Host names are
   resolved by ``GuardedResolver``, which drops the addresses the rules refuse (DNS rebinding);
3. record the attempt, the delivery's new state and the endpoint's failure count (one transaction);
   queue the next attempt after a failure, on ``COCKPIT_WEBHOOKS_RETRY_SCHEDULE``; disable the
   endpoint after ``COCKPIT_WEBHOOKS_DISABLE_AFTER_FAILURES`` failed attempts in a row and emit
   ``webhook.disabled`` (the account's administrators are notified).

A worker killed between the POST and step 3 leaves the job running; once its lease expires another
worker runs it again and POSTs again with the same ``webhook-id``: receivers deduplicate on it
(at-least-once delivery, per the Standard Webhooks spec).
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.config import Settings
from cockpit.events import service as events
from cockpit.jobs.queue import scrub_error
from cockpit.jobs.registry import JobContext, PermanentJobError
from cockpit.kit.errors import InvalidInput
from cockpit.kit.text import storable
from cockpit.kit.upstream_http import GuardedResolver
from cockpit.kit.urls import check_upstream_url_async
from cockpit.webhooks import service
from cockpit.webhooks.models import (
    MAX_ERROR,
    MAX_RESPONSE_EXCERPT,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from cockpit.webhooks.signing import body_of, headers_for

log = logging.getLogger("cockpit.webhooks")

FINISHED = (DeliveryStatus.succeeded.value, DeliveryStatus.dead.value)


@dataclass
class Outcome:
    ok: bool
    status_code: int | None
    body: str | None
    error: str | None
    duration_ms: int


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process (loading the CA bundle costs tens of milliseconds)."""
    return ssl.create_default_context()


async def post(url: str, body: bytes, headers: dict[str, str], *, settings: Settings) -> Outcome:
    """POST one signed message; never raises for the receiver's failures (they are the outcome)."""
    started = time.monotonic()

    def done(ok: bool, code: int | None = None, text: str | None = None, error: str | None = None) -> Outcome:
        return Outcome(
            ok, code, text, error[:MAX_ERROR] if error else None, int((time.monotonic() - started) * 1000)
        )

    allow_private = settings.webhooks_allow_private
    try:
        await check_upstream_url_async(url, allow_private=allow_private)
    except InvalidInput as exc:
        message = exc.message.replace("COCKPIT_ALLOW_PRIVATE_UPSTREAMS", "COCKPIT_WEBHOOKS_ALLOW_PRIVATE")
        return done(False, error=f"Refused: {message}")
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(allow_private=allow_private), force_close=True, ssl=_tls()
    )
    timeout = aiohttp.ClientTimeout(total=settings.webhooks_timeout_seconds)
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            ) as http,
            http.post(url, data=body, headers=headers, allow_redirects=False, timeout=timeout) as response,
        ):
            raw = await response.content.read(MAX_RESPONSE_EXCERPT)
            text = storable(raw.decode("utf-8", "replace"))
            ok = 200 <= response.status < 300
            error = None if ok else f"The receiver answered HTTP {response.status}."
            return done(ok, response.status, text, error)
    except TimeoutError:
        return done(False, error=f"No answer within {settings.webhooks_timeout_seconds:g} seconds.")
    except aiohttp.ClientError as exc:
        return done(False, error=f"Could not deliver: {scrub_error(exc)}")
    except OSError as exc:
        return done(False, error=f"Could not connect: {scrub_error(exc)}")


def retry_delay(settings: Settings, attempts: int) -> timedelta | None:
    """The wait after the ``attempts``-th failed attempt, or None when the delivery is given up."""
    schedule = settings.webhooks_retry_schedule
    return timedelta(seconds=schedule[attempts - 1]) if attempts <= len(schedule) else None


@dataclass
class Prepared:
    url: str
    message_id: str
    payload: dict[str, object]
    signing_secrets: list[str]


async def _prepare(ctx: JobContext, delivery_id: uuid.UUID, expect: int, trigger: str) -> Prepared | None:
    now = ctx.now()
    async with ctx.sessionmaker() as session, session.begin():
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.attempts != expect:
            return None  # removed with its endpoint, or a replay made this attempt already
        if delivery.status in FINISHED and trigger == "scheduled":
            return None
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None:
            return None
        if not endpoint.enabled and trigger != "test":
            delivery.status, delivery.next_attempt_at = DeliveryStatus.dead.value, None
            delivery.last_error, delivery.updated_at = "The endpoint is disabled.", now
            return None
        try:
            secrets = service.signing_secrets(endpoint, settings=ctx.settings, now=now)
        except ValueError as exc:
            raise PermanentJobError(str(exc)) from None
        return Prepared(endpoint.url, delivery.message_id, dict(delivery.payload), secrets)


async def deliver(ctx: JobContext) -> None:
    try:
        delivery_id = uuid.UUID(str(ctx.payload.get("delivery_id")))
        expect = int(ctx.payload.get("expect", 0))
    except ValueError as exc:
        raise PermanentJobError("the job names no delivery") from exc
    trigger = str(ctx.payload.get("trigger") or "scheduled")
    prepared = await _prepare(ctx, delivery_id, expect, trigger)
    if prepared is None:
        return
    sent_at = ctx.now()
    body = body_of(prepared.payload)
    headers = headers_for(prepared.message_id, sent_at, body, prepared.signing_secrets)
    outcome = await post(prepared.url, body, headers, settings=ctx.settings)
    async with ctx.sessionmaker() as session, session.begin():
        await _record(session, ctx, delivery_id, expect, trigger, prepared.url, headers, sent_at, outcome)


async def _record(
    session: AsyncSession,
    ctx: JobContext,
    delivery_id: uuid.UUID,
    expect: int,
    trigger: str,
    url: str,
    headers: dict[str, str],
    sent_at: datetime,
    outcome: Outcome,
) -> None:
    now = ctx.now()
    delivery = await session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()
    )
    if delivery is None:
        return  # its endpoint was deleted meanwhile
    current = delivery.attempts == expect  # False: another attempt was recorded meanwhile (a replay)
    delivery.attempts += 1
    session.add(
        WebhookAttempt(
            id=uuid.uuid4(), account_id=delivery.account_id, delivery_id=delivery.id,
            number=delivery.attempts, trigger=trigger, started_at=sent_at,
            duration_ms=outcome.duration_ms, url=url, request_headers=headers,
            status_code=outcome.status_code, ok=outcome.ok, response_body=outcome.body, error=outcome.error,
        )
    )  # fmt: skip
    delivery.last_status_code, delivery.last_duration_ms = outcome.status_code, outcome.duration_ms
    delivery.last_error, delivery.updated_at, delivery.next_attempt_at = outcome.error, now, None
    if outcome.ok:
        delivery.status = DeliveryStatus.succeeded.value
    elif trigger == "test" or not current:
        delivery.status = DeliveryStatus.dead.value if trigger == "test" else delivery.status
    else:
        delay = retry_delay(ctx.settings, delivery.attempts)
        if delay is None:
            delivery.status = DeliveryStatus.dead.value
        else:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.failed.value, now + delay
            await service.schedule_attempt(session, delivery, run_at=now + delay, trigger="scheduled")
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == delivery.endpoint_id)
        .values(last_delivery_at=now, last_delivery_status=delivery.status)
    )
    if trigger != "test":
        await _count(session, ctx, delivery, outcome.ok)


async def _count(session: AsyncSession, ctx: JobContext, delivery: WebhookDelivery, ok: bool) -> None:
    """Keep the endpoint's run of failed attempts; disable it (once) when the run is long enough."""
    table = WebhookEndpoint
    if ok:
        await session.execute(
            update(table).where(table.id == delivery.endpoint_id).values(consecutive_failures=0)
        )
        return
    failures = await session.scalar(
        update(table)
        .where(table.id == delivery.endpoint_id)
        .values(consecutive_failures=table.consecutive_failures + 1)
        .returning(table.consecutive_failures)
    )
    limit = ctx.settings.webhooks_disable_after_failures
    if failures is None or failures < limit:
        return
    reason = f"Disabled after {failures} failed delivery attempts in a row."
    disabled = await session.scalar(
        update(table)
        .where(table.id == delivery.endpoint_id, table.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, updated_at=ctx.now())
        .returning(table.url)
    )
    if disabled is None:
        return  # disabled already (by someone, or by a concurrent attempt)
    log.warning("webhook endpoint disabled", extra={"endpoint_id": str(delivery.endpoint_id)})
    await events.emit(
        session, delivery.account_id, "webhook.disabled",
        {"url": disabled, "failures": failures, "endpoint_id": str(delivery.endpoint_id)},
    )  # fmt: skip
