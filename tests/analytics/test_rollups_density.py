"""An account's rollups keep the person dimensions (people, tokens, their running sums, the pairs
with them) only once they hold ``people_from`` calls: a small account keeps the few dimensions of a
few hundred values a day, its person views read its calls, and every figure is still exact. The
roll that crosses the threshold rebuilds the account's rollups with people; they are never dropped."""

from __future__ import annotations

import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import queries, rollup_dims, rollup_read, rollups
from cockpit.analytics.filters import Dimension, Scope
from cockpit.analytics.rollup_models import UsageRollup, UsageRollupAccount
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from tests.analytics.data import Calls, expected, make_calls, selected
from tests.analytics.test_rollups import PERIODS, _check_everything, _check_groups, bucket_day, figures_by
from tests.analytics.test_rollups import local_day as day_of
from tests.builders import make_account

SMALL = {dim.name for dim in rollup_dims.DIMS.values() if dim.kept(people=False)}
UTC = ZoneInfo("UTC")


async def _dims(db: AsyncSession, account_id: uuid.UUID) -> set[str]:
    found = await db.scalars(select(UsageRollup.dim).where(UsageRollup.account_id == account_id).distinct())
    return set(found)


async def _kept(db: AsyncSession, account_id: uuid.UUID) -> tuple[bool, int]:
    row = (
        await db.execute(
            select(UsageRollupAccount.people, UsageRollupAccount.calls).where(
                UsageRollupAccount.account_id == account_id
            )
        )
    ).one()
    return bool(row.people), int(row.calls)


async def _insert(db: AsyncSession, rows: list[dict[str, object]]) -> None:
    await db.execute(insert(UsageRecord), rows)
    await db.commit()


def test_the_small_rollups_are_the_dimensions_without_people() -> None:
    """And the people in blocks of 16 days, which an account with person rollups does not keep."""
    assert {"*", "model", "group", "project", "agent", "provider", "operation", "status", "user/16"} == SMALL
    assert {dim.name for dim in rollup_dims.DIMS.values() if dim.kept(people=True)} == (
        set(rollup_dims.DIMS) - {"user/16"}
    )


async def test_a_small_account_keeps_no_person_rows_and_its_figures_are_exact(
    db: AsyncSession, calls: Calls
) -> None:
    assert await rollups.roll_all(db, people_from=len(calls.rows) + 1) == 2 * len(calls.rows)
    assert await _dims(db, calls.account_id) == SMALL
    assert await _kept(db, calls.account_id) == (False, len(calls.rows))
    scope = calls.scope()
    plan = await rollup_read.plan(db, scope, PERIODS[1])
    assert plan is not None
    assert not plan.people
    assert not plan.newest
    model = rollup_read.source(plan, Dimension.model)
    assert model is not None
    assert not model.calls
    for first, second in ((Dimension.user, None), (Dimension.token, None), (Dimension.model, Dimension.user)):
        found = rollup_read.source(plan, first, second)  # read from the calls, by the same statements
        assert found is not None
        assert found.calls
    await _check_everything(db, calls, UTC)
    # Under one filter: the filter's own rows where kept (a model), else the calls (a group's models).
    zone = UTC
    for values, keep in (
        ({"model": "gpt-4o"}, lambda r: r["model"] == "gpt-4o"),
        ({"group_id": calls.groups[0]}, lambda r: r["group_id"] == calls.groups[0]),
        ({"user_id": calls.users[1]}, lambda r: r["user_id"] == calls.users[1]),
    ):
        for f0 in PERIODS:
            f = f0.narrowed(**values)
            rows = selected(calls, f, keep)
            assert await queries.totals(db, scope, f) == expected(rows), values
            await _check_groups(db, scope, f, rows)
            days = await queries.buckets(db, scope, f, zone, 86400)
            assert {bucket_day(n, zone): t for (n, _), t in days.items()} == figures_by(
                rows, lambda r: day_of(r["created_at"], zone), people=True
            ), values


