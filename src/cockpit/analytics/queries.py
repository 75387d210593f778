"""SQL over the recorded calls (``usage_requests``): totals, groups by a dimension, buckets of local
time. Sums are taken over the stored integers (micro-credits, pico-dollars), so they are exact on
every backend; buckets follow the account's time zone, daylight-saving changes included (the offset
of each stretch of the period between two changes is added to the UTC time before dividing)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Row, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import rollup_dims, rollup_read
from cockpit.analytics.columns import (
    COLUMNS,
    MICRO,
    PICO,
    Key,
    T,
    bucket_start,
    local_bucket,
    local_wall,
    offsets,
    per_call,
    read_total,
    total,
)
from cockpit.analytics.figures import Totals
from cockpit.analytics.filters import Dimension, Filters, Scope
from cockpit.analytics.rollup_calls import to_key
from cockpit.analytics.rollup_models import SUM_COLUMNS
from cockpit.kit.db import dialect_name

_R = TypeVar("_R")
__all__ = [
    "Key",
    "bucket_start",
    "local_wall",
    "offsets",
]  # used through this module by the service and tests


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


def _measures(dialect: str | None, *, users: bool) -> list[Any]:
    """The sums (read as ``read_total`` gives them; plain sums without a dialect) and the people."""
    measures = [
        (read_total(value, dialect) if dialect else total(value)).label(name)
        for name, value in per_call().items()
    ]
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


async def raw_totals(session: AsyncSession, scope: Scope, f: Filters, *, people: bool = True) -> Totals:
    """The totals of the period from the calls; ``people=False``: without its distinct people."""
    dialect = dialect_name(session)
    if not people:
        return totals_of(
            (await session.execute(select(*_measures(dialect, users=False)).where(*where(scope, f)))).one()
        )
    if dialect == "postgresql":
        # count(DISTINCT user_id) sorts every call; summing per person first is a hash aggregate over
        # a few thousand groups (measured: 620 → 220 ms over 1M calls). Not on SQLite, which would
        # read the calls through the (account, user, time) index, in person order (4x slower).
        per_person = (
            select(T.user_id.label("person"), *_measures(None, users=False))  # summed again below
            .where(*where(scope, f))
            .group_by(T.user_id)
            .subquery()
        )
        sums = [read_total(per_person.c[name], "postgresql").label(name) for name in SUMS]
        persons = func.count(per_person.c.person).label("active_users")
        stmt: Any = select(*sums, persons)  # eleven sums and a count: typed as a plain row
        return totals_of((await session.execute(stmt)).one())
    row = (await session.execute(select(*_measures(dialect, users=True)).where(*where(scope, f)))).one()
    return totals_of(row)


def _key(value: Any) -> Key:
    return value if value is None or isinstance(value, uuid.UUID) else str(value)


async def raw_grouped(
    session: AsyncSession, scope: Scope, f: Filters, dim: Dimension, *, users: bool = True
) -> dict[Key, Totals]:
    """The totals of each value of a dimension (None: calls without one, e.g. no agent); with
    ``users=False`` without the distinct people of each value, which saves a sort of the calls."""
    column = COLUMNS[dim]
    stmt = (
        select(column.label("key"), *_measures(dialect_name(session), users=users))
        .where(*where(scope, f))
        .group_by(column)
    )
    return {_key(row.key): totals_of(row) for row in await session.execute(stmt)}


def _among(column: Any, keys: Collection[Key]) -> ColumnElement[bool]:
    values = [k for k in keys if k is not None]
    condition = column.in_(values)
    return or_(condition, column.is_(None)) if None in keys else condition


async def raw_pairs(
    session: AsyncSession,
    scope: Scope,
    f: Filters,
    rows: Dimension,
    columns: Dimension,
    row_keys: Collection[Key] | None = None,
) -> dict[tuple[Key, Key], Totals]:
    """The totals of each (row value, column value) pair that has calls (of ``row_keys`` only)."""
    first, second = COLUMNS[rows], COLUMNS[columns]
    only = [] if row_keys is None else [_among(first, row_keys)]
    stmt = (
        select(first.label("a"), second.label("b"), *_measures(dialect_name(session), users=False))
        .where(*where(scope, f), *only)
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
    stmt = (
        select(*keys, *_measures(dialect_name(session), users=users))
        .where(*where(scope, f))
        .group_by(*grouping)
    )
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
    """A rollup read's row as Totals: its sums are its 3rd to 13th columns, in SUM_COLUMNS' order
    (every rollup read selects two keys first). By position: a Row's attribute lookups by name cost
    more than everything else here (17 µs a row against 3 µs; the pivot reads 5,000 such rows)."""
    return totals_from(row[2:13], people)


def totals_from(sums: Sequence[Any], people: int = 0) -> Totals:
    """Totals of the 11 stored integers of SUM_COLUMNS (as integers or their text)."""
    r, e, s, cost, credits, i, o, c, lat, ttft, calls = map(int, sums)
    return Totals(r, e, s, Decimal(cost) / PICO, Decimal(credits) / MICRO, i, o, c, lat, ttft, calls, people)


async def totals(session: AsyncSession, scope: Scope, f: Filters, *, people: int | None = None) -> Totals:
    """The totals of the period; ``people``: its distinct people when the caller has counted them
    already (e.g. from a breakdown by user), which saves reading the person rows again."""

    async def read(plan: rollup_read.Plan) -> Totals | None:
        if people is None:  # the sums and the people from the person rows, in one read
            found = await rollup_read.totals(session, plan)
            if found is None:
                return None
            row, count = found
            return _totals(row, count) if row is not None else Totals()
        src = rollup_read.source(plan, None)
        if src is None:
            return None
        rows = await rollup_read.grouped(session, plan, src)
        return _totals(rows[0], people) if rows else Totals()

    found = await _from_rollups(session, scope, f, read)
    if found is not None:
        return found
    if people is not None:
        return replace(await raw_totals(session, scope, f, people=False), active_users=people)
    return await raw_totals(session, scope, f)


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
            return {to_key(dim, row.key): _totals(row, int(users and row.key != "")) for row in rows}

        found = await _from_rollups(session, scope, f, read)
        if found is not None:
            return found
    return await raw_grouped(session, scope, f, dim, users=users)


# The sums a metric is made of (a ranking's, a pivot's value).
METRIC_SUMS = {
    "cost": ("cost_usd",), "requests": ("requests",), "errors": ("errors",),
    "tokens": ("input_tokens", "output_tokens"),
}  # fmt: skip


@dataclass(frozen=True)
class Ranked:
    page: list[tuple[Key, Totals]]  # largest first
    count: int  # values on every page
    whole: Totals  # of every value; active_users: the values that are not None (people, by user)


async def ranked(
    session: AsyncSession,
    scope: Scope,
    f: Filters,
    dim: Dimension,
    metric: str,
    *,
    then_requests: bool,
    limit: int,
    offset: int,
    sums: Sequence[str] = SUM_COLUMNS,
) -> Ranked | None:
    """One page of a dimension's values, largest ``metric`` first, sorted and paged by the database
    (see rollup_read.ranked); None when the rollups cannot answer (then group, sort and page the
    calls' figures). ``sums``: the totals' figures needed (the others may be 0; ``metric``'s and the
    requests are always read)."""
    if dim is Dimension.integration:
        return None

    async def read(plan: rollup_read.Plan) -> Ranked | None:
        src = rollup_read.source(plan, dim, blocks=True)
        if src is None:
            return None

        async def page(limit: int, offset: int) -> list[Any]:
            return await rollup_read.ranked(
                session, plan, src, metric, then_requests=then_requests, limit=limit, offset=offset,
                sums=(*sums, *METRIC_SUMS[metric], "requests"),
            )  # fmt: skip

        rows = await page(limit, offset)
        shown = [(to_key(dim, row.key), _totals(row)) for row in rows]
        if not rows and offset:  # past the last page: the count and the whole from the first row
            rows = await page(1, 0)
        if not rows:
            return Ranked([], 0, Totals())
        return Ranked(shown, int(rows[0].n), totals_from(rows[0][15:26], int(rows[0].people)))

    return await _from_rollups(session, scope, f, read)


async def pairs(
    session: AsyncSession,
    scope: Scope,
    f: Filters,
    rows: Dimension,
    columns: Dimension,
    *,
    row_keys: Collection[Key] | None = None,
    sums: Sequence[str] = SUM_COLUMNS,
) -> dict[tuple[Key, Key], Totals]:
    """The totals of each (row value, column value) pair that has calls; ``row_keys``: of these row
    values only (a pivot's page); ``sums``: the totals' figures needed (the others may be 0)."""

    async def read(plan: rollup_read.Plan) -> dict[tuple[Key, Key], Totals] | None:
        return await _rolled_pairs(session, plan, rows, columns, row_keys, sums)

    if Dimension.integration not in (rows, columns):
        found = await _from_rollups(session, scope, f, read)
        if found is not None:
            return found
    return await raw_pairs(session, scope, f, rows, columns, row_keys)


async def _rolled_pairs(
    session: AsyncSession,
    plan: rollup_read.Plan,
    rows: Dimension,
    columns: Dimension,
    row_keys: Collection[Key] | None,
    sums: Sequence[str] = SUM_COLUMNS,
) -> dict[tuple[Key, Key], Totals] | None:
    """``pairs`` from the rollups; None when they do not keep these pairs under the plan's filter."""
    straight = rollup_read.source(plan, rows, columns)
    src = straight or rollup_read.source(plan, columns, rows)
    if src is None:
        return None
    keys = None
    if row_keys is not None:
        keys = (0 if straight is not None else 1, [rollup_read.stored(plan.dialect, k) for k in row_keys])
    found: dict[tuple[Key, Key], Totals] = {}
    for row in await rollup_read.grouped(session, plan, src, keys, (*sums, "requests")):
        a, b = to_key(src.dims[0], row.key), to_key(src.dims[1], row.key2)
        found[(a, b) if straight is not None else (b, a)] = _totals(row)
    return found


async def page_cells(
    session: AsyncSession,
    scope: Scope,
    f: Filters,
    columns: Dimension,
    page: Sequence[tuple[Key, Totals]],
    sums: Sequence[str] = SUM_COLUMNS,
) -> dict[tuple[Key, Key], Totals]:
    """The cells (person, column value) of a pivot's page of people, given each person's totals
    under ``f``. Under a filter whose pairs the rollups do not keep (e.g. users x models of one group):
    a person all of whose calls of the period pass the filter (as many requests with it as without:
    the usual case, people stay in their group) has the same cells as without the filter, which the
    rollups keep; the other people's cells come from their calls. ``sums``: the cells' figures
    needed (the others may be 0; ``page`` needs its requests)."""
    keys = [key for key, _ in page]
    if not keys:
        return {}
    plain = Filters(f.start, f.end)
    if (
        plain == f
        or Dimension.integration is columns
        or await pairs_rolled(session, scope, f, Dimension.user, columns)
    ):
        return await pairs(session, scope, f, Dimension.user, columns, row_keys=keys, sums=sums)

    async def read(plan: rollup_read.Plan) -> tuple[dict[tuple[Key, Key], Totals], list[Key]] | None:
        people = rollup_read.source(plan, Dimension.user, blocks=True)
        kept = rollup_read.source(plan, Dimension.user, columns) or rollup_read.source(
            plan, columns, Dimension.user
        )
        if people is None or kept is None:
            return None
        stored = [rollup_read.stored(plan.dialect, key) for key in keys]
        found = await rollup_read.grouped(session, plan, people, (0, stored), ("requests",))
        overall = {row.key: int(row.requests) for row in found}
        whole = [
            key
            for (key, totals), text in zip(page, stored, strict=True)
            if overall.get(text) == totals.requests
        ]
        cells = await _rolled_pairs(session, plan, Dimension.user, columns, whole, sums) if whole else {}
        if cells is None:
            return None
        taken = set(whole)
        return cells, [key for key in keys if key not in taken]

    found = await _from_rollups(session, scope, plain, read)
    if found is None:
        return await pairs(session, scope, f, Dimension.user, columns, row_keys=keys, sums=sums)
    cells, rest = found
    if rest:
        cells.update(await raw_pairs(session, scope, f, Dimension.user, columns, rest))
    return cells


async def pairs_rolled(
    session: AsyncSession, scope: Scope, f: Filters, rows: Dimension, columns: Dimension
) -> bool:
    """Whether the rollups keep the pairs of ``rows`` and ``columns`` for this view (then a few rows'
    pairs are a few ranges of them)."""
    if Dimension.integration in (rows, columns):
        return False
    plan = await rollup_read.plan(session, scope, f)
    return plan is not None and (
        rollup_read.source(plan, rows, columns) is not None
        or rollup_read.source(plan, columns, rows) is not None
    )


async def breakdowns_rolled(session: AsyncSession, scope: Scope, f: Filters, *dims: Dimension) -> bool:
    """Whether the rollups give the breakdown by each of ``dims`` for this view."""
    if Dimension.integration in dims:
        return False
    plan = await rollup_read.plan(session, scope, f)
    return plan is not None and all(rollup_read.source(plan, dim) is not None for dim in dims)


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

    if dim is not None and not users:
        return {
            key: totals_from(sums)
            for key, sums in (await stack_sums(session, scope, f, zone, step, dim)).items()
        }

    async def read(plan: rollup_read.Plan) -> dict[tuple[int, Key], Totals] | None:
        src = rollup_read.source(plan, dim)
        if plan.zone.key != zone.key or src is None:
            return None
        # The day rows that keep their people: the whole account's, and those of a dimension in
        # PEOPLE_COUNTED under a filter on it (where the rollups keep people: they count them).
        whole = plan.where is None or (plan.people and plan.where[0] in rollup_dims.PEOPLE_COUNTED)
        rows = await rollup_read.days(session, plan, src, whole=whole)
        wanted = [int(r.day) for r in rows if not whole or r.raw] if users else []
        recount = await rollup_read.people_by_day(session, plan, wanted) if users else {}
        if recount is None:
            return None
        return {
            (int(r.day), None): _totals(
                r, recount.get(int(r.day), int(r.people) if whole else 0) if users else 0
            )
            for r in rows
        }

    if step == 86400 and dim is None:
        found = await _from_rollups(session, scope, f, read)
        if found is not None:
            return found
    return await raw_buckets(session, scope, f, zone, step, dim, users=users)


Sums = tuple[int, ...]  # the stored integers of SUM_COLUMNS: requests, errors, successes, pico-USD, ...


def sums_of(t: Totals) -> Sums:
    return (
        t.requests, t.errors, t.successes, int(t.cost_usd * PICO), int(t.credits * MICRO), t.input_tokens,
        t.output_tokens, t.cached_tokens, t.latency_ms, t.ttft_ms, t.ttft_calls,
    )  # fmt: skip


async def stack_sums(
    session: AsyncSession, scope: Scope, f: Filters, zone: ZoneInfo, step: int, dim: Dimension
) -> dict[tuple[int, Key], Sums]:
    """The sums per local hour or day and value of ``dim``, as integers: a stacked timeline shows a
    few of the values and adds up the rest (making Totals of 3,600 rows and adding them took longer
    than reading them)."""

    async def read(plan: rollup_read.Plan) -> dict[tuple[int, Key], Sums] | None:
        src = rollup_read.source(plan, dim)
        if plan.zone.key != zone.key or src is None:
            return None
        rows = await rollup_read.days(session, plan, src, whole=False)
        return {(int(r.day), to_key(dim, r.key)): tuple(map(int, r[2:13])) for r in rows}

    if step == 86400 and dim is not Dimension.integration:
        found = await _from_rollups(session, scope, f, read)
        if found is not None:
            return found
    raw = await raw_buckets(session, scope, f, zone, step, dim, users=False)
    return {key: sums_of(totals) for key, totals in raw.items()}
