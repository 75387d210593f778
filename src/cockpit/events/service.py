"""Emitting platform events, and handing them to their subscribers after commit.

``emit`` writes the event in the caller's transaction and queues its fan-out: the event exists, and
is delivered, only if what caused it commits. The fan-out job (``events.fan_out``) calls every
subscriber — in-app and e-mail notifications, webhooks — in one transaction: a worker killed
mid-way runs it again from the start, and what the subscribers write (notifications, delivery jobs)
happens once. Subscribers register at import (their ``tasks.py``), so the worker knows them all.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.events.catalog import EVENTS
from cockpit.events.models import PlatformEvent
from cockpit.jobs import service as jobs
from cockpit.jobs.models import Job
from cockpit.jobs.registry import JobContext, PermanentJobError, add_dead_hook, registry
from cockpit.kit.text import storable_json
from cockpit.kit.time import utcnow

log = logging.getLogger(__name__)

FAN_OUT = "events.fan_out"

# A subscriber: called with the fan-out's session and the event; writes what it must (rows, jobs).
Subscriber = Callable[[AsyncSession, PlatformEvent], Awaitable[None]]
_subscribers: dict[str, Subscriber] = {}


def subscribe(name: str, subscriber: Subscriber) -> None:
    """Register a subscriber (once per name: importing a module twice does not add it twice)."""
    _subscribers[name] = subscriber


async def emit(
    session: AsyncSession,
    account_id: uuid.UUID,
    name: str,
    data: dict[str, Any],
    *,
    person_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
) -> PlatformEvent | None:
    """Record the event ``name`` (one of ``events.catalog.EVENTS``) in the caller's transaction and
    queue its fan-out. With a ``dedupe_key`` the event happens once per account and key: a second
    emit returns None (e.g. a budget threshold, once per scope, threshold and cycle)."""
    if name not in EVENTS:
        raise ValueError(f"unknown platform event {name!r}")
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "account_id": account_id, "name": name, "data": storable_json(dict(data)),
        "person_id": person_id, "group_id": group_id, "actor_id": actor_id, "dedupe_key": dedupe_key,
        "created_at": utcnow(),
    }  # fmt: skip
    if dedupe_key is None:
        event = PlatformEvent(**values)
        session.add(event)
        await session.flush()
    else:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        inserted = await session.execute(
            insert(PlatformEvent)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["account_id", "dedupe_key"])
            .returning(PlatformEvent.id)
        )
        if inserted.scalar_one_or_none() is None:
            return None  # it happened already
        found = await session.get(PlatformEvent, values["id"])
        assert found is not None
        event = found
    await jobs.enqueue(
        session, FAN_OUT, {"event_id": str(event.id)}, account_id=account_id, dedupe_key=f"event:{event.id}"
    )
    return event


async def fan_out(ctx: JobContext) -> None:
    """Hand the event to every subscriber, in one transaction (all of it happens, or none)."""
    try:
        event_id = uuid.UUID(str(ctx.payload.get("event_id")))
    except ValueError as exc:
        raise PermanentJobError("the job names no event") from exc
    async with ctx.sessionmaker() as session, session.begin():
        event = await session.scalar(select(PlatformEvent).where(PlatformEvent.id == event_id))
        if event is None:
            return  # its account was deleted meanwhile
        for name, subscriber in sorted(_subscribers.items()):
            log.debug("event %s to %s", event.name, name)
            await subscriber(session, event)


registry.register(FAN_OUT, fan_out, max_attempts=8)


# ---- job.failed: a job of an account gave up (hooked into the queue, which cannot import events) ----


async def _job_dead(session: AsyncSession, job: Job, error: str) -> None:
    """Emit ``job.failed`` in the transaction that made an account's job dead (so exactly once per
    death). A system job (no account) concerns every account and no one in particular: it is only
    logged (the worker logs "job gave up"), never emitted to some or all accounts."""
    if job.account_id is None or job.kind == FAN_OUT:  # a failed fan-out must not fan out again
        return
    await emit(
        session, job.account_id, "job.failed", {"job": job.kind, "error": error, "attempts": job.attempts}
    )


add_dead_hook(_job_dead)
