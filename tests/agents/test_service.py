"""The agents service where the API cannot show it: concurrent defaults, text refused by the schema
itself (callers that do not pass the front door), lookups by slug and name."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents import service as agents
from cockpit.agents.models import Agent
from cockpit.agents.schemas import AgentCreate, AgentUpdate, parsed, slug_of
from cockpit.authz.actor import Actor
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.errors import InvalidInput
from tests.agents.conftest import agent_count, make_team


async def test_concurrent_defaults_leave_one(db: AsyncSession, database_url: str) -> None:
    t = await make_team(db)
    actor = Actor.for_user(t.admin)
    made = []
    for name in ("One", "Two", "Three", "Four"):
        made.append(await agents.create_agent(db, actor, AgentCreate(name=name, model="gpt-4o")))
    await db.commit()
    ids = [a.id for a in made]

    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)

    async def make_default(agent_id: object) -> None:
        async with sessions() as session:
            await agents.set_default_agent(session, actor, agent_id)  # type: ignore[arg-type]
            await asyncio.sleep(0.01)  # hold the transaction open while the others try
            await session.commit()

    try:
        await asyncio.wait_for(asyncio.gather(*(make_default(i) for i in ids)), timeout=60)
    finally:
        await engine.dispose()
    await db.commit()
    defaults = list(
        await db.scalars(
            select(Agent.name).where(Agent.account_id == t.account.id, Agent.is_default.is_(True))
        )
    )
    assert len(defaults) == 1, defaults


async def test_the_schema_refuses_unstorable_text() -> None:
    for bad in ("a\x00b", "a\ud800b"):
        with pytest.raises(InvalidInput) as refused:
            parsed(AgentCreate, {"name": "Bot", "model": "gpt-4o", "instructions": bad})
        assert refused.value.status == 422
        assert refused.value.details
        assert refused.value.details[0]["field"] == "instructions"
        with pytest.raises(InvalidInput):
            parsed(AgentCreate, {"name": "Bot", "model": "gpt-4o", "starters": ["ok", bad]})
        with pytest.raises(InvalidInput):
            parsed(AgentUpdate, {"tools": {"00000000-0000-0000-0000-000000000000": {"names": [bad]}}})


def test_slugs_derived_from_names() -> None:
    assert slug_of("Support Bot!") == "support-bot"
    assert slug_of("  Ünïcode — names  ") == "unicode-names"
    assert slug_of("***") == "agent"
    assert slug_of("x" * 100) == "x" * 64
    assert slug_of("snake_case name") == "snake_case-name"


async def test_by_slug_and_names_of(db: AsyncSession) -> None:
    t = await make_team(db)
    other = await make_team(db, name="Other")
    actor = Actor.for_user(t.admin)
    agent = await agents.create_agent(db, actor, AgentCreate(name="Finder", model="gpt-4o"))
    theirs = await agents.create_agent(
        db, Actor.for_user(other.admin), AgentCreate(name="Theirs", model="gpt-4o")
    )
    await db.commit()
    assert (await agents.by_slug(db, t.account.id, "finder")) is not None
    assert await agents.by_slug(db, other.account.id, "finder") is None
    assert await agents.names_of(db, t.account.id, [str(agent.id), str(theirs.id)]) == {
        str(agent.id): "Finder"
    }
    assert await agent_count(db, t.account.id) == 1
