"""The demo's conversations: the owner's threads open on an agent's Markdown answer and a code answer
kept as an artifact, in the sidebar's date groups."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import artifacts, service
from cockpit.demo import DEMO_EMAIL, DemoLogin
from cockpit.users.models import User


async def test_the_owner_has_conversations_and_an_artifact(db: AsyncSession, demo: DemoLogin) -> None:
    owner = await db.scalar(select(User).where(User.email == DEMO_EMAIL))
    assert owner is not None
    actor = Actor.for_user(owner)
    found = await service.list_conversations(db, actor)
    titles = [c.title for c in found.items]
    assert titles == ["How many credits do I have left?", "Monthly cost script"]  # latest first
    helper = found.items[0]
    assert helper.agent_id is not None
    views = await service.messages(db, actor, helper.id)
    assert [str(v.message.role) for v in views] == ["user", "assistant"]
    assert "| **Left** |" in views[1].message.content
    kept = await artifacts.list_artifacts(db, actor)
    assert [a.name for a in kept.items] == ["monthly_costs.py"]
