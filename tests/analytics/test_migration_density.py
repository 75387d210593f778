"""Migration 0036: accounts rolled before it keep their person rollups (nothing rebuilt) and get
their calls counted; its downgrade has the accounts without person rollups rebuilt (the older code
reads them for every account)."""

from __future__ import annotations

import uuid

from alembic import command
from sqlalchemy import insert, select, text

from cockpit.analytics import rollups
from cockpit.analytics.rollup_models import UsageRollupAccount
from cockpit.kit.migrate import alembic_config, upgrade
from cockpit.usage.models import UsageRecord
from tests.analytics.data import make_calls
from tests.analytics.test_migration import session_at
from tests.audit.test_migration import empty_database
from tests.builders import make_account
from tests.conftest import _in_thread

__all__ = ["empty_database"]  # the fixture, shared with the audit migration's test


async def test_accounts_rolled_before_keep_their_people_and_are_counted(empty_database: str) -> None:
    url = empty_database
    _in_thread(upgrade, url, "head")
    async with session_at(url) as session:
        big, _ = await make_account(session)
        small, _ = await make_account(session, name="Small")
        calls = make_calls(big.id, n=300).rows
        await session.execute(insert(UsageRecord), calls)
        await session.commit()
        await rollups.roll_all(session, people_from=0)  # the big account, with people
        await session.execute(insert(UsageRecord), make_calls(small.id, n=40).rows)
        await session.commit()
        await rollups.roll_all(session, people_from=100)  # the small one, without
    _in_thread(command.downgrade, alembic_config(url), "0035")
    async with session_at(url) as session:
        zones = await session.scalars(text("SELECT zone FROM usage_rollup_accounts"))
        assert sorted(zones) == ["", "UTC"]  # the small account's rollups: rebuilt
        await session.execute(text("UPDATE usage_rollup_accounts SET zone = 'UTC'"))
        await session.commit()
    _in_thread(upgrade, url, "head")
    async with session_at(url) as session:
        kept = {
            a: (people, n)
            for a, people, n in await session.execute(
                select(UsageRollupAccount.account_id, UsageRollupAccount.people, UsageRollupAccount.calls)
            )
        }
    assert kept == {big.id: (True, 300), small.id: (True, 40)}


async def test_small_accounts_get_their_people_blocks_by_a_rebuild(empty_database: str) -> None:
    """Migration 0037: an account rolled without people before it is marked for a rebuild, which
    gives it its people's blocks of 16 days; an account with people is left alone. The downgrade
    drops the blocks."""
    url = empty_database
    _in_thread(upgrade, url, "head")
    async with session_at(url) as session:
        big, _ = await make_account(session)
        small, _ = await make_account(session, name="Small")
        await session.execute(insert(UsageRecord), make_calls(big.id, n=300).rows)
        await session.execute(insert(UsageRecord), make_calls(small.id, n=40).rows)
        await session.commit()
        await rollups.roll_all(session, people_from=100)
    blocks = text("SELECT DISTINCT account_id FROM usage_rollups WHERE dim = 'user/16'")
    _in_thread(command.downgrade, alembic_config(url), "0036")
    async with session_at(url) as session:
        assert list(await session.scalars(blocks)) == []
    _in_thread(upgrade, url, "head")
    async with session_at(url) as session:
        zones = dict(
            (await session.execute(select(UsageRollupAccount.account_id, UsageRollupAccount.zone))).all()
        )
        assert zones == {big.id: "UTC", small.id: ""}  # the small one: rebuilt by the next roll
        assert await rollups.roll_all(session, people_from=100) == 40
        assert [uuid.UUID(str(a)) for a in await session.scalars(blocks)] == [small.id]
        kept = await session.execute(
            select(UsageRollupAccount.account_id, UsageRollupAccount.zone, UsageRollupAccount.people)
        )
        assert {a: (z, p) for a, z, p in kept} == {big.id: ("UTC", True), small.id: ("UTC", False)}
