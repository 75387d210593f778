"""A small account's people in blocks of 16 days (``user/16``): its person views (a breakdown by
person, the top users, the pivot's rows) read the period's whole blocks and the calls around them,
and every figure still equals the direct computation over the rows: in a zone with a change of the
clocks, for periods with partial days, ending on a block's edge or holding no whole block, with calls
recorded since the watermark and late calls rolled into past blocks."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import queries, rollup_read, rollups, service
from cockpit.analytics.filters import Dimension, Filters
from cockpit.analytics.rollup_dims import PEOPLE_BLOCKS
from cockpit.analytics.rollup_models import UsageRollup
from cockpit.analytics.rollup_parts import day_of, midnight
from cockpit.kit.db import dialect_name
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from tests.analytics.data import Calls, expected, make_calls
from tests.analytics.test_rollups import _direct_pivot, _no_labels, check_person_pages, figures_by
from tests.builders import make_account

ZONE = ZoneInfo("Europe/Paris")  # the clocks go back on 2026-10-25, inside the calls' span
FIRST = datetime(2026, 8, 20, 9, 0, tzinfo=ZONE)
LAST = datetime(2026, 11, 4, 17, 0, tzinfo=ZONE)
SMALL = 10**9  # people_from: the account keeps no person rollups


def _block_edge(block: int) -> datetime:
    """The local midnight a block of 16 days starts at."""
    return midnight(block * 16, ZONE)


def _spread(calls: Calls, rng: random.Random) -> Calls:
    """The generated calls moved over [FIRST, LAST), some exactly on the blocks' edges (and just
    before them)."""
    span = int((LAST - FIRST).total_seconds())
    edges = [
        _block_edge(b) + shift
        for b in range(day_of(FIRST, ZONE) // 16 + 1, day_of(LAST, ZONE) // 16 + 1)
        for shift in (timedelta(0), -timedelta(microseconds=1))
    ]
    moved = []
    for n, r in enumerate(calls.rows):
        moment = edges[n] if n < len(edges) else FIRST + timedelta(seconds=rng.randrange(span))
        moved.append({**r, "created_at": moment})
    return Calls(calls.account_id, moved, calls.users, calls.groups)


def _measured(value: service.Metric, rows: list[dict[str, Any]]) -> Any:
    return service.measure(expected(rows), value)


async def _insert(db: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await db.execute(insert(UsageRecord), rows)
    await db.commit()


def _periods() -> list[Filters]:
    b = day_of(FIRST, ZONE) // 16 + 1  # the first block whose days are all in the calls' span
    return [
        Filters(FIRST, LAST),  # partial days at both ends, blocks between
        Filters(_block_edge(b), _block_edge(b + 3)),  # exactly three blocks: no call around them
        Filters(_block_edge(b) - timedelta(hours=30), _block_edge(b + 2) + timedelta(days=5, hours=3)),
        # a block's first day, partly: that block is read from the calls
        Filters(_block_edge(b) + timedelta(hours=3), _block_edge(b + 3) + timedelta(hours=20)),
        Filters(_block_edge(b) + timedelta(days=2), _block_edge(b + 1) + timedelta(days=3)),  # no whole block
    ]


async def _check_people(db: AsyncSession, calls: Calls, rows_all: list[dict[str, Any]]) -> None:
    scope = calls.scope()
    for f in _periods():
        rows = [r for r in rows_all if f.start <= r["created_at"] < f.end]
        plan = await rollup_read.plan(db, scope, f)
        assert plan is not None
        src = rollup_read.source(plan, Dimension.user, blocks=True)
        assert src is not None
        whole_block = f.end - f.start > timedelta(days=16 * 2)  # (the last period holds none)
        assert (src.rolled is PEOPLE_BLOCKS) is whole_block, f
        assert src.calls is not whole_block
        assert rollup_read.source(plan, Dimension.user).calls  # type: ignore[union-attr]  # (days)
        await check_person_pages(db, scope, f, rows, limit=5, offsets=(0, 5, 10))
        groups = figures_by(rows, lambda r: r["user_id"])
        top = await service.top_users(db, scope, f, _no_labels)
        by_cost = sorted(groups, key=lambda k: (-groups[k].cost_usd, -groups[k].requests, str(k)))
        assert [item.key for item in top.items] == [k for k in by_cost if k is not None][:10]
        for value in (service.Metric.cost, service.Metric.tokens):
            direct = _direct_pivot(rows, "model", partial(_measured, value))
            totals = {user: sum(by.values()) for user, by in direct.items()}
            order = sorted(totals, key=lambda k: (-totals[k], str(k)))
            table = await service.pivot(db, scope, f, _no_labels, value=value, limit=6, offset=3)
            assert table.count == len(order)
            assert table.total == sum(totals.values())
            assert [r.key for r in table.rows] == order[3:9]
            for row in table.rows:
                assert row.total == totals[row.key]
                assert {k: v for k, v in row.cells.items() if v} == {
                    k: v for k, v in direct[row.key].items() if v
                }


async def _small_account(db: AsyncSession) -> Calls:
    account, _ = await make_account(db)
    await db.execute(update(Account).where(Account.id == account.id).values(timezone="Europe/Paris"))
    await db.commit()
    return _spread(make_calls(account.id, n=900), random.Random(8))


async def test_a_small_accounts_people_come_from_their_blocks_and_the_calls_around(db: AsyncSession) -> None:
    calls = await _small_account(db)
    ordered = sorted(calls.rows, key=lambda r: r["created_at"])
    await _insert(db, ordered[:600])
    await rollups.roll_all(db, people_from=SMALL)
    # Late calls into past blocks, rolled by the next run (added to those blocks' rows).
    late = [
        {**r, "id": uuid.uuid4(), "created_at": r["created_at"] - timedelta(days=20)}
        for r in ordered[100:600:9]
    ]
    late = [r for r in late if r["created_at"] >= FIRST]
    await _insert(db, ordered[600:800] + late)
    await rollups.roll_all(db, people_from=SMALL)
    kept = await db.scalars(
        select(UsageRollup.level).where(
            UsageRollup.account_id == calls.account_id, UsageRollup.dim == "user/16"
        )
    )
    assert set(kept) == {2}  # blocks of 16 days only
    # And calls recorded since the watermark, inside the blocks and around them.
    recent = ordered[800:] + [{**r, "id": uuid.uuid4()} for r in ordered[200:800:13]]
    await _insert(db, recent)
    await _check_people(db, calls, calls.rows + late + recent[len(ordered) - 800 :])


async def test_the_blocks_are_read(db: AsyncSession) -> None:
    """Not the calls again: a change to a person's block row shows in the breakdown by person of a
    period holding that block, and not in one holding none."""
    calls = await _small_account(db)
    await _insert(db, calls.rows)
    await rollups.roll_all(db, people_from=SMALL)
    whole, none = _periods()[1], _periods()[-1]
    scope = calls.scope()
    person = calls.users[0]
    before = (await queries.grouped(db, scope, whole, Dimension.user, users=False))[person]
    found = await service.breakdown(db, scope, whole, Dimension.user, _no_labels, limit=100)
    assert {item.key: item.totals for item in found.items}[person] == before
    block = day_of(whole.start, ZONE) // 16
    changed = await db.execute(
        update(UsageRollup)
        .where(UsageRollup.account_id == calls.account_id, UsageRollup.dim == PEOPLE_BLOCKS.name)
        .where(UsageRollup.level == 2, UsageRollup.block == block)
        .where(UsageRollup.key == rollup_read.stored(dialect_name(db), person))
        .values(requests=UsageRollup.requests + 1000)
    )
    assert changed.rowcount == 1  # type: ignore[attr-defined]
    await db.commit()
    found = await service.breakdown(db, scope, whole, Dimension.user, _no_labels, limit=100)
    assert {item.key: item.totals for item in found.items}[person].requests == before.requests + 1000
    unmoved = await service.breakdown(db, scope, none, Dimension.user, _no_labels, limit=100)
    rows = [r for r in calls.rows if none.start <= r["created_at"] < none.end]
    assert {item.key: item.totals for item in unmoved.items} == figures_by(rows, lambda r: r["user_id"])
