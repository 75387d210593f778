"""SQL over the recorded calls (``usage_requests``): totals, groups by a dimension, buckets of local
time. Sums are taken over the stored integers (micro-credits, pico-dollars), so they are exact on
every backend; buckets follow the account's time zone, daylight-saving changes included (the offset
of each stretch of the period between two changes is added to the UTC time before dividing)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import rollup_read
from cockpit.analytics.columns import (
    COLUMNS,
    MICRO,
    PICO,
    Key,
    T,
    bucket_start,
    local_bucket,
    offsets,
    per_call,
    total,
)
from cockpit.analytics.figures import Totals
from cockpit.analytics.filters import Dimension, Filters, Scope
from cockpit.kit.db import dialect_name

_R = TypeVar("_R")
__all__ = ["Key", "bucket_start", "offsets"]  # used through this module by the service and tests


def where(scope: Scope, f: Filters) -> list[ColumnElement[bool]]:
    conditions = [T.account_id == scope.account_id, T.created_at >= f.start, T.created_at < f.end]
    if scope.project_id is not None:
        conditions.append(T.project_id == scope.project_id)
    if scope.user_id is not None:
        conditions.append(T.user_id == scope.user_id)
    for column, value in (
        (T.group_id, f.group_id), (T.project_id, f.project_id), (T.user_id, f.user_id),
        (T.api_token_id, f.api_token_id), (T.model, f.model), (T.operation, f.operation),
        (T.status, f.status),
    ):  # fmt: skip
        if value is not None:
            conditions.append(column == value)
    if f.agent is not None:
        conditions.append(T.agent_id.is_(None) if f.agent == "" else T.agent_id == f.agent)
    return conditions


def _measures(*, users: bool) -> list[Any]:
    measures = [total(value).label(name) for name, value in per_call().items()]
    if users:
        measures.append(func.count(func.distinct(T.user_id)).label("active_users"))
    return measures


def totals_of(row: Row[Any]) -> Totals:
    m = row._mapping
    return Totals(
        requests=int(m["requests"]),
        errors=int(m["errors"]),
        successes=int(m["successes"]),
        cost_usd=Decimal(int(m["cost_usd"])) / PICO,
        credits=Decimal(int(m["credits"])) / MICRO,
        input_tokens=int(m["input_tokens"]),
        output_tokens=int(m["output_tokens"]),
        cached_tokens=int(m["cached_tokens"]),
        latency_ms=int(m["latency_ms"]),
        ttft_ms=int(m["ttft_ms"]),
        ttft_calls=int(m["ttft_calls"]),
        active_users=int(m["active_users"]) if "active_users" in m else 0,
    )


SUMS = tuple(per_call())  # every figure but distinct people


async def raw_totals(session: AsyncSession, scope: Scope, f: Filters) -> Totals:
    if dialect_name(session) == "postgresql":
        # count(DISTINCT user_id) sorts every call; summing per person first is a hash aggregate over
        # a few thousand groups (measured: 620 → 220 ms over 1M calls). Not on SQLite, which would
        # read the calls through the (account, user, time) index, in person order (4x slower).
        per_person = (
            select(T.user_id.label("person"), *_measures(users=False))
            .where(*where(scope, f))
            .group_by(T.user_id)
            .subquery()
        )
        sums = [total(per_person.c[name]).label(name) for name in SUMS]
        people = func.count(per_person.c.person).label("active_users")
        stmt: Any = select(*sums, people)  # eleven sums and a count: typed as a plain row
        return totals_of((await session.execute(stmt)).one())
    row = (await session.execute(select(*_measures(users=True)).where(*where(scope, f)))).one()
    return totals_of(row)


def _key(value: Any) -> Key:
    return value if value is None or isinstance(value, uuid.UUID) else str(value)


async def raw_grouped(
    session: AsyncSession, scope: Scope, f: Filters, dim: Dimension, *, users: bool = True
) -> dict[Key, Totals]:
    """The totals of each value of a dimension (None: calls without one, e.g. no agent); with
    ``users=False`` without the distinct people of each value, which saves a sort of the calls."""
    column = COLUMNS[dim]
    stmt = select(column.label("key"), *_measures(users=users)).where(*where(scope, f)).group_by(column)
    return {_key(row.key): totals_of(row) for row in await session.execute(stmt)}


async def raw_pairs(
    session: AsyncSession, scope: Scope, f: Filters, rows: Dimension, columns: Dimension
) -> dict[tuple[Key, Key], Totals]:
    """The totals of each (row value, column value) pair that has calls."""
    first, second = COLUMNS[rows], COLUMNS[columns]
    stmt = (
        select(first.label("a"), second.label("b"), *_measures(users=False))
        .where(*where(scope, f))
        .group_by(first, second)
    )
    return {(_key(row.a), _key(row.b)): totals_of(row) for row in await session.execute(stmt)}


async def raw_buckets(
    session: AsyncSession,
    scope: Scope,
    f: Filters,
    zone: ZoneInfo,
    step: int,
    dim: Dimension | None = None,
    *,
    users: bool = True,
) -> dict[tuple[int, Key], Totals]:
    """The totals per local hour or day (``step``: 3600 or 86400), and per value of ``dim`` if given."""
    dialect = dialect_name(session)
    number = local_bucket(dialect, offsets(zone, f.start, f.end), step).label("bucket")
    keys: list[Any] = [number]
    grouping: list[Any] = [text("bucket")]  # by the output column: its expression has parameters
    if dim is not None:
        keys.append(COLUMNS[dim].label("key"))
        grouping.append(COLUMNS[dim])
    stmt = select(*keys, *_measures(users=users)).where(*where(scope, f)).group_by(*grouping)
    found: dict[tuple[int, Key], Totals] = {}
    for row in await session.execute(stmt):
        key = _key(row.key) if len(keys) > 1 else None
        found[(int(row.bucket), key)] = totals_of(row)
    return found


# ---- the views: from the rollups where they can answer, else from the calls ----

Read = Callable[[rollup_read.Plan], Awaitable[_R]]


async def _from_rollups(session: AsyncSession, scope: Scope, f: Filters, read: Read[_R]) -> _R | None:
    """``read`` over the rollups, again if a roll committed meanwhile; None when they cannot answer."""
    for _ in range(3):
        plan = await rollup_read.plan(session, scope, f)
        if plan is None:
            return None
        found = await read(plan)
        if await rollup_read.unchanged(session, plan):
            return found
    return None


def _totals(row: Any, people: int = 0) -> Totals:
    """A rollup read's row (its sums by name) as Totals."""
    return Totals(
        int(row.requests), int(row.errors), int(row.successes), Decimal(int(row.cost_usd)) / PICO,
        Decimal(int(row.credits)) / MICRO, int(row.input_tokens), int(row.output_tokens),
        int(row.cached_tokens), int(row.latency_ms), int(row.ttft_ms), int(row.ttft_calls), people,
    )  # fmt: skip


