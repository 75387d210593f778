"""Deliveries end to end: an event is emitted and committed, a worker (in this process, its clock
moved by hand) delivers it to an independent receiver that verifies every signature with the
``standardwebhooks`` package. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.config import Settings
from cockpit.events import service as events
from cockpit.events.models import PlatformEvent
from cockpit.jobs.models import Job
from cockpit.jobs.worker import Worker
from cockpit.webhooks import service as webhooks
from cockpit.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.webhooks.conftest import API, Clock, Org, Receiver, add_endpoint, closed_port_url, make_org

DATA = {"person_name": "Ada", "person_email": "ada@example.com", "amount": "500", "reason": "demo"}


async def emit(db: AsyncSession, org: Org, name: str = "credit_request.created") -> PlatformEvent:
    event = await events.emit(db, org.id, name, DATA)
    assert event is not None
    await db.commit()
    return event


async def deliveries(db: AsyncSession, endpoint_id: str) -> list[WebhookDelivery]:
    await db.rollback()
    rows = await db.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == uuid.UUID(endpoint_id))
        .order_by(WebhookDelivery.created_at)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def attempts(db: AsyncSession, delivery: WebhookDelivery) -> list[WebhookAttempt]:
    rows = await db.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery.id)
        .order_by(WebhookAttempt.number)
    )
    return list(rows.all())


async def endpoint_row(db: AsyncSession, endpoint_id: str) -> WebhookEndpoint:
    await db.rollback()
    row = await db.get(WebhookEndpoint, uuid.UUID(endpoint_id), populate_existing=True)
    assert row is not None
    return row


async def test_an_event_reaches_the_subscribed_endpoint_signed(
    db: AsyncSession, hook_client: AsyncClient, receiver: Receiver, make_worker: Callable[..., Worker]
) -> None:
    acme = await make_org(db)
    endpoint = await add_endpoint(hook_client, acme, receiver, events=["credit_request.created"])
    event = await emit(db, acme)
    await emit(db, acme, "cycle.reset")  # not subscribed: not sent
    await make_worker().run_until_idle()

    assert len(receiver.received) == 1
    message = receiver.received[0]
    assert message.verified
    assert message.headers["webhook-id"] == f"msg_{event.id.hex}"
    assert message.headers["content-type"] == "application/json"
    assert message.payload["type"] == "credit_request.created"
    assert message.payload["data"]["account_id"] == str(acme.id)
    assert message.payload["data"]["amount"] == "500"
    [delivery] = await deliveries(db, endpoint["id"])
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 204)
    [attempt] = await attempts(db, delivery)
    assert attempt.ok
    assert attempt.request_headers["webhook-id"] == delivery.message_id
    assert "whsec_" not in str(attempt.request_headers)


async def test_a_fan_out_run_twice_creates_one_delivery_and_one_job(
    db: AsyncSession, hook_client: AsyncClient, receiver: Receiver, only_webhooks: None
) -> None:
    acme = await make_org(db)
    endpoint = await add_endpoint(hook_client, acme, receiver)
    await add_endpoint(hook_client, acme, receiver, events=["cycle.reset"])  # not this event
    event = await emit(db, acme)
    for _ in range(2):
        await webhooks.on_event(db, event)
        await db.commit()
    assert len(await deliveries(db, endpoint["id"])) == 1
    count = await db.scalar(select(func.count()).select_from(Job).where(Job.kind == webhooks.DELIVER))
    assert count == 1


async def test_a_receiver_that_is_down_gets_retries_on_schedule_then_the_delivery_is_dead(
    db: AsyncSession,
    hook_client: AsyncClient,
    receiver: Receiver,
    make_worker: Callable[..., Worker],
    clock: Clock,
) -> None:
    acme = await make_org(db)
    receiver.url = closed_port_url()
    endpoint = await add_endpoint(hook_client, acme, receiver)
    await emit(db, acme)
    worker = make_worker()
    await worker.run_until_idle()
    [delivery] = await deliveries(db, endpoint["id"])
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.next_attempt_at is not None
    assert delivery.updated_at is not None
    assert delivery.next_attempt_at - delivery.updated_at == timedelta(seconds=30)

    assert await worker.run_until_idle() == 0  # not due yet
    for wait, expected in ((30, 2), (60, 3), (120, 4)):
        clock.advance(wait)
        await worker.run_until_idle()
        [delivery] = await deliveries(db, endpoint["id"])
        assert delivery.attempts == expected
    assert delivery.status == "dead"
    assert delivery.next_attempt_at is None
    log = await attempts(db, delivery)
    assert [a.number for a in log] == [1, 2, 3, 4]
    assert all(not a.ok and a.status_code is None and "Could not" in (a.error or "") for a in log)
    clock.advance(3600)
    assert await worker.run_until_idle() == 0  # given up: nothing more
    assert (await endpoint_row(db, endpoint["id"])).consecutive_failures == 4


async def test_errors_then_success_reset_the_failure_count(
    db: AsyncSession,
    hook_client: AsyncClient,
    receiver: Receiver,
    make_worker: Callable[..., Worker],
    clock: Clock,
) -> None:
    acme = await make_org(db)
    endpoint = await add_endpoint(hook_client, acme, receiver)
    receiver.script = ["500", "503"]
    await emit(db, acme)
    worker = make_worker()
    await worker.run_until_idle()
    assert (await endpoint_row(db, endpoint["id"])).consecutive_failures == 1
    clock.advance(30)
    await worker.run_until_idle()
    clock.advance(60)
    await worker.run_until_idle()

    [delivery] = await deliveries(db, endpoint["id"])
    assert (delivery.status, delivery.attempts) == ("succeeded", 3)
    log = await attempts(db, delivery)
    assert [a.status_code for a in log] == [500, 503, 204]
    assert log[0].response_body is not None
    assert len(log[0].response_body.encode()) <= 2048
    assert log[0].response_body.startswith("<b>error 500</b>")
    # Every attempt verified, all with the same webhook-id, each with its own signature.
    assert len(receiver.verified()) == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery.message_id}
    assert len({r.headers["webhook-signature"] for r in receiver.received}) == 3
    assert (await endpoint_row(db, endpoint["id"])).consecutive_failures == 0


async def test_a_slow_receiver_times_out_and_the_retry_succeeds(
    db: AsyncSession,
    hook_client: AsyncClient,
    receiver: Receiver,
    make_worker: Callable[..., Worker],
    clock: Clock,
    hook_settings: Settings,
) -> None:
    acme = await make_org(db)
    endpoint = await add_endpoint(hook_client, acme, receiver)
    receiver.script = ["hang"]  # answers only when the test ends
    await emit(db, acme)
    worker = make_worker(hook_settings.model_copy(update={"webhooks_timeout_seconds": 0.5}))
    await worker.run_until_idle()
    [delivery] = await deliveries(db, endpoint["id"])
    assert delivery.status == "failed"
    assert "No answer within 0.5 seconds" in (delivery.last_error or "")
    clock.advance(30)
    await worker.run_until_idle()
    [delivery] = await deliveries(db, endpoint["id"])
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)


async def test_a_replay_keeps_the_webhook_id_with_a_new_signature(
    db: AsyncSession,
    hook_client: AsyncClient,
    receiver: Receiver,
    make_worker: Callable[..., Worker],
    clock: Clock,
) -> None:
    acme = await make_org(db)
    endpoint = await add_endpoint(hook_client, acme, receiver)
    await emit(db, acme)
    worker = make_worker()
    await worker.run_until_idle()
    [delivery] = await deliveries(db, endpoint["id"])
    clock.advance(2)  # a later timestamp
    replay = await hook_client.post(
        f"{API}/{endpoint['id']}/deliveries/{delivery.id}/replay", headers=acme.admin
    )
    assert replay.status_code == 202, replay.text
    await worker.run_until_idle()

    first, second = receiver.received
    assert first.verified
    assert second.verified
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.message_id
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    assert first.body == second.body
    detail = await hook_client.get(f"{API}/{endpoint['id']}/deliveries/{delivery.id}", headers=acme.admin)
    log = detail.json()["attempt_log"]
    assert [(a["number"], a["trigger"], a["ok"]) for a in log] == [
        (1, "scheduled", True),
        (2, "replay", True),
    ]


async def test_repeated_failures_disable_the_endpoint_and_tell_the_admins(
    db: AsyncSession,
    hook_client: AsyncClient,
    receiver: Receiver,
    make_worker: Callable[..., Worker],
    clock: Clock,
    hook_settings: Settings,
) -> None:
    acme = await make_org(db)
    receiver.url = closed_port_url()
    endpoint = await add_endpoint(hook_client, acme, receiver)
    await emit(db, acme)
    await emit(db, acme)
    worker = make_worker(hook_settings.model_copy(update={"webhooks_disable_after_failures": 3}))
    await worker.run_until_idle()  # two failures
    clock.advance(30)
    await worker.run_until_idle()  # two more: disabled at the third

    row = await endpoint_row(db, endpoint["id"])
    assert row.enabled is False
    assert row.disabled_reason is not None
    assert "3 failed" in row.disabled_reason
    found = list(await db.scalars(select(PlatformEvent).where(PlatformEvent.name == "webhook.disabled")))
    assert len(found) == 1
    assert found[0].account_id == acme.id
    assert found[0].data["url"] == receiver.url
    assert found[0].data["failures"] == 3
    clock.advance(3600)
    await worker.run_until_idle()
    assert {d.status for d in await deliveries(db, endpoint["id"])} == {"dead"}
    shown = await hook_client.get(f"{API}/{endpoint['id']}", headers=acme.admin)
    assert shown.json()["enabled"] is False

    enabled = await hook_client.patch(f"{API}/{endpoint['id']}", json={"enabled": True}, headers=acme.admin)
    assert enabled.json()["consecutive_failures"] == 0
    assert enabled.json()["disabled_reason"] is None


async def test_the_test_message_is_signed_and_tried_once(
    db: AsyncSession,
    hook_client: AsyncClient,
    receiver: Receiver,
    make_worker: Callable[..., Worker],
    clock: Clock,
) -> None:
    acme = await make_org(db)
    endpoint = await add_endpoint(hook_client, acme, receiver, events=["cycle.reset"])
    receiver.script = ["500"]
    sent = await hook_client.post(f"{API}/{endpoint['id']}/test", headers=acme.admin)
    assert sent.status_code == 202, sent.text
    assert sent.json()["event"] == "webhook.test"
    await make_worker().run_until_idle()
    clock.advance(60)
    await make_worker().run_until_idle()
    assert len(receiver.received) == 1
    assert receiver.received[0].verified
    assert receiver.received[0].payload["type"] == "webhook.test"
    [delivery] = await deliveries(db, endpoint["id"])
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("dead", 1, 500)
    assert (await endpoint_row(db, endpoint["id"])).consecutive_failures == 0  # a test does not count


async def test_after_a_rotation_both_secrets_verify_for_a_day(
    db: AsyncSession, hook_client: AsyncClient, receiver: Receiver, make_worker: Callable[..., Worker]
) -> None:
    acme = await make_org(db)
    endpoint = await add_endpoint(hook_client, acme, receiver)
    old = receiver.secrets[0]
    rotated = await hook_client.post(f"{API}/{endpoint['id']}/rotate-secret", headers=acme.admin)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    assert new != old
    await emit(db, acme)
    await make_worker().run_until_idle()
    [message] = receiver.received
    assert len(message.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        from standardwebhooks import Webhook

        assert Webhook(secret).verify(message.body, message.headers)["type"] == "credit_request.created"

    again = await hook_client.post(
        f"{API}/{endpoint['id']}/rotate-secret", json={"keep_previous": False}, headers=acme.admin
    )
    receiver.secrets = [again.json()["secret"]]
    await emit(db, acme)
    await make_worker().run_until_idle()
    assert len(receiver.received[1].headers["webhook-signature"].split(" ")) == 1
    assert receiver.received[1].verified


async def test_a_private_address_is_refused_at_delivery_when_not_allowed(
    db: AsyncSession,
    hook_client: AsyncClient,
    receiver: Receiver,
    make_worker: Callable[..., Worker],
    hook_settings: Settings,
    monkeypatch: Any,
) -> None:
    acme = await make_org(db)
    endpoint = await add_endpoint(hook_client, acme, receiver)
    await emit(db, acme)
    strict = hook_settings.model_copy(update={"webhooks_allow_private": False})
    await make_worker(strict).run_until_idle()
    assert receiver.received == []
    [delivery] = await deliveries(db, endpoint["id"])
    assert delivery.status == "failed"
    assert (delivery.last_error or "").startswith("Refused: The address 127.0.0.1 is private or loopback")
