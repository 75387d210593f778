"""Every figure the analytics queries give agrees exactly with a direct computation over the rows:
totals, groups by each dimension, pairs (the pivot), and local hours and days in time zones with
daylight-saving changes and half- and quarter-hour offsets, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import queries
from cockpit.analytics.figures import Totals
from cockpit.analytics.filters import Dimension, Filters, Operation, Scope, Status
from cockpit.usage.models import UsageRecord
from tests.builders import make_account

# Around the end of summer time in Europe (25 Oct 2026, 01:00 UTC) and in North America (1 Nov).
START = datetime(2026, 10, 23, 18, 0, tzinfo=UTC)
END = datetime(2026, 11, 3, 6, 0, tzinfo=UTC)
ZONES = ["UTC", "Europe/Paris", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe"]
DIMENSION_OF: dict[Dimension, str] = {
    Dimension.model: "model", Dimension.group: "group_id", Dimension.user: "user_id",
    Dimension.project: "project_id", Dimension.agent: "agent_id", Dimension.operation: "operation",
    Dimension.provider: "provider_id", Dimension.token: "api_token_id", Dimension.status: "status",
}  # fmt: skip


@dataclass
class Calls:
    account_id: uuid.UUID
    rows: list[dict[str, Any]]
    users: list[uuid.UUID]
    groups: list[uuid.UUID]

    def scope(self, **kwargs: Any) -> Scope:
        return Scope(self.account_id, **kwargs)


def _calls(account_id: uuid.UUID, n: int = 700) -> Calls:
    rng = random.Random(20261206)
    users = [uuid.uuid4() for _ in range(12)]
    groups = [uuid.uuid4() for _ in range(3)]
    projects = [uuid.uuid4(), uuid.uuid4(), None]
    tokens = [uuid.uuid4() for _ in range(4)]
    providers = [uuid.uuid4(), uuid.uuid4()]
    span = int((END - START).total_seconds())
    rows = []
    # Some calls exactly on the edges and on local midnights/the changes of the clocks.
    edges = [START, END - timedelta(microseconds=1), datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
             datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 11, 1, 3, 30, tzinfo=UTC)]  # fmt: skip
    for k in range(n):
        user = rng.choice([*users, None])
        status = rng.choices(["success", "error", "client_disconnected"], [0.85, 0.1, 0.05])[0]
        stream = rng.random() < 0.5
        moment = edges[k] if k < len(edges) else START + timedelta(seconds=rng.randrange(span))
        rows.append(
            {
                "id": uuid.uuid4(), "account_id": account_id,
                "created_at": moment,
                "user_id": user, "group_id": groups[users.index(user) % 3] if user else rng.choice(groups),
                "project_id": rng.choice(projects), "agent_id": rng.choice(["helper", "research", None]),
                "api_token_id": rng.choice(tokens), "model_id": None,
                "model": rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet", "text-embedding-3-small"]),
                "provider_id": rng.choice(providers), "provider_kind": "openai",
                "operation": rng.choice(["chat", "chat", "embedding"]), "stream": stream,
                "status": status, "http_status": 200 if status == "success" else 502,
                "latency_ms": rng.randrange(5, 30_000),
                "ttft_ms": rng.randrange(1, 2_000) if stream and status == "success" else None,
                "input_tokens": rng.randrange(0, 50_000), "output_tokens": rng.randrange(0, 8_000),
                "cached_tokens": rng.randrange(0, 1_000),
                "cost_usd": Decimal(rng.randrange(0, 10**11)) / Decimal(10**12),
                "credits": Decimal(rng.randrange(0, 10**8)) / Decimal(10**6),
            }
        )  # fmt: skip
    return Calls(account_id, rows, users, groups)


@pytest.fixture
async def calls(db: AsyncSession) -> Calls:
    account, _ = await make_account(db)
    other, _ = await make_account(db, name="Other")
    made = _calls(account.id)
    await db.execute(insert(UsageRecord), made.rows)
    # Another account's calls at the same moments: never counted.
    await db.execute(
        insert(UsageRecord), [{**r, "id": uuid.uuid4(), "account_id": other.id} for r in made.rows]
    )
    await db.commit()
    return made


def expected(rows: Iterable[dict[str, Any]]) -> Totals:
    rows = list(rows)
    return Totals(
        requests=len(rows),
        errors=sum(r["status"] == "error" for r in rows),
        successes=sum(r["status"] == "success" for r in rows),
        cost_usd=sum((r["cost_usd"] for r in rows), Decimal(0)),
        credits=sum((r["credits"] for r in rows), Decimal(0)),
        input_tokens=sum(r["input_tokens"] for r in rows),
        output_tokens=sum(r["output_tokens"] for r in rows),
        cached_tokens=sum(r["cached_tokens"] for r in rows),
        latency_ms=sum(r["latency_ms"] for r in rows),
        ttft_ms=sum(r["ttft_ms"] or 0 for r in rows),
        ttft_calls=sum(r["ttft_ms"] is not None for r in rows),
        active_users=len({r["user_id"] for r in rows if r["user_id"] is not None}),
    )


def selected(
    c: Calls, f: Filters, keep: Callable[[dict[str, Any]], bool] = lambda r: True
) -> list[dict[str, Any]]:
    return [r for r in c.rows if f.start <= r["created_at"] < f.end and keep(r)]


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
    paris = queries.offsets(ZoneInfo("Europe/Paris"), START, END)
    assert paris == [(START, 7200), (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), 3600)]
    assert queries.offsets(ZoneInfo("Asia/Kathmandu"), START, END) == [(START, 20700)]
    lord_howe = queries.offsets(ZoneInfo("Australia/Lord_Howe"), START, END)
    assert [offset for _, offset in lord_howe] == [
        39600
    ]  # +11:00 all along (its change is in April/October 4)