async def totals(session: AsyncSession, scope: Scope, f: Filters) -> Totals:
    async def read(plan: rollup_read.Plan) -> Totals | None:
        src = rollup_read.source(plan, None)
        people = await rollup_read.people(session, plan)
        if src is None or people is None:
            return None
        rows = await rollup_read.grouped(session, plan, src)
        return _totals(rows[0], people) if rows else Totals()

    found = await _from_rollups(session, scope, f, read)
    return found if found is not None else await raw_totals(session, scope, f)


async def grouped(
    session: AsyncSession, scope: Scope, f: Filters, dim: Dimension, *, users: bool = True
) -> dict[Key, Totals]:
    """The totals of each value of a dimension (None: calls without one, e.g. no agent); with
    ``users=False`` without the distinct people of each value, which saves a sort of the calls."""
    if dim is not Dimension.integration and (not users or dim is Dimension.user):

        async def read(plan: rollup_read.Plan) -> dict[Key, Totals] | None:
            src = rollup_read.source(plan, dim)
            if src is None:
                return None
            rows = await rollup_read.grouped(session, plan, src)
            return {
                rollup_read.to_key(dim, row.key): _totals(row, int(users and row.key != "")) for row in rows
            }

        found = await _from_rollups(session, scope, f, read)
        if found is not None:
            return found
    return await raw_grouped(session, scope, f, dim, users=users)


async def pairs(
    session: AsyncSession, scope: Scope, f: Filters, rows: Dimension, columns: Dimension
) -> dict[tuple[Key, Key], Totals]:
    """The totals of each (row value, column value) pair that has calls."""

    async def read(plan: rollup_read.Plan) -> dict[tuple[Key, Key], Totals] | None:
        straight = rollup_read.source(plan, rows, columns)
        src = straight or rollup_read.source(plan, columns, rows)
        if src is None:
            return None
        found: dict[tuple[Key, Key], Totals] = {}
        for row in await rollup_read.grouped(session, plan, src):
            a, b = rollup_read.to_key(src.dims[0], row.key), rollup_read.to_key(src.dims[1], row.key2)
            found[(a, b) if straight is not None else (b, a)] = _totals(row)
        return found

    if Dimension.integration not in (rows, columns):
        found = await _from_rollups(session, scope, f, read)
        if found is not None:
            return found
    return await raw_pairs(session, scope, f, rows, columns)


async def buckets(
    session: AsyncSession,
    scope: Scope,
    f: Filters,
    zone: ZoneInfo,
    step: int,
    dim: Dimension | None = None,
    *,
    users: bool = True,
) -> dict[tuple[int, Key], Totals]:
    """The totals per local hour or day (``step``: 3600 or 86400), and per value of ``dim`` if given;
    with ``users=False`` without the distinct people of each bucket."""

    async def read(plan: rollup_read.Plan) -> dict[tuple[int, Key], Totals] | None:
        src = rollup_read.source(plan, dim)
        if plan.zone.key != zone.key or src is None:
            return None
        if dim is not None:
            rows = await rollup_read.days(session, plan, src, whole=False)
            return {(int(r.day), rollup_read.to_key(dim, r.key)): _totals(r) for r in rows}
        whole = plan.where is None  # only the whole-day rows keep their people
        rows = await rollup_read.days(session, plan, src, whole=whole)
        wanted = [int(r.day) for r in rows if not whole or r.raw] if users else []
        recount = await rollup_read.people_by_day(session, plan, wanted)
        if recount is None:
            return None
        return {
            (int(r.day), None): _totals(
                r, recount.get(int(r.day), int(r.people) if whole else 0) if users else 0
            )
            for r in rows
        }

    if step == 86400 and dim is not Dimension.integration and (dim is None or not users):
        found = await _from_rollups(session, scope, f, read)
        if found is not None:
            return found
    return await raw_buckets(session, scope, f, zone, step, dim, users=users)
