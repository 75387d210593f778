"""The rollups give the same figures as the calls, exactly: after a roll, half-way through (calls
recorded since the watermark), with late calls landing in past days, with partial first and last
days, and after the account's time zone changes (rebuilt). And the views do read them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import queries, rollup_read, rollup_running, rollups, service
from cockpit.analytics.figures import Totals
from cockpit.analytics.filters import Dimension, Filters, Scope
from cockpit.analytics.rollup_models import UsageRollup, UsageRollupAccount
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from tests.analytics.data import DIMENSION_OF, END, START, Calls, expected, make_calls, selected
from tests.builders import make_account

PERIODS = [
    Filters(START, END),  # starts at 18:00 UTC and ends at 06:00: partial days at both ends
    Filters(datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)),  # whole days
    Filters(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 30, 23, tzinfo=UTC)),
]


async def _roll(db: AsyncSession) -> int:
    return await rollups.roll_all(db)


Row = dict[str, Any]


def figures_by(rows: list[Row], key: Callable[[Row], Any], *, people: bool = False) -> dict[Any, Totals]:
    """The rows' figures per value of ``key``, computed directly (distinct people only if asked)."""
    groups: dict[Any, list[Row]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {k: expected(v) if people else replace(expected(v), active_users=0) for k, v in groups.items()}


def local_day(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)


def bucket_day(n: int, zone: ZoneInfo) -> datetime:
    return queries.bucket_start(n, 86400, zone).replace(tzinfo=None)


async def _check_groups(db: AsyncSession, scope: Scope, f: Filters, rows: list[Row]) -> None:
    """The breakdowns by every dimension equal the rows'."""
    for dim, column in DIMENSION_OF.items():
        found = await queries.grouped(db, scope, f, dim, users=False)
        assert found == figures_by(rows, lambda r, column=column: r[column]), (f, dim)


async def _check_pairs(
    db: AsyncSession, scope: Scope, f: Filters, rows: list[Row], first: Dimension, second: Dimension
) -> None:
    found = await queries.pairs(db, scope, f, first, second)
    assert found == figures_by(rows, lambda r: (r[DIMENSION_OF[first]], r[DIMENSION_OF[second]]))


async def _check_everything(db: AsyncSession, calls: Calls, zone: ZoneInfo) -> None:
    """Every figure of every period equals the direct computation over the rows."""
    scope = calls.scope()
    for f in PERIODS:
        rows = selected(calls, f)
        assert await queries.totals(db, scope, f) == expected(rows), f
        await _check_groups(db, scope, f, rows)
        users = await queries.grouped(db, scope, f, Dimension.user)
        assert {k: t.active_users for k, t in users.items()} == {
            r["user_id"]: int(r["user_id"] is not None) for r in rows
        }
        for first, second in ((Dimension.user, Dimension.model), (Dimension.model, Dimension.agent)):
            await _check_pairs(db, scope, f, rows, first, second)
        days = await queries.buckets(db, scope, f, zone, 86400)
        assert {bucket_day(n, zone): t for (n, _), t in days.items()} == figures_by(
            rows, lambda r: local_day(r["created_at"], zone), people=True
        )
        stacked = await queries.buckets(db, scope, f, zone, 86400, Dimension.model, users=False)
        assert {(bucket_day(n, zone), k): t for (n, k), t in stacked.items()} == figures_by(
            rows, lambda r: (local_day(r["created_at"], zone), r["model"])
        )


async def _insert(db: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await db.execute(insert(UsageRecord), rows)
    await db.commit()


async def test_rolled_figures_match_the_rows(db: AsyncSession, calls: Calls) -> None:
    assert await _roll(db) == 2 * len(calls.rows)  # both accounts' calls
    assert await rollup_read.plan(db, calls.scope(), PERIODS[0]) is not None
    await _check_everything(db, calls, ZoneInfo("UTC"))
    assert await _roll(db) == 0  # nothing new: nothing added twice
    await _check_everything(db, calls, ZoneInfo("UTC"))


async def test_calls_recorded_since_the_watermark_and_late_calls_count_once(db: AsyncSession) -> None:
    account, _ = await make_account(db)
    made = make_calls(account.id, n=600)
    ordered = sorted(made.rows, key=lambda r: r["created_at"])
    await _insert(db, ordered[:300])
    await _roll(db)
    # Calls recorded since: the rest, and late ones (a replayed journal) in days already rolled.
    late = [
        {**r, "id": uuid.uuid4(), "created_at": r["created_at"] - timedelta(days=2)}
        for r in ordered[:300:7]
        if r["created_at"] - timedelta(days=2) >= START
    ]
    await _insert(db, ordered[300:] + late)
    everything = Calls(account.id, made.rows + late, made.users, made.groups)
    await _check_everything(db, everything, ZoneInfo("UTC"))  # half rolled, half read from the calls
    await _roll(db)
    await _check_everything(db, everything, ZoneInfo("UTC"))


@pytest.mark.parametrize("zone_name", ["Europe/Paris", "America/St_Johns", "Asia/Kathmandu"])
async def test_a_new_time_zone_rebuilds_the_rollups(db: AsyncSession, calls: Calls, zone_name: str) -> None:
    await _roll(db)
    await db.execute(update(Account).where(Account.id == calls.account_id).values(timezone=zone_name))
    await db.commit()
    # Until the rebuild the views read the calls (the rollups' days are UTC days).
    assert await rollup_read.plan(db, calls.scope(), PERIODS[1]) is None
    await _check_everything(db, calls, ZoneInfo(zone_name))
    await _roll(db)
    built = await db.scalar(
        select(UsageRollupAccount.zone).where(UsageRollupAccount.account_id == calls.account_id)
    )
    assert built == zone_name
    assert await rollup_read.plan(db, calls.scope(), PERIODS[1]) is not None
    await _check_everything(db, calls, ZoneInfo(zone_name))


async def test_the_views_read_the_rollups(db: AsyncSession, calls: Calls) -> None:
    """Not a fallback to the calls: a change to a rolled whole day shows in the figures (the totals
    from the people's running sums and day rows, a day's timeline from its whole-day row)."""
    await _roll(db)
    f = PERIODS[1]  # 24 Oct - 2 Nov: S is 24 Oct - 1 Nov
    before = await queries.totals(db, calls.scope(), f)
    days_before = await queries.buckets(db, calls.scope(), f, ZoneInfo("UTC"), 86400)
    plan = await rollup_read.plan(db, calls.scope(), f)
    assert plan is not None
    # S = 24 Oct - 1 Nov is read as the difference of two checkpoints' running rows and a few days.
    reads = rollup_running.running_reads(plan.first_day, plan.last_day, plan.newest["user+"])
    assert sorted(reads.rows.values()) == [-1, 1]
    mine = (UsageRollup.account_id == calls.account_id, UsageRollup.level == 0)
    person = rollup_read.stored(db.bind.dialect.name, calls.users[0])
    # A person's calls of 27 Oct grow by 1000 in the rollups: their day row and their running rows
    # of the checkpoints from that day on.
    day = int(datetime(2026, 10, 27, tzinfo=UTC).timestamp()) // 86400
    for dim, since in (("user", UsageRollup.block == day), ("user+", UsageRollup.block >= day)):
        changed = await db.execute(
            update(UsageRollup)
            .where(*mine, UsageRollup.dim == dim, since, UsageRollup.key == person)
            .values(requests=UsageRollup.requests + 1000)
        )
        assert changed.rowcount > 0  # type: ignore[attr-defined]
    await db.execute(
        update(UsageRollup)
        .where(*mine, UsageRollup.dim == "*", UsageRollup.block == day)
        .values(requests=UsageRollup.requests + 1000)
    )
    await db.commit()
    after = await queries.totals(db, calls.scope(), f)
    assert after.requests == before.requests + 1000
    days_after = await queries.buckets(db, calls.scope(), f, ZoneInfo("UTC"), 86400)
    assert days_after[(day, None)].requests == days_before[(day, None)].requests + 1000
    # Under a model filter a whole day's people are those counted on the model's day row.
    under_model = f.narrowed(model="gpt-4o")
    people_before = (await queries.buckets(db, calls.scope(), under_model, ZoneInfo("UTC"), 86400))[
        (day, None)
    ]
    await db.execute(
        update(UsageRollup)
        .where(*mine, UsageRollup.dim == "model", UsageRollup.block == day, UsageRollup.key == "gpt-4o")
        .values(people=UsageRollup.people + 50)
    )
    await db.commit()
    people_after = (await queries.buckets(db, calls.scope(), under_model, ZoneInfo("UTC"), 86400))[
        (day, None)
    ]
    assert people_after.active_users == people_before.active_users + 50
    # A pivot's page under a group filter: a person who stayed in the group has their cells without
    # the filter, from the user|model rows (every level: whichever blocks the period is made of).
    stayed, under = calls.users[3], f.narrowed(group_id=calls.groups[0])
    ranked = await queries.ranked(
        db, calls.scope(), under, Dimension.user, "requests", then_requests=False, limit=50, offset=0
    )
    assert ranked is not None
    assert stayed in dict(ranked.page)
    cells_before = await queries.page_cells(db, calls.scope(), under, Dimension.model, ranked.page)
    stored = rollup_read.stored(db.bind.dialect.name, stayed)
    await db.execute(
        update(UsageRollup)
        .where(UsageRollup.account_id == calls.account_id, UsageRollup.dim == "user|model")
        .where(UsageRollup.key == stored, UsageRollup.key2 == "gpt-4o")
        .values(requests=UsageRollup.requests + 1000)
    )
    await db.commit()
    cells_after = await queries.page_cells(db, calls.scope(), under, Dimension.model, ranked.page)
    grown = cells_after[(stayed, "gpt-4o")].requests - cells_before[(stayed, "gpt-4o")].requests
    assert grown > 0
    assert grown % 1000 == 0
    # A project's view, a person's own view or two filters read the calls.
    assert await rollup_read.plan(db, calls.scope(project_id=uuid.uuid4()), f) is None
    assert await rollup_read.plan(db, calls.scope(user_id=calls.users[0]), f) is None
    assert await rollup_read.plan(db, calls.scope(), f.narrowed(model="gpt-4o", agent="helper")) is None


async def test_people_blocks_cover_long_periods(db: AsyncSession) -> None:
    """Person and token figures come from running sums per day (two days' rows whatever the
    period's length); the pairs with people keep blocks of 4, 16 and 64 days. A 200-day period
    still counts every call once."""
    account, _ = await make_account(db)
    made = make_calls(account.id, n=400)
    first = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    spread = [{**r, "created_at": first + timedelta(hours=12 * n)} for n, r in enumerate(made.rows)]
    await _insert(db, spread)
    await _roll(db)

    async def levels(dim: str) -> set[int]:
        found = select(UsageRollup.level).where(UsageRollup.dim == dim).group_by(UsageRollup.level)
        return set(await db.scalars(found))

    assert await levels("user") == await levels("user+") == await levels("token+") == {0}
    assert await levels("model|user") == {0, 1, 2, 3}
    f = Filters(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 9, 17, tzinfo=UTC))
    plan = await rollup_read.plan(db, Calls(account.id, [], [], []).scope(), f)
    assert plan is not None
    assert set(plan.newest) == {"user+", "token+"}
    rows = selected(Calls(account.id, spread, made.users, made.groups), f)
    assert await queries.totals(db, Calls(account.id, [], [], []).scope(), f) == expected(rows)
    people = await queries.grouped(db, Calls(account.id, [], [], []).scope(), f, Dimension.user, users=False)
    assert people == figures_by(rows, lambda r: r["user_id"])


async def _running_rows(db: AsyncSession, account_id: uuid.UUID, dim: str) -> dict[tuple[int, str], int]:
    found = await db.execute(
        select(UsageRollup.block, UsageRollup.key, UsageRollup.requests).where(
            UsageRollup.account_id == account_id, UsageRollup.dim == dim, UsageRollup.level == 0
        )
    )
    return {(int(day), key): int(n) for day, key, n in found}


async def test_running_sums_over_gaps_late_calls_and_any_period(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rolled in time order with idle stretches between the rolls (some people absent from a
    stretch), then late calls into past days: after every roll each value has a row for each
    checkpoint day from its first call on and for the newest day, holding its requests up to that
    day (and no other running row), and every period
    (before the first call, across the gaps, past the newest day, partial days) gives each person's
    and token's figures and the people exactly."""
    monkeypatch.setattr(rollups, "KEYS_PER_STATEMENT", 5)  # the people recomputed 5 by 5
    account, _ = await make_account(db)
    made = make_calls(account.id, n=360)
    first = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    # Three stretches of calls, 6 hours apart, with 10 and 25 idle days between them.
    moments = [first + timedelta(hours=6 * n) for n in range(120)]
    moments += [moments[-1] + timedelta(days=10, hours=6 * n) for n in range(1, 121)]
    moments += [moments[-1] + timedelta(days=25, hours=6 * n) for n in range(1, 121)]
    spread = [{**r, "created_at": moment} for r, moment in zip(made.rows, moments, strict=True)]
    some, others = made.users[:6], made.users[3:]
    late = [
        {**r, "id": uuid.uuid4(), "created_at": r["created_at"] - timedelta(days=3, hours=1)}
        for r in spread[100:300:9]
    ]
    late.append({**spread[0], "id": uuid.uuid4(), "created_at": first - timedelta(days=4)})  # before all
    batches = [
        spread[:120],
        [r for r in spread[120:240] if r["user_id"] in some],  # the others are carried forward
        [r for r in spread[240:] if r["user_id"] in others],
        late,
    ]
    edges = [
        first - timedelta(days=9), first - timedelta(days=4), first + timedelta(hours=30),
        moments[119] + timedelta(days=2, hours=7), moments[239] - timedelta(days=1),
        moments[240] + timedelta(hours=13), moments[-1] - timedelta(hours=20),
        moments[-1] + timedelta(days=3),
    ]  # fmt: skip
    scope = Calls(account.id, [], [], []).scope()

    def day(moment: datetime) -> int:  # a UTC account's local day
        return int(moment.timestamp()) // 86400

    def key(row: dict[str, Any]) -> str:
        return rollup_read.stored(db.bind.dialect.name, row["user_id"])

    everything: list[Row] = []
    for batch in batches:
        await _insert(db, batch)
        await _roll(db)
        everything += batch
        newest = max(day(r["created_at"]) for r in everything)
        wanted: dict[tuple[int, str], int] = {}
        for person in {key(r) for r in everything}:
            mine = sorted(day(r["created_at"]) for r in everything if key(r) == person)
            for d in range(mine[0], newest + 1):
                if d % rollup_running.CHECKPOINT == 0 or d == newest:
                    wanted[(d, person)] = sum(1 for c in mine if c <= d)
        assert await _running_rows(db, account.id, "user+") == wanted

        whole = Calls(account.id, everything, made.users, made.groups)
        for a in edges:
            for b in edges:
                if a >= b:
                    continue
                f = Filters(a, b)
                rows = selected(whole, f)
                assert await queries.totals(db, scope, f) == expected(rows), f
                for dim in (Dimension.user, Dimension.token):
                    found = await queries.grouped(db, scope, f, dim, users=False)
                    assert found == figures_by(rows, lambda r, c=DIMENSION_OF[dim]: r[c]), (f, dim)
                narrowed = f.narrowed(user_id=made.users[0])
                mine_rows = selected(whole, narrowed, lambda r: r["user_id"] == made.users[0])
                assert await queries.totals(db, scope, narrowed) == expected(mine_rows), f


@pytest.mark.parametrize("people_from", [0, 10**9])
async def test_views_under_one_filter_match_the_rows(
    db: AsyncSession, calls: Calls, people_from: int
) -> None:
    """A filter on one dimension reads the pairs kept for it (or the calls when none is kept); for a
    small account (``people_from``), the calls of the filter's value for every person view."""
    ordered = sorted(calls.rows, key=lambda r: r["created_at"])
    await db.execute(update(Account).where(Account.id == calls.account_id).values(timezone="Europe/Paris"))
    await db.commit()
    await rollups.roll_all(db, people_from=people_from)
    # And some calls since the watermark.
    late = [{**r, "id": uuid.uuid4()} for r in ordered[-40:]]
    await _insert(db, late)
    rows_all = calls.rows + late
    zone = ZoneInfo("Europe/Paris")
    scope = calls.scope()
    group, user = calls.groups[1], calls.users[2]
    filters: list[tuple[dict[str, Any], Any]] = [
        ({"group_id": group}, lambda r: r["group_id"] == group),
        ({"model": "gpt-4o"}, lambda r: r["model"] == "gpt-4o"),
        ({"agent": ""}, lambda r: r["agent_id"] is None),
        ({"agent": "helper"}, lambda r: r["agent_id"] == "helper"),
        ({"user_id": user}, lambda r: r["user_id"] == user),
        ({"status": "error"}, lambda r: r["status"] == "error"),
        ({"model": "gpt-4o", "group_id": group}, lambda r: r["model"] == "gpt-4o" and r["group_id"] == group),
    ]
    for f0 in PERIODS:
        for values, keep in filters:
            f = f0.narrowed(**values)
            rows = [r for r in rows_all if f.start <= r["created_at"] < f.end and keep(r)]
            assert await queries.totals(db, scope, f) == expected(rows), values
            await _check_groups(db, scope, f, rows)
            if "model" in values or "group_id" in values:  # pairs with the filtered dimension
                for first, second in ((Dimension.user, Dimension.model), (Dimension.group, Dimension.user)):
                    await _check_pairs(db, scope, f, rows, first, second)
            days = await queries.buckets(db, scope, f, zone, 86400)
            assert {bucket_day(n, zone): t for (n, _), t in days.items()} == figures_by(
                rows, lambda r: local_day(r["created_at"], zone), people=True
            ), values
    one = await rollup_read.plan(db, scope, PERIODS[1].narrowed(group_id=group))
    assert one is not None
    assert one.where == (Dimension.group, group.hex if one.dialect == "sqlite" else str(group))
    assert await rollup_read.plan(db, scope, PERIODS[1].narrowed(group_id=group, model="gpt-4o")) is None
    under_model = await rollup_read.plan(db, scope, PERIODS[1].narrowed(model="gpt-4o"))
    assert under_model is not None
    by_person = rollup_read.source(under_model, Dimension.model, Dimension.user)
    assert by_person is not None
    assert by_person.calls is (people_from > 0)  # model|user rows, else the model's calls
    if people_from == 0:
        assert rollup_read.source(under_model, Dimension.user, Dimension.agent) is None  # not kept: the calls


async def test_hostile_filter_values_read_nothing_from_the_rollups(db: AsyncSession, calls: Calls) -> None:
    """Filter values are bound parameters on the rollup path too: quotes, SQL and long text match
    no call and change nothing."""
    await _roll(db)
    count = await db.scalar(select(func.count()).select_from(UsageRollup))
    for value in ("' OR 1=1 --", "é" * 300, "gpt-4o'; DROP TABLE usage_rollups; --", "%", "_"):
        f = PERIODS[1].narrowed(model=value)
        assert await rollup_read.plan(db, calls.scope(), f) is not None
        assert await queries.totals(db, calls.scope(), f) == expected([])
        assert await queries.grouped(db, calls.scope(), f, Dimension.user, users=False) == {}
    assert await db.scalar(select(func.count()).select_from(UsageRollup)) == count


def _direct_pivot(
    rows: list[Row], columns: str, metric: Callable[[list[Row]], Any]
) -> dict[Any, dict[Any, Any]]:
    cells: dict[Any, dict[Any, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        cells[r["user_id"]][r[columns]].append(r)
    return {user: {col: metric(found) for col, found in by.items()} for user, by in cells.items()}


async def _no_labels(*_: Any) -> dict[Any, str]:
    return {}


SMALL = 10**9  # people_from: the account's rollups keep no people (its person views read its calls)


@pytest.mark.parametrize("people_from", [0, SMALL])
# (each value's pivot reads only its own sums: tokens are two of them)
@pytest.mark.parametrize("value", [service.Metric.requests, service.Metric.cost, service.Metric.tokens])
async def test_a_pivot_page_from_the_rollups_matches_the_rows(
    db: AsyncSession, calls: Calls, value: service.Metric, people_from: int
) -> None:
    """The pivot of people's activity reads the rows' and the columns' totals and only the page's
    cells from the rollups: every page's rows, order, cells and totals equal the direct computation,
    without a filter, under a model filter (the model|user pairs) and under a group filter (the
    people who stayed in the group: their cells without the filter; the others' from their calls:
    two people who also called from another group, rolled and since the watermark). The same for an
    account whose rollups keep no people: the rows, the page and its cells from its calls."""
    moved = [
        {**r, "id": uuid.uuid4(), "group_id": calls.groups[(calls.users.index(r["user_id"]) + 1) % 3]}
        for r in calls.rows[::9]
        if r["user_id"] in calls.users[:2]
    ]
    await _insert(db, moved)
    await rollups.roll_all(db, people_from=people_from)
    late = [{**r, "id": uuid.uuid4()} for r in sorted(calls.rows, key=lambda r: r["created_at"])[-30:]]
    late.append({**moved[-1], "id": uuid.uuid4()})
    await _insert(db, late)  # calls since the watermark count too
    rows_all = calls.rows + moved + late
    scope = calls.scope()

    def metric(found: list[Row]) -> Any:
        if value is service.Metric.tokens:
            return expected(found).tokens
        return len(found) if value is service.Metric.requests else expected(found).cost_usd

    for f0 in PERIODS:
        for values, keep in (
            ({}, lambda r: True),
            ({"model": "gpt-4o"}, lambda r: r["model"] == "gpt-4o"),
            ({"group_id": calls.groups[0]}, lambda r: r["group_id"] == calls.groups[0]),
        ):
            f = f0.narrowed(**values)
            rows = [r for r in rows_all if f.start <= r["created_at"] < f.end and keep(r)]
            # A breakdown by person counts the period's people from its own rows.
            assert (await service.breakdown(db, scope, f, Dimension.user, _no_labels)).total == expected(rows)
            for columns, column in ((Dimension.model, "model"), (Dimension.agent, "agent_id")):
                direct = _direct_pivot(rows, column, metric)
                totals = {user: sum(by.values()) for user, by in direct.items()}
                order = sorted(totals, key=lambda k: (-totals[k], str(k)))
                rolled = not values or ("model" in values and columns is Dimension.model)  # model|user
                rolled = rolled or people_from == SMALL  # every pair: from the calls, by one statement
                assert await queries.pairs_rolled(db, scope, f, Dimension.user, columns) is rolled
                # The rows' and columns' totals always from the rollups here (e.g. group|user and
                # group|model under a group filter); the cells not kept come from the page's calls.
                assert await queries.breakdowns_rolled(db, scope, f, Dimension.user, columns)
                for offset in (0, 5, 10):
                    table = await service.pivot(
                        db, scope, f, _no_labels, columns_by=columns, value=value, limit=5, offset=offset
                    )
                    assert table.count == len(order)
                    assert table.total == sum(totals.values())
                    assert [r.key for r in table.rows] == order[offset : offset + 5]
                    column_totals = {
                        c: sum(by.get(c, 0) for by in direct.values())
                        for c in {c for by in direct.values() for c in by}
                    }
                    assert {k: t for k, _, t in table.columns if k != "__other__"} == {
                        k: column_totals[k] for k, _, _ in table.columns if k != "__other__"
                    }
                    for row in table.rows:
                        assert row.total == totals[row.key]
                        assert {k: v for k, v in row.cells.items() if v} == {
                            k: v for k, v in direct[row.key].items() if v
                        }


@pytest.mark.parametrize("people_from", [0, SMALL])
async def test_a_breakdown_by_person_is_paged_like_the_rows(
    db: AsyncSession, calls: Calls, people_from: int
) -> None:
    """A breakdown by person is sorted and paged by the database: every page, for every metric (ties
    on errors broken by requests, then by the key as text; calls without a person as 'None'), with
    the count and the whole (people included) equal to the direct computation, also past the end."""
    await rollups.roll_all(db, people_from=people_from)
    late = [{**r, "id": uuid.uuid4()} for r in sorted(calls.rows, key=lambda r: r["created_at"])[-30:]]
    await _insert(db, late)  # calls since the watermark count too
    rows_all = calls.rows + late
    scope = calls.scope()
    for f0 in PERIODS:
        for values, keep in (({}, lambda r: True), ({"model": "gpt-4o"}, lambda r: r["model"] == "gpt-4o")):
            f = f0.narrowed(**values)
            rows = [r for r in rows_all if f.start <= r["created_at"] < f.end and keep(r)]
            assert await queries.ranked(
                db, scope, f, Dimension.user, "cost", then_requests=True, limit=1, offset=0
            ), "read from the rollups"
            await check_person_pages(db, scope, f, rows, limit=4, offsets=(0, 4, 8, 12, 40))


async def check_person_pages(
    db: AsyncSession, scope: Scope, f: Filters, rows: list[Row], *, limit: int, offsets: Sequence[int]
) -> None:
    """Every page of the breakdown by person, for every metric, equals the rows' (with the count and
    the whole)."""
    groups = figures_by(rows, lambda r: r["user_id"])
    for metric in service.Metric:
        order = sorted(
            groups, key=lambda k: (-service.measure(groups[k], metric), -groups[k].requests, str(k))
        )
        for offset in offsets:
            found = await service.breakdown(
                db, scope, f, Dimension.user, _no_labels, sort=metric, limit=limit, offset=offset
            )
            assert [item.key for item in found.items] == order[offset : offset + limit], (f, metric)
            assert all(item.totals == groups[item.key] for item in found.items)
            assert found.count == len(order)
            assert found.total == expected(rows)


async def test_the_agent_choices_are_the_periods_agents(db: AsyncSession, calls: Calls) -> None:
    """A filter's agent choices come from the rollups and the calls since the watermark: exactly the
    agents of the period's calls the scope sees (a member: their own calls), by name."""
    await _roll(db)
    late = {
        **calls.rows[-1],
        "id": uuid.uuid4(),
        "agent_id": "late-agent",
        "created_at": END - timedelta(hours=1),
    }
    await _insert(db, [late])
    rows_all = [*calls.rows, late]
    for f in PERIODS:
        for scope, keep in (
            (calls.scope(), lambda r: True),
            (calls.scope(user_id=calls.users[1]), lambda r: r["user_id"] == calls.users[1]),
        ):
            direct = sorted(
                {r["agent_id"] for r in rows_all if f.start <= r["created_at"] < f.end and keep(r)} - {None}
            )
            assert await service.agents_in(db, scope, f.narrowed(model="gpt-4o")) == direct
    assert "late-agent" in await service.agents_in(db, calls.scope(), PERIODS[0])  # since the watermark