async def test_a_small_account_reads_what_it_keeps_from_the_rollups(db: AsyncSession, calls: Calls) -> None:
    """Not a fallback to the calls for everything: a change to a rolled model day shows in the
    breakdown by model, one to a whole day's people in the daily timeline, one to a whole day's
    sums in the totals; the totals' distinct people come from the calls."""
    await rollups.roll_all(db, people_from=10**9)
    f = PERIODS[1]  # whole UTC days
    scope = calls.scope()
    before = await queries.grouped(db, scope, f, Dimension.model, users=False)
    totals = await queries.totals(db, scope, f)
    day = int(f.start.timestamp()) // 86400 + 1
    changed = await db.execute(
        update(UsageRollup)
        .where(UsageRollup.account_id == calls.account_id, UsageRollup.dim == "model")
        .where(UsageRollup.level == 0, UsageRollup.block == day, UsageRollup.key == "gpt-4o")
        .values(requests=UsageRollup.requests + 1000)
    )
    assert changed.rowcount == 1  # type: ignore[attr-defined]
    await db.commit()
    after = await queries.grouped(db, scope, f, Dimension.model, users=False)
    assert after["gpt-4o"].requests == before["gpt-4o"].requests + 1000
    assert await queries.totals(db, scope, f) == totals
    # The whole days' people are counted by the roll, from the calls, and read from their rows.
    days = await queries.buckets(db, scope, f, UTC, 86400)
    await db.execute(
        update(UsageRollup)
        .where(UsageRollup.account_id == calls.account_id, UsageRollup.dim == "*")
        .where(UsageRollup.level == 0, UsageRollup.block == day)
        .values(people=UsageRollup.people + 1000)
    )
    await db.commit()
    again = await queries.buckets(db, scope, f, UTC, 86400)
    assert again[(day, None)].active_users == days[(day, None)].active_users + 1000 > 1000
    # The period's people are not a sum of days': counted from the calls, they do not move.
    assert await queries.totals(db, scope, f) == totals
    # The totals' sums are the whole account's day rows'.
    await db.execute(
        update(UsageRollup)
        .where(UsageRollup.account_id == calls.account_id, UsageRollup.dim == "*")
        .where(UsageRollup.level == 0, UsageRollup.block == day)
        .values(requests=UsageRollup.requests + 7, cost_usd=UsageRollup.cost_usd + 5)
    )
    await db.commit()
    moved = await queries.totals(db, scope, f)
    assert moved.requests == totals.requests + 7
    assert moved.active_users == totals.active_users > 0


async def test_an_account_that_grows_keeps_its_people_from_then_on(db: AsyncSession) -> None:
    account, _ = await make_account(db)
    made = make_calls(account.id, n=600)
    ordered = sorted(made.rows, key=lambda r: r["created_at"])
    await _insert(db, ordered[:300])
    assert await rollups.roll_all(db, people_from=500) == 300
    assert await _kept(db, account.id) == (False, 300)
    assert await _dims(db, account.id) == SMALL
    # The rest, and late calls in days already rolled: half rolled (small), half from the calls.
    late = [
        {**r, "id": uuid.uuid4(), "created_at": r["created_at"] - timedelta(days=2)}
        for r in ordered[:300:7]
        if r["created_at"] - timedelta(days=2) >= PERIODS[0].start
    ]
    await _insert(db, ordered[300:] + late)
    everything = Calls(account.id, made.rows + late, made.users, made.groups)
    await _check_everything(db, everything, UTC)
    # Crossing 500 calls: rebuilt from every call, with people.
    assert await rollups.roll_all(db, people_from=500) == len(everything.rows)
    assert await _kept(db, account.id) == (True, len(everything.rows))
    with_people = {dim.name for dim in rollup_dims.DIMS.values() if dim.kept(people=True)}
    assert await _dims(db, account.id) == with_people | {"user+", "token+"}
    plan = await rollup_read.plan(db, everything.scope(), PERIODS[1])
    assert plan is not None
    assert plan.people
    assert rollup_read.source(plan, Dimension.user) is not None
    await _check_everything(db, everything, UTC)
    # Never dropped again, whatever the threshold; the calls add up.
    more = [{**r, "id": uuid.uuid4()} for r in ordered[-20:]]
    await _insert(db, more)
    assert await rollups.roll_all(db, people_from=10**9) == 20
    assert await _kept(db, account.id) == (True, len(everything.rows) + 20)
    await _check_everything(db, Calls(account.id, everything.rows + more, made.users, made.groups), UTC)


