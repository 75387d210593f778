"""The conversations service: the message tree (branches, siblings, the current branch), what a
model call needs (history), and text that cannot be stored (callers that skip the front door)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import service
from cockpit.conversations.models import ConversationMessage, MessageStatus
from cockpit.conversations.schemas import MessageView
from cockpit.kit.errors import InvalidInput, NotFound
from tests.conversations.conftest import make_org


def contents(views: list[MessageView]) -> list[str]:
    return [v.message.content for v in views]


async def test_branches_siblings_and_the_current_branch(db: AsyncSession) -> None:
    org = await make_org(db)
    me = Actor.for_user(org.member)
    c = await service.start_conversation(db, me, model="gpt-4o")
    q1 = await service.add_user_message(db, me, c.id, content="Hello")
    a1 = await service.add_assistant_message(db, me, c.id, parent_id=q1.id, content="Hi!", model="gpt-4o")
    q2 = await service.add_user_message(db, me, c.id, content="Tell me a joke")  # continues the branch
    a2 = await service.add_assistant_message(db, me, c.id, parent_id=q2.id, content="Knock knock")
    assert (q2.parent_id, a2.parent_id) == (a1.id, q2.id)
    assert c.current_leaf_id == a2.id

    # An edit of q2: a parent that is not the last message starts a second branch.
    q2b = await service.add_user_message(db, me, c.id, content="Tell me a poem", parent_id=a1.id)
    assert c.current_leaf_id == q2b.id
    a2b = await service.add_assistant_message(db, me, c.id, parent_id=q2b.id, content="Roses are red")
    # A regenerated answer: a sibling of the first one.
    a2c = await service.add_assistant_message(db, me, c.id, parent_id=q2b.id, content="Violets are blue")
    await db.commit()
    assert c.current_leaf_id == a2c.id

    branch = await service.messages(db, me, c.id)
    assert contents(branch) == ["Hello", "Hi!", "Tell me a poem", "Violets are blue"]
    assert [(v.sibling_index, len(v.sibling_ids)) for v in branch] == [(0, 1), (0, 1), (1, 2), (1, 2)]
    assert branch[2].sibling_ids == [q2.id, q2b.id]
    assert branch[3].sibling_ids == [a2b.id, a2c.id]

    # Any message names a branch: it runs on down that message's latest replies.
    first = await service.messages(db, me, c.id, leaf_id=q2.id)
    assert contents(first) == ["Hello", "Hi!", "Tell me a joke", "Knock knock"]
    assert first[2].sibling_index == 0
    assert contents(await service.messages(db, me, c.id, leaf_id=a2b.id))[-1] == "Roses are red"
    with pytest.raises(NotFound):
        await service.messages(db, me, c.id, leaf_id=uuid.uuid4())

    # The conversation reopens on the branch last viewed.
    await service.select_branch(db, me, c.id, q2.id)
    assert c.current_leaf_id == a2.id
    assert contents(await service.messages(db, me, c.id))[-1] == "Knock knock"
    # ... and a message without a parent continues that branch.
    q3 = await service.add_user_message(db, me, c.id, content="Who's there?")
    assert q3.parent_id == a2.id

    whole = await service.tree(db, me, c.id)
    assert {v.message.id for v in whole} == {q1.id, a1.id, q2.id, a2.id, q2b.id, a2b.id, a2c.id, q3.id}


async def test_editing_the_first_message_makes_a_second_root(db: AsyncSession) -> None:
    org = await make_org(db)
    me = Actor.for_user(org.member)
    c = await service.start_conversation(db, me, model="gpt-4o")
    q1 = await service.add_user_message(db, me, c.id, content="Helo")
    await service.add_assistant_message(db, me, c.id, parent_id=q1.id, content="Hi")
    q1b = await service.add_user_message(db, me, c.id, content="Hello", edit_of=q1.id)
    assert q1b.parent_id is None
    branch = await service.messages(db, me, c.id)
    assert contents(branch) == ["Hello"]
    assert (branch[0].sibling_ids, branch[0].sibling_index) == ([q1.id, q1b.id], 1)
    with pytest.raises(InvalidInput):  # both ways of placing it
        await service.add_user_message(db, me, c.id, content="x", edit_of=q1.id, parent_id=q1.id)


async def test_history_is_the_branch_without_failed_answers(db: AsyncSession) -> None:
    org = await make_org(db)
    me = Actor.for_user(org.member)
    c = await service.start_conversation(db, me, agent="helper")
    q1 = await service.add_user_message(db, me, c.id, content="Hi")
    await service.add_assistant_message(
        db, me, c.id, parent_id=q1.id, content="", status=MessageStatus.error, error="upstream down"
    )
    stopped = await service.add_assistant_message(
        db, me, c.id, parent_id=q1.id, content="Hel", status=MessageStatus.stopped,
        model="gpt-4o", input_tokens=3, output_tokens=1, cost_usd=Decimal("0.000005"),
        credits=Decimal("0.01"), tool_steps=[{"tool": "search", "result": "ok"}],
    )  # fmt: skip
    await db.commit()
    assert await service.history(db, me, c.id) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hel"},
    ]
    # The failed answer is a sibling the person can switch to; history of that branch leaves it out.
    branch = await service.messages(db, me, c.id, leaf_id=stopped.id)
    assert branch[-1].message.cost_usd == Decimal("0.000005")
    assert branch[-1].message.tool_steps == [{"tool": "search", "result": "ok"}]
    failed = branch[-1].sibling_ids[0]
    assert await service.history(db, me, c.id, leaf_id=failed) == [{"role": "user", "content": "Hi"}]


async def test_parents_from_elsewhere_are_refused(db: AsyncSession) -> None:
    org = await make_org(db)
    me = Actor.for_user(org.member)
    one = await service.start_conversation(db, me, model="gpt-4o")
    two = await service.start_conversation(db, me, model="gpt-4o")
    q = await service.add_user_message(db, me, one.id, content="Hi")
    with pytest.raises(InvalidInput) as refused:
        await service.add_user_message(db, me, two.id, content="Hi", parent_id=q.id)
    assert refused.value.code == "unknown_parent"
    a = await service.add_assistant_message(db, me, one.id, parent_id=q.id, content="Hello")
    with pytest.raises(InvalidInput):  # an answer follows a question, not an answer
        await service.add_assistant_message(db, me, one.id, parent_id=a.id, content="Again")


@pytest.mark.parametrize("content", ["nul \x00 here", "lone \ud800 surrogate", "", "   ", "x" * 100_001])
async def test_text_that_cannot_be_stored_is_refused(db: AsyncSession, content: str) -> None:
    org = await make_org(db)
    me = Actor.for_user(org.member)
    c = await service.start_conversation(db, me, model="gpt-4o")
    await db.commit()
    with pytest.raises(InvalidInput):
        await service.add_user_message(db, me, c.id, content=content)
    await db.rollback()
    count = await db.scalar(select(func.count()).select_from(ConversationMessage))
    assert count == 0


async def test_an_answer_is_kept_whatever_it_contains(db: AsyncSession) -> None:
    org = await make_org(db)
    me = Actor.for_user(org.member)
    c = await service.start_conversation(db, me, model="gpt-4o")
    q = await service.add_user_message(db, me, c.id, content="x" * 100_000)
    a = await service.add_assistant_message(
        db, me, c.id, parent_id=q.id, content="a\x00b\ud800c", error="e" * 600,
        status=MessageStatus.error, tool_steps=[{"k\x00": "v\udfff"}],
    )  # fmt: skip
    await db.commit()
    await db.refresh(a)
    assert a.content == "a\ufffdb\ufffdc"
    assert a.error is not None
    assert len(a.error) == 500
    assert a.tool_steps == [{"k\ufffd": "v\ufffd"}]
