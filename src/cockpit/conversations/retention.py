"""Retention of conversations, run daily by the job queue (``conversations.purge``, tasks.py).

1. **Retention.** An account with ``conversation_retention_days`` N > 0: its conversations without
   activity (``updated_at``) for more than N days are *deleted* — soft-deleted, exactly as their owner
   would delete them, so they enter the usual recovery period (``RECOVERABLE_DAYS``) and can still be
   restored before they are purged. A conversation that sees a message meanwhile is kept (the
   statement checks its activity again).
2. **Purge.** Conversations deleted more than ``RECOVERABLE_DAYS`` days ago are removed for good:
   messages, shares, reviews (and, by their ON DELETE CASCADE, the rows of files and artifacts).

Both work in batches of ``BATCH`` conversations, one transaction each, so that a large account
never holds one huge transaction. Safe to run twice or on several workers at once: each batch
re-checks its conditions in its statements, and on PostgreSQL the purge locks the rows it takes
(skipping those another worker holds).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.conversations import sharing_repository as sql
from cockpit.conversations.service import RECOVERABLE_DAYS
from cockpit.kit.time import utcnow

BATCH = 500

# HOOK for files and artifacts: their rows go with their conversation (ON DELETE CASCADE), but
# their bytes are in the file storage. A hook registered with ``on_purge`` runs in each purge
# batch's transaction before its rows are deleted, with the ids of the conversations purged and the
# settings (``storage.storage_for(settings)``): it collects the storage keys of those conversations
# and returns a callable that deletes them, run after the commit (so that a rolled-back purge never
# loses a file, and a crash in between leaves only unreferenced bytes, never a dangling row).
AfterCommit = Callable[[], Awaitable[None]]
PurgeHook = Callable[[AsyncSession, Sequence[uuid.UUID], Settings | None], Awaitable[AfterCommit | None]]
_purge_hooks: list[PurgeHook] = []


def on_purge(hook: PurgeHook) -> PurgeHook:
    """Register a hook run for each batch of purged conversations (see ``_purge_hooks``)."""
    if hook not in _purge_hooks:
        _purge_hooks.append(hook)
    return hook


@dataclass(frozen=True)
class Outcome:
    expired: int  # conversations deleted by their account's retention period
    purged: int  # conversations removed for good


async def expire_inactive(
    sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime | None = None, batch: int = BATCH
) -> int:
    """Soft-delete the conversations of accounts with a retention period that saw no activity for
    longer; one audit entry per account and batch (``conversation.retention_deleted``)."""
    now = now or utcnow()
    async with sessionmaker() as session:
        accounts = await sql.accounts_with_retention(session)
    total = 0
    for account_id, days in accounts:
        before = now - timedelta(days=days)
        while True:
            async with sessionmaker() as session, session.begin():
                ids = await sql.inactive_ids(session, account_id, before, batch)
                if not ids:
                    break
                done = await sql.mark_deleted(session, ids, before, now)
                if done:
                    await audit.record(
                        session, Actor.system(account_id, label="conversation retention"),
                        "conversation.retention_deleted", target=Target("account", account_id, None),
                        after={"conversations": done, "retention_days": days, "inactive_since": before},
                    )  # fmt: skip
            total += done
            if len(ids) < batch:
                break
    return total


async def purge_deleted(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime | None = None,
    batch: int = BATCH,
    settings: Settings | None = None,
) -> int:
    """Remove for good the conversations deleted more than ``RECOVERABLE_DAYS`` days ago."""
    before = (now or utcnow()) - timedelta(days=RECOVERABLE_DAYS)
    total = 0
    while True:
        after_commit: list[AfterCommit] = []
        async with sessionmaker() as session, session.begin():
            ids = await sql.purgeable_ids(session, before, batch)
            if not ids:
                break
            for hook in _purge_hooks:
                then = await hook(session, ids, settings)
                if then is not None:
                    after_commit.append(then)
            total += await sql.purge(session, ids)
        for then in after_commit:
            await then()
        if len(ids) < batch:
            break
    return total


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime | None = None,
    batch: int = BATCH,
    settings: Settings | None = None,
) -> Outcome:
    now = now or utcnow()
    expired = await expire_inactive(sessionmaker, now=now, batch=batch)
    purged = await purge_deleted(sessionmaker, now=now, batch=batch, settings=settings)
    return Outcome(expired=expired, purged=purged)
