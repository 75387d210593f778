"""The daily retention job: conversations deleted more than 30 days ago are purged with everything
on them; an account's retention period deletes (recoverably) the conversations idle for longer;
batches, a second run, and a 2,000-message conversation."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.audit.models import AuditEntry
from cockpit.authz.actor import Actor
from cockpit.conversations import retention, service
from cockpit.conversations import tasks as conversation_tasks
from cockpit.conversations.models import (
    Conversation,
    ConversationMessage,
    ConversationReview,
    ConversationShare,
    MessageStatus,
    Role,
)
from cockpit.jobs.registry import registry
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from tests.builders import make_account, make_user
from tests.conversations.conftest import Org, make_org

NOW = utcnow()


def _maker(app: Any) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    return maker


async def _conversation(
    db: AsyncSession,
    org: Org,
    title: str,
    *,
    active: datetime,
    deleted: datetime | None = None,
    messages: int = 2,
) -> uuid.UUID:
    """A conversation of the member, last active at ``active`` (deleted at ``deleted``), with a
    chain of messages, a share and a review."""
    me = Actor.for_user(org.member)
    conversation = await service.start_conversation(db, me, model="gpt-4o", title=title)
    parent: uuid.UUID | None = None
    rows: list[dict[str, Any]] = []
    for n in range(messages):
        mid = uuid.uuid4()
        rows.append({
            "id": mid, "account_id": org.account.id, "conversation_id": conversation.id, "parent_id": parent,
            "role": Role.user if n % 2 == 0 else Role.assistant, "content": f"m{n}",
            "status": MessageStatus.complete,
            "model": "", "input_tokens": 0, "output_tokens": 0, "cost_usd": Decimal(0), "credits": Decimal(0),
            "tool_steps": [], "created_at": active - timedelta(hours=1) + timedelta(milliseconds=n),
        })  # fmt: skip
        parent = mid
    if rows:
        await db.execute(insert(ConversationMessage), rows)
    conversation.current_leaf_id = parent
    conversation.updated_at = active
    conversation.deleted_at = deleted
    db.add(
        ConversationShare(
            account_id=org.account.id, conversation_id=conversation.id, user_id=org.other_member.id
        )
    )
    db.add(
        ConversationReview(
            account_id=org.account.id, conversation_id=conversation.id, reviewer_id=org.owner.id
        )
    )
    await db.commit()
    return conversation.id


async def _set_retention(db: AsyncSession, org: Org, days: int) -> None:
    account = await db.get(Account, org.account.id)
    assert account is not None
    account.conversation_retention_days = days
    await db.commit()


async def _count(db: AsyncSession, model: Any) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def _titles(db: AsyncSession, *, deleted: bool) -> set[str]:
    column = Conversation.deleted_at.is_not(None) if deleted else Conversation.deleted_at.is_(None)
    return set(await db.scalars(select(Conversation.title).where(column)))


async def test_the_job_is_registered_daily() -> None:
    assert conversation_tasks.KIND in registry.kinds
    schedule = next(s for s in registry.schedules if s.kind == conversation_tasks.KIND)
    assert schedule.every(None) == timedelta(days=1)  # type: ignore[arg-type]


async def test_conversations_deleted_30_days_ago_are_purged(app: Any, db: AsyncSession) -> None:
    org = await make_org(db)
    old = await _conversation(
        db, org, "old", active=NOW - timedelta(days=40), deleted=NOW - timedelta(days=31)
    )
    await _conversation(db, org, "recent", active=NOW - timedelta(days=40), deleted=NOW - timedelta(days=29))
    await _conversation(db, org, "alive", active=NOW - timedelta(days=400))
    assert (await _count(db, ConversationMessage), await _count(db, ConversationShare)) == (6, 3)

    outcome = await retention.run(_maker(app), now=NOW)

    assert (outcome.expired, outcome.purged) == (0, 1)
    db.expire_all()
    assert await db.get(Conversation, old) is None
    assert await _titles(db, deleted=True) == {"recent"}
    assert await _titles(db, deleted=False) == {"alive"}  # no retention period: kept however old
    counts = [await _count(db, m) for m in (ConversationMessage, ConversationShare, ConversationReview)]
    assert counts == [4, 2, 2]
    left = set(await db.scalars(select(ConversationMessage.conversation_id).distinct()))
    assert old not in left

    # Running again changes nothing.
    again = await retention.run(_maker(app), now=NOW)
    assert (again.expired, again.purged) == (0, 0)
    assert await _count(db, Conversation) == 2


async def test_the_retention_period_deletes_idle_conversations_recoverably(
    app: Any, client: Any, db: AsyncSession
) -> None:
    org = await make_org(db)
    account_id = org.account.id
    await _set_retention(db, org, 10)
    idle = await _conversation(db, org, "idle", active=NOW - timedelta(days=11))
    await _conversation(db, org, "active", active=NOW - timedelta(days=9))
    # Another account without a retention period keeps its idle conversations.
    other = await make_org(db)
    await _conversation(db, other, "elsewhere", active=NOW - timedelta(days=100))

    outcome = await retention.run(_maker(app), now=NOW)

    assert (outcome.expired, outcome.purged) == (1, 0)
    db.expire_all()
    assert await _titles(db, deleted=True) == {"idle"}
    assert await _titles(db, deleted=False) == {"active", "elsewhere"}
    found = await db.get(Conversation, idle)
    assert found is not None
    assert found.deleted_at is not None
    assert abs((found.deleted_at - NOW).total_seconds()) < 1
    assert await _count(db, ConversationMessage) == 6  # nothing purged yet: restorable
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "conversation.retention_deleted"))
    assert entry is not None
    assert entry.account_id == account_id
    assert entry.after is not None
    assert entry.after["conversations"] == 1

    # Its owner can restore it within the recovery period ...
    restored = await client.post(f"/api/v1/conversations/{idle}/restore", headers=org.member_headers)
    assert restored.status_code == 200
    # ... and when it stays deleted, it is purged 30 days later.
    await db.execute(update(Conversation).where(Conversation.id == idle).values(deleted_at=NOW))
    await db.commit()
    later = await retention.run(_maker(app), now=NOW + timedelta(days=31))
    # 31 days on, "active" and "elsewhere"'s account... only the account with a period expires.
    assert later.purged == 1
    assert later.expired == 1  # "active" has now been idle for 40 days
    db.expire_all()
    assert await db.get(Conversation, idle) is None
    assert await _titles(db, deleted=True) == {"active"}


async def test_batches_and_a_second_run(app: Any, db: AsyncSession) -> None:
    org = await make_org(db)
    await _set_retention(db, org, 5)
    for n in range(5):
        await _conversation(
            db, org, f"gone{n}", active=NOW - timedelta(days=60), deleted=NOW - timedelta(days=40)
        )
    for n in range(5):
        await _conversation(db, org, f"idle{n}", active=NOW - timedelta(days=6 + n))
    await _conversation(db, org, "fresh", active=NOW - timedelta(days=1))

    first = await retention.run(_maker(app), now=NOW, batch=2)

    assert (first.expired, first.purged) == (5, 5)
    db.expire_all()
    assert await _titles(db, deleted=True) == {f"idle{n}" for n in range(5)}
    assert await _titles(db, deleted=False) == {"fresh"}
    assert await _count(db, ConversationMessage) == 12
    # One audit entry per batch of expired conversations (2 + 2 + 1).
    expired = list(
        await db.scalars(select(AuditEntry).where(AuditEntry.action == "conversation.retention_deleted"))
    )
    assert sorted(e.after["conversations"] for e in expired if e.after) == [1, 2, 2]

    second = await retention.run(_maker(app), now=NOW, batch=2)
    assert (second.expired, second.purged) == (0, 0)
    assert await _count(db, Conversation) == 6


async def test_a_2000_message_conversation_is_purged_at_once(app: Any, db: AsyncSession) -> None:
    org = await make_org(db)
    await _conversation(
        db, org, "long", active=NOW - timedelta(days=90), deleted=NOW - timedelta(days=31), messages=2000
    )
    assert await _count(db, ConversationMessage) == 2000
    outcome = await retention.run(_maker(app), now=NOW)
    assert outcome.purged == 1
    assert await _count(db, ConversationMessage) == 0
    assert await _count(db, Conversation) == 0


async def test_purge_hooks_run_in_the_batch_and_after_the_commit(app: Any, db: AsyncSession) -> None:
    org = await make_org(db)
    cid = await _conversation(
        db, org, "old", active=NOW - timedelta(days=60), deleted=NOW - timedelta(days=40)
    )
    seen: list[Any] = []

    async def hook(session: AsyncSession, ids: Any, settings: Any) -> Any:
        seen.append(("in", list(ids), await session.scalar(select(func.count()).select_from(Conversation))))

        async def after() -> None:
            seen.append(("after",))

        return after

    retention.on_purge(hook)
    try:
        await retention.run(_maker(app), now=NOW)
    finally:
        retention._purge_hooks.remove(hook)
    assert seen == [("in", [cid], 1), ("after",)]


async def test_a_new_account_keeps_conversations(db: AsyncSession) -> None:
    account, _owner = await make_account(db, name="Fresh")
    await make_user(db, account)
    await db.refresh(account)
    assert (account.conversation_retention_days, account.conversation_review_enabled) == (0, False)
