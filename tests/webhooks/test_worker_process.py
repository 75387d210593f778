"""A real ``cockpit worker`` is killed (SIGKILL) while its POST is at the receiver; another worker
delivers the message again, with the same ``webhook-id``: the receiver sees the message twice and
can tell it is one (at-least-once delivery), and the delivery log records one attempt."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.events import service as events
from cockpit.webhooks import service as webhooks
from cockpit.webhooks.models import WebhookAttempt, WebhookDelivery
from tests import launcher
from tests.builders import make_account
from tests.conftest import TEST_SECRET
from tests.launcher import Launched
from tests.webhooks.conftest import Receiver

ROOT = Path(__file__).resolve().parents[2]


def _start_worker(database_url: str, data_dir: Path) -> Launched:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}
    env.update(
        COCKPIT_DATABASE_URL=database_url, COCKPIT_DATA_DIR=str(data_dir), COCKPIT_SECRET_KEY=TEST_SECRET,
        COCKPIT_ENV="test", COCKPIT_JOBS_LEASE_SECONDS="2", COCKPIT_JOBS_POLL_SECONDS="0.1",
        COCKPIT_WEBHOOKS_ALLOW_PRIVATE="true", COCKPIT_WEBHOOKS_TIMEOUT_SECONDS="60",
    )  # fmt: skip
    name = f"worker-{len(list(data_dir.glob('worker-*.out')))}"
    return launcher.start(
        ["worker", "--concurrency", "2"], env=env, cwd=ROOT,
        output=data_dir / f"{name}.out", errors=data_dir / f"{name}.err",
    )  # fmt: skip


async def _until(condition: object, what: str, process: Launched) -> None:
    """Poll (serving the receiver meanwhile); the deadline only bounds a hang."""
    for _ in range(1200):
        if await condition():  # type: ignore[operator]
            return
        if process.poll() is not None:
            raise AssertionError(f"the worker exited while waiting for {what}: {process.errors.read_text()}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_delivery_whose_worker_was_killed_is_sent_again_with_the_same_id(
    db: AsyncSession, database_url: str, tmp_path: Path, receiver: Receiver, settings: Settings
) -> None:
    account, owner = await make_account(db)
    endpoint, secret = await webhooks.create_endpoint(
        db, Actor.for_user(owner), settings=settings.model_copy(update={"webhooks_allow_private": True}),
        url=receiver.url, events=["*"],
    )  # fmt: skip
    endpoint_id = endpoint.id
    receiver.secrets.append(secret)
    receiver.script = ["hang"]  # the first POST gets no answer: its worker dies waiting
    await events.emit(db, account.id, "cycle.reset", {"starts_at": "1 Jan 2027", "ends_at": "31 Jan 2027"})
    await db.commit()

    first = _start_worker(database_url, tmp_path)
    second: Launched | None = None
    try:

        async def posted_once() -> bool:
            return len(receiver.received) >= 1

        await _until(posted_once, "the first worker's POST", first)
        first.kill()
        await asyncio.wait_for(first.exited(), timeout=60)
        second = _start_worker(database_url, tmp_path)

        async def delivered() -> bool:
            await db.rollback()
            row = await db.scalar(
                select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
                .execution_options(populate_existing=True)
            )  # fmt: skip
            return row is not None and row.status == "succeeded"

        await _until(delivered, "the second worker's delivery", second)
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.exited(), timeout=60)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                await asyncio.wait_for(process.exited(), timeout=60)

    assert len(receiver.received) == 2
    assert all(r.verified for r in receiver.received)
    assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]
    delivery = await db.scalar(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    assert delivery is not None
    assert delivery.attempts == 1
    log = list(await db.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)))
    assert [(a.number, a.ok) for a in log] == [(1, True)]
