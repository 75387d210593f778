"""The views built on the queries: the summary against the previous period, breakdowns (sorted,
paged, shares, names, "Direct API"), the top ten, timelines (every local bucket listed, stacks that
add up) and the pivot (cells that add up to their rows and columns); who may see what."""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import service
from cockpit.analytics.figures import Totals
from cockpit.analytics.filters import Dimension, Filters, Scope
from cockpit.analytics.queries import Key
from cockpit.analytics.service import Metric
from cockpit.authz.actor import Actor
from cockpit.kit.errors import NotFound
from cockpit.projects.service import create_project
from cockpit.users.models import UserRole
from tests.analytics.data import END, START, Calls, expected, selected
from tests.builders import make_account, make_user

PARIS = ZoneInfo("Europe/Paris")


async def named(
    session: AsyncSession, account_id: uuid.UUID, dim: Dimension, keys: Collection[Key]
) -> dict[Key, str]:
    """Names for the test's users (the others stay unnamed: "Deleted user")."""
    return {key: f"{dim.value} {str(key)[:4]}" for key in keys if dim is not Dimension.user or str(key) < "8"}


async def test_the_summary_compares_with_the_period_before(db: AsyncSession, calls: Calls) -> None:
    f = Filters(datetime(2026, 10, 28, tzinfo=UTC), END)
    found = await service.summary(db, calls.scope(), f)

    assert found.current == expected(selected(calls, f))
    before = f.previous()
    assert (before.start, before.end) == (f.start - f.length, f.start)
    assert found.previous == expected(selected(calls, before))
    assert found.current.error_rate == (Decimal(found.current.errors) / found.current.requests).quantize(
        Decimal("0.000001")
    )


async def test_a_breakdown_is_sorted_paged_shared_and_named(db: AsyncSession, calls: Calls) -> None:
    f = Filters(START, END)
    first = await service.breakdown(
        db, calls.scope(), f, Dimension.user, named, sort=Metric.requests, limit=5
    )
    second = await service.breakdown(
        db, calls.scope(), f, Dimension.user, named, sort=Metric.requests, limit=5, offset=5
    )

    people = {r["user_id"] for r in calls.rows}
    assert first.count == second.count == len(people)
    items = first.items + second.items
    assert [i.totals.requests for i in items] == sorted((i.totals.requests for i in items), reverse=True)
    assert first.total == expected(calls.rows)
    for item in items:
        # A breakdown's rows leave out distinct people (saves sorting the calls); its total has them.
        want = expected(r for r in calls.rows if r["user_id"] == item.key)
        assert item.totals == dataclasses.replace(want, active_users=0)
        assert item.share == (item.totals.cost_usd / first.total.cost_usd).quantize(Decimal("0.000001"))
        if item.key is None:
            assert item.label == "No user"
        elif str(item.key) < "8":
            assert item.label == f"user {str(item.key)[:4]}"
        else:
            assert item.label == "Deleted user"  # never a raw id

    agents = await service.breakdown(db, calls.scope(), f, Dimension.agent, named)
    assert {i.label for i in agents.items} == {"agent help", "agent rese", "Direct API"}
    assert sum(i.share for i in agents.items) == pytest.approx(Decimal(1), abs=Decimal("0.00001"))


async def test_the_top_ten_are_people(db: AsyncSession, calls: Calls) -> None:
    top = await service.top_users(db, calls.scope(), Filters(START, END), named, metric=Metric.cost)

    costs = defaultdict(Decimal)
    for r in calls.rows:
        if r["user_id"] is not None:
            costs[r["user_id"]] += r["cost_usd"]
    assert [i.key for i in top.items] == sorted(costs, key=lambda k: -costs[k])[:10]
    assert len(top.items) == 10


