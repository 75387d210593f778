"""Migration 0034 counts the distinct people of the day rows of models, agents and groups from the
rollups already kept, as a roll counts them; its downgrade sets them back to 0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import rollups
from cockpit.analytics.rollup_models import UsageRollup
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import alembic_config, upgrade
from cockpit.usage.models import UsageRecord
from tests.analytics.data import make_calls
from tests.audit.test_migration import empty_database
from tests.builders import make_account
from tests.conftest import _in_thread

__all__ = ["empty_database"]  # the fixture, shared with the audit migration's test


@asynccontextmanager
async def session_at(url: str) -> AsyncIterator[AsyncSession]:
    """A session on the database at ``url`` (an engine of its own, disposed after)."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            yield session
    finally:
        await engine.dispose()


async def _people(url: str) -> dict[tuple[str, int, str], int]:
    async with session_at(url) as session:
        rows = await session.execute(
            select(UsageRollup.dim, UsageRollup.block, UsageRollup.key, UsageRollup.people).where(
                UsageRollup.dim.in_(["model", "agent", "group"]), UsageRollup.level == 0
            )
        )
        return {(dim, block, key): people for dim, block, key, people in rows}


async def test_people_of_the_values_day_rows_are_counted_by_the_upgrade(empty_database: str) -> None:
    url = empty_database
    _in_thread(upgrade, url, "head")
    async with session_at(url) as session:
        account, _ = await make_account(session)
        made = make_calls(account.id)
        await session.execute(insert(UsageRecord), made.rows)
        await session.commit()
        await rollups.roll_all(session)
    rolled = await _people(url)
    # The roll counted them: the distinct people of each model's and each agent's calls that day (the
    # account's zone is UTC).
    direct: dict[tuple[str, int, str], set[object]] = {}
    for r in made.rows:
        day = int(r["created_at"].timestamp()) // 86400
        if r["user_id"] is not None:
            direct.setdefault(("model", day, r["model"]), set()).add(r["user_id"])
            direct.setdefault(("agent", day, r["agent_id"] or ""), set()).add(r["user_id"])
    assert {key: n for key, n in rolled.items() if key[0] != "group" and n} == {
        key: len(people) for key, people in direct.items()
    }
    assert any(n > 1 for key, n in rolled.items() if key[0] == "group")
    _in_thread(command.downgrade, alembic_config(url), "0033")
    assert set((await _people(url)).values()) == {0}
    _in_thread(upgrade, url, "head")
    assert await _people(url) == rolled