async def test_a_new_zone_rebuilds_a_small_account_small(db: AsyncSession, calls: Calls) -> None:
    await rollups.roll_all(db, people_from=10**9)
    await db.execute(update(Account).where(Account.id == calls.account_id).values(timezone="Asia/Kathmandu"))
    await db.commit()
    assert await rollups.roll_all(db, people_from=10**9) == len(calls.rows)
    assert await _kept(db, calls.account_id) == (False, len(calls.rows))
    assert await _dims(db, calls.account_id) == SMALL
    await _check_everything(db, calls, ZoneInfo("Asia/Kathmandu"))


async def test_accounts_are_counted_each_on_its_own(db: AsyncSession, calls: Calls) -> None:
    """Two accounts in one roll: each gets its own mode and count (the fixture's other account has
    the same calls)."""
    other = await db.scalar(select(Account.id).where(Account.id != calls.account_id))
    assert other is not None
    later = timedelta(hours=1)
    extra = [{**r, "id": uuid.uuid4(), "created_at": r["created_at"] + later} for r in calls.rows[:50]]
    await _insert(db, extra)
    threshold = len(calls.rows) + 10  # the first account crosses it, the other does not
    await rollups.roll_all(db, people_from=threshold)
    assert await _kept(db, calls.account_id) == (True, len(calls.rows) + 50)
    assert await _kept(db, other) == (False, len(calls.rows))
    count = await db.scalar(
        select(func.count()).select_from(UsageRollup).where(UsageRollup.account_id == other)
    )
    assert count
    assert await _dims(db, other) == SMALL


async def test_a_small_accounts_people_without_a_first_token(db: AsyncSession) -> None:
    """Read from the calls, a person whose calls never had a first token sums to 0 ms, as the rollups
    do (a sum of NULLs alone is NULL)."""
    account, _ = await make_account(db)
    made = make_calls(account.id, n=80)
    for row in made.rows:
        row["ttft_ms"] = None
    await _insert(db, made.rows)
    await rollups.roll_all(db, people_from=10**9)
    for f in PERIODS:
        rows = selected(made, f)
        found = await queries.ranked(
            db, made.scope(), f, Dimension.user, "cost", then_requests=True, limit=100, offset=0
        )
        assert found is not None
        direct = figures_by(rows, lambda r: r["user_id"])
        assert dict(found.page) == direct
        assert all(totals.ttft_ms == 0 for _, totals in found.page)


async def test_new_zones_are_rebuilt_a_few_calls_a_run(db: AsyncSession, calls: Calls) -> None:
    """Accounts whose zone changed are rebuilt until a run has rebuilt ``rebuild_calls`` calls: the
    others wait for the next runs, their figures exact meanwhile (read from their calls)."""
    other = await db.scalar(select(Account.id).where(Account.id != calls.account_id))
    assert other is not None
    await rollups.roll_all(db, people_from=10**9)
    zone = "Asia/Kathmandu"
    await db.execute(update(Account).values(timezone=zone))
    await db.commit()
    assert await rollups.roll(db, people_from=10**9, rebuild_calls=1) == len(calls.rows)
    built = dict((await db.execute(select(UsageRollupAccount.account_id, UsageRollupAccount.zone))).all())
    first, second = sorted([calls.account_id, other])
    assert (built[first], built[second]) == (zone, "UTC")
    await _check_everything(db, Calls(second, calls.rows, calls.users, calls.groups), ZoneInfo(zone))
    assert await rollup_read.plan(db, Scope(second), PERIODS[1]) is None  # (the calls, not old rollups)
    assert await rollups.roll(db, people_from=10**9, rebuild_calls=1) == len(calls.rows)
    built = dict((await db.execute(select(UsageRollupAccount.account_id, UsageRollupAccount.zone))).all())
    assert built == {first: zone, second: zone}
    assert await rollups.roll(db, people_from=10**9, rebuild_calls=1) == 0
    await _check_everything(db, calls, ZoneInfo(zone))