async def test_a_timeline_lists_every_local_day_and_its_stacks_add_up(db: AsyncSession, calls: Calls) -> None:
    f = Filters(datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 28, 23, tzinfo=UTC))  # Paris days
    line = await service.timeline(db, calls.scope(), f, PARIS, named, stack_by=Dimension.model)

    assert line.granularity == "day"
    assert [s.strftime("%d %H:%M %z") for s in line.starts] == [
        "25 00:00 +0200",
        "26 00:00 +0100",
        "27 00:00 +0100",
        "28 00:00 +0100",
    ]  # fmt: skip (the period ends at midnight of the 29th)
    for n, start in enumerate(line.starts):
        end = min(line.starts[n + 1] if n + 1 < len(line.starts) else f.end, f.end)
        day = [r for r in selected(calls, f) if start <= r["created_at"] < end]
        assert line.points[n] == expected(day)
        assert sum((s.points[n].cost_usd for s in line.stacks), Decimal(0)) == line.points[n].cost_usd
        assert sum(s.points[n].requests for s in line.stacks) == line.points[n].requests
    assert len(line.stacks) == 4  # four models, no "Other"

    # 25 October in Paris lasts 25 hours; they read as 24 wall-clock hours, 02:00 holding two.
    whole_day = Filters(f.start, datetime(2026, 10, 25, 23, tzinfo=UTC))
    hours = await service.timeline(db, calls.scope(), whole_day, PARIS, named)
    assert hours.granularity == "hour"
    assert [s.hour for s in hours.starts] == list(range(24))
    night = (datetime(2026, 10, 25, 0, tzinfo=UTC), datetime(2026, 10, 25, 2, tzinfo=UTC))
    assert hours.points[2] == expected(r for r in calls.rows if night[0] <= r["created_at"] < night[1])
    quiet = Filters(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC))
    empty = await service.timeline(db, calls.scope(), quiet, PARIS, named)
    assert [p.requests for p in empty.points] == [0] * len(empty.starts)


async def test_a_pivot_adds_up(db: AsyncSession, calls: Calls) -> None:
    f = Filters(START, END)
    table = await service.pivot(
        db, calls.scope(), f, named, columns_by=Dimension.model, value=Metric.requests
    )

    assert table.total == len(calls.rows)
    assert sum(total for _, _, total in table.columns) == len(calls.rows)
    for row in table.rows:
        assert sum(row.cells.values()) == row.total
        assert row.total == sum(r["user_id"] == row.key for r in calls.rows)
    cost = await service.pivot(db, calls.scope(), f, named, columns_by=Dimension.agent, value=Metric.cost)
    assert cost.total == expected(calls.rows).cost_usd
    assert {label for _, label, _ in cost.columns} == {"agent help", "agent rese", "Direct API"}


async def test_who_sees_what(db: AsyncSession) -> None:
    account, owner = await make_account(db)
    member = await make_user(db, account, role=UserRole.member)
    other_account, other_owner = await make_account(db, name="Other")
    project = await create_project(db, Actor.for_user(owner), name="Atlas")
    foreign = await create_project(db, Actor.for_user(other_owner), name="Elsewhere")
    await db.commit()

    assert await service.scope_for(db, Actor.for_user(owner)) == Scope(account.id)
    assert await service.scope_for(db, Actor.for_user(member)) == Scope(account.id, user_id=member.id)
    assert await service.scope_for(db, Actor.for_user(owner), project.id) == Scope(
        account.id, project_id=project.id
    )
    with pytest.raises(NotFound):
        await service.scope_for(db, Actor.for_user(member), project.id)  # not a member of it
    with pytest.raises(NotFound):
        await service.scope_for(db, Actor.for_user(owner), foreign.id)  # another account's
    assert other_account.id != account.id


def test_shares_and_averages_are_exact() -> None:
    totals = Totals(requests=3, errors=1, successes=2, cost_usd=Decimal("0.000000000010"), output_tokens=5)
    assert totals.avg_cost_per_request_usd == Decimal("0.000000000003")
    assert totals.error_rate == Decimal("0.333333")
    assert totals.avg_tokens_per_response == Decimal("2.50")
    assert Totals().avg_latency_ms is None


async def test_token_usage_by_assistant_with_the_models_each_uses(db: AsyncSession, calls: Calls) -> None:
    f = Filters(START, END)
    found = await service.assistants(db, calls.scope(), f, named)

    by_agent: dict[Key, list[dict[str, object]]] = defaultdict(list)
    for r in calls.rows:
        by_agent[r["agent_id"]].append(r)
    assert {a.key for a in found} == set(by_agent)
    assert [a.totals.tokens for a in found] == sorted((a.totals.tokens for a in found), reverse=True)
    for a in found:
        rows = by_agent[a.key]
        assert a.totals == dataclasses.replace(expected(rows), active_users=0)
        tokens: dict[str, int] = defaultdict(int)
        for r in rows:
            tokens[str(r["model"])] += int(r["input_tokens"]) + int(r["output_tokens"])  # type: ignore[call-overload]
        assert dict(a.models) == tokens
        assert [t for _, t in a.models] == sorted(tokens.values(), reverse=True)
        assert a.label == ("Direct API" if a.key is None else f"agent {str(a.key)[:4]}")
    assert len(await service.assistants(db, calls.scope(), f, named, limit=1)) == 1
