"""Migration 0035 keeps the running sums' rows of checkpoint days and of the newest day only (the
rows the code keeps); its downgrade has every account's rollups rebuilt (the older code reads a row
of every day)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from alembic import command
from sqlalchemy import insert, select, update

from cockpit.analytics import rollup_read, rollup_running, rollups
from cockpit.analytics.filters import Filters
from cockpit.analytics.rollup_models import SUM_COLUMNS, UsageRollup, UsageRollupAccount
from cockpit.kit.migrate import alembic_config, upgrade
from cockpit.usage.models import UsageRecord
from tests.analytics.data import END, START, Calls, make_calls
from tests.analytics.test_migration import session_at
from tests.audit.test_migration import empty_database
from tests.builders import make_account
from tests.conftest import _in_thread

__all__ = ["empty_database"]  # the fixture, shared with the audit migration's test

RUNNING = ("user+", "token+")


async def _running(url: str) -> dict[tuple[str, int, str], int]:
    async with session_at(url) as session:
        rows = await session.execute(
            select(UsageRollup.dim, UsageRollup.block, UsageRollup.key, UsageRollup.requests).where(
                UsageRollup.dim.in_(RUNNING)
            )
        )
        return {(dim, block, key): requests for dim, block, key, requests in rows}


async def _zones(url: str) -> set[str]:
    async with session_at(url) as session:
        return set(await session.scalars(select(UsageRollupAccount.zone)))


async def test_the_upgrade_keeps_the_checkpoint_rows(empty_database: str) -> None:
    url = empty_database
    _in_thread(upgrade, url, "head")
    async with session_at(url) as session:
        account, _ = await make_account(session)
        made = make_calls(account.id)
        # And a call on the day after the newest (20761, not a checkpoint: it keeps a head row).
        newest = max(r["created_at"] for r in made.rows)
        extra = {**made.rows[0], "id": uuid.uuid4(), "created_at": newest + timedelta(days=1)}
        await session.execute(insert(UsageRecord), [*made.rows, extra])
        await session.commit()
        await rollups.roll_all(session)
    kept = await _running(url)
    assert kept
    head = {dim: max(block for d, block, _ in kept if d == dim) for dim in RUNNING}
    assert head["user+"] % rollup_running.CHECKPOINT  # the data's newest day is not a checkpoint
    assert {block % rollup_running.CHECKPOINT for dim, block, _ in kept if block != head[dim]} == {0}
    _in_thread(command.downgrade, alembic_config(url), "0034")
    assert await _zones(url) == {""}  # rebuilt by the next roll of the older code
    # What the older code kept: a row of every day (here the kept rows' sums copied to the next days
    # before the newest, as for people who did not call on them), built in the account's zone.
    async with session_at(url) as session:
        await session.execute(
            insert(UsageRollup),
            [
                {
                    **dict.fromkeys(SUM_COLUMNS, 0),
                    **{"account_id": account.id, "dim": dim, "level": 0, "block": block + shift},
                    **{"key": key, "key2": "", "requests": requests + shift},
                }
                for (dim, block, key), requests in kept.items()
                for shift in (1, 2, 3)
                if block + shift < head[dim]
            ],
        )
        await session.execute(update(UsageRollupAccount).values(zone="UTC"))
        await session.commit()
    assert len(await _running(url)) > 2 * len(kept)
    _in_thread(upgrade, url, "head")
    assert await _running(url) == kept
    assert await _zones(url) == {"UTC"}  # no rebuild: the views read the rollups at once
    async with session_at(url) as session:
        scope = Calls(account.id, [], [], []).scope()
        assert await rollup_read.plan(session, scope, Filters(START, END)) is not None
