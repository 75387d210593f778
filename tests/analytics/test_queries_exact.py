"""Every figure the analytics queries give agrees exactly with a direct computation over the rows:
totals, groups by each dimension, pairs (the pivot), and local hours and days in time zones with
daylight-saving changes and half- and quarter-hour offsets, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import queries
from cockpit.analytics.filters import Dimension, Filters, Operation, Status
from tests.analytics.data import DIMENSION_OF, END, START, ZONES, Calls, expected, selected


async def test_totals_match_the_rows_for_every_filter(db: AsyncSession, calls: Calls) -> None:
    whole = Filters(START, END)
    assert await queries.totals(db, calls.scope(), whole) == expected(calls.rows)
    middle = Filters(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 30, tzinfo=UTC))
    assert await queries.totals(db, calls.scope(), middle) == expected(selected(calls, middle))
    user, group = calls.users[0], calls.groups[1]
    cases: list[tuple[Filters, Callable[[dict[str, Any]], bool]]] = [
        (whole.narrowed(model="gpt-4o"), lambda r: r["model"] == "gpt-4o"),
        (whole.narrowed(group_id=group), lambda r: r["group_id"] == group),
        (whole.narrowed(user_id=user), lambda r: r["user_id"] == user),
        (whole.narrowed(agent=""), lambda r: r["agent_id"] is None),
        (whole.narrowed(agent="helper"), lambda r: r["agent_id"] == "helper"),
        (whole.narrowed(operation=Operation.embedding), lambda r: r["operation"] == "embedding"),
        (whole.narrowed(status=Status.error, model="claude-sonnet"),
         lambda r: r["status"] == "error" and r["model"] == "claude-sonnet"),
    ]  # fmt: skip
    for f, keep in cases:
        assert await queries.totals(db, calls.scope(), f) == expected(selected(calls, f, keep)), f
    # A member's scope: their calls only, whatever the filter asks.
    mine = await queries.totals(db, calls.scope(user_id=user), whole.narrowed(user_id=calls.users[1]))
    assert mine == expected([])
    assert await queries.totals(db, calls.scope(user_id=user), whole) == expected(
        r for r in calls.rows if r["user_id"] == user
    )


@pytest.mark.parametrize("dim", list(DIMENSION_OF))
async def test_groups_by_each_dimension_match_the_rows(
    db: AsyncSession, calls: Calls, dim: Dimension
) -> None:
    f = Filters(START, END, status=None)
    found = await queries.grouped(db, calls.scope(), f, dim)
    want: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in calls.rows:
        want[r[DIMENSION_OF[dim]]].append(r)
    assert found == {key: expected(rows) for key, rows in want.items()}


async def test_every_call_is_direct_api_until_calls_carry_an_integration(
    db: AsyncSession, calls: Calls
) -> None:
    found = await queries.grouped(db, calls.scope(), Filters(START, END), Dimension.integration)
    assert found == {None: expected(calls.rows)}


async def test_pairs_match_the_rows(db: AsyncSession, calls: Calls) -> None:
    f = Filters(START, END, operation=Operation.chat)
    found = await queries.pairs(db, calls.scope(), f, Dimension.user, Dimension.model)
    want: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
    for r in selected(calls, f, lambda r: r["operation"] == "chat"):
        want[(r["user_id"], r["model"])].append(r)
    # No distinct people per pair (a pivot cell does not need them).
    assert found == {key: replace(expected(rows), active_users=0) for key, rows in want.items()}


@pytest.mark.parametrize("zone_name", ZONES)
@pytest.mark.parametrize("step", [3600, 86400])
async def test_local_hours_and_days_match_the_rows(
    db: AsyncSession, calls: Calls, zone_name: str, step: int
) -> None:
    zone = ZoneInfo(zone_name)
    f = Filters(START, END)
    found = await queries.buckets(db, calls.scope(), f, zone, step, Dimension.model)

    def local_start(moment: datetime) -> datetime:
        local = moment.astimezone(zone)
        if step == 86400:
            return local.replace(hour=0, minute=0, second=0, microsecond=0).replace(tzinfo=None)
        return local.replace(minute=0, second=0, microsecond=0).replace(tzinfo=None)

    want: dict[tuple[datetime, Any], list[dict[str, Any]]] = defaultdict(list)
    for r in calls.rows:
        want[(local_start(r["created_at"]), r["model"])].append(r)
    got = {
        (queries.bucket_start(n, step, zone).replace(tzinfo=None), key): t for (n, key), t in found.items()
    }
    assert got == {key: expected(rows) for key, rows in want.items()}


def test_the_offsets_of_a_period_follow_the_changes_of_the_clocks() -> None:
    paris = list(queries.offsets(ZoneInfo("Europe/Paris"), START, END))
    assert paris == [(START, 7200), (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), 3600)]
    assert list(queries.offsets(ZoneInfo("Asia/Kathmandu"), START, END)) == [(START, 20700)]
    lord_howe = queries.offsets(ZoneInfo("Australia/Lord_Howe"), START, END)
    assert [offset for _, offset in lord_howe] == [
        39600
    ]  # +11:00 all along (its change is in April/October 4)
