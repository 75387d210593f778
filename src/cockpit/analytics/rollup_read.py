"""Reading a view from the rollups (docs/analytics-rollups.md): the whole local days of the period
from the rollup rows, the rest from the recorded calls, in one statement.

For a period [start, end) the rollups give the local days S = [d0, d1). The calls add:
- the calls of the period outside S (a partial first or last day read from the calls),
- minus the rolled calls of S outside the period (a partial day read from the rollups when most of
  it is in the period, e.g. today up to now),
- the calls of the period in S above the watermark (recorded since the last roll).
Each part is a range of the (account, created_at) index or, for the last one, of the watermark, so a
view reads a few thousand rollup rows and a few calls. A group whose calls are all taken away again
has no requests left and is dropped. The watermark, the rollups' zone and the account's zone are read
before and after: if a roll committed in between, the view is read again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics.columns import (
    COLUMNS,
    T,
    as_read,
    local_bucket,
    offsets,
    per_call,
    read_total,
)
from cockpit.analytics.filters import Dimension, Filters, Scope
from cockpit.analytics.rollup_calls import among, calls_grouped, once_per_key, padded, people_in_calls, to_key
from cockpit.analytics.rollup_dims import DIMS, PEOPLE_BLOCKS, WHOLE, RolledDim, key_of, rolled
from cockpit.analytics.rollup_models import SUM_COLUMNS, UsageRollup, UsageRollupAccount, UsageRollupState
from cockpit.analytics.rollup_parts import DAY, Part, midnight, parts, people_blocks
from cockpit.analytics.rollup_running import EARLIEST, running_reads
from cockpit.analytics.rollups import STATE, watermark
from cockpit.kit.db import dialect_name
from cockpit.tenancy.models import Account

R = UsageRollup.__table__.c


@dataclass(frozen=True)
class Plan:
    account_id: uuid.UUID
    dialect: str
    zone: ZoneInfo
    watermark: int
    first_day: int  # S = [first_day, last_day)
    last_day: int
    parts: list[Part]
    filters: Filters
    where: tuple[Dimension, str] | None = None  # the one filter, as (dimension, stored key)
    people: bool = True  # whether the dims not ``always`` kept are (RolledDim.always)
    newest: dict[str, int] = field(default_factory=dict)  # a running dim's newest day (rollups._accumulate)

    def period(self) -> ColumnElement[bool]:
        """The period's calls under the plan's filter (what a source of calls reads: Source.calls)."""
        f = self.filters
        calls = and_(T.account_id == self.account_id, T.created_at >= f.start, T.created_at < f.end)
        return calls if self.where is None else and_(calls, _calls_with(self.where))

    def blocks(self, dim: RolledDim, *, each: bool = False) -> list[ColumnElement[bool]]:
        """The rollup rows of ``dim`` that cover S: days, or the fewest blocks of 4^k days, as one
        condition per level (each read by a statement of its own: SQLite reads an OR of them with
        only (account, dim) of the index, i.e. every row of the dim); ``each``: every block named
        (where a few keys are read from each block: a range of blocks before the key in the index
        would be scanned once per key, or whole)."""
        if dim.levels == 1 and not each:
            return [and_(R.level == 0, R.block >= self.first_day, R.block < self.last_day)]
        ranges: dict[int, list[list[int]]] = {}
        day = self.first_day
        while day < self.last_day:
            level = dim.levels - 1
            while level > 0 and (day % 4**level or day + 4**level > self.last_day):
                level -= 1
            block = day // 4**level
            runs = ranges.setdefault(level, [])
            if runs and runs[-1][1] == block - 1:
                runs[-1][1] = block
            else:
                runs.append([block, block])
            day += 4**level
        if each:
            return [
                and_(R.level == level, R.block.in_([b for low, high in runs for b in range(low, high + 1)]))
                for level, runs in ranges.items()
            ]
        return [
            and_(R.level == level, or_(*(and_(R.block >= low, R.block <= high) for low, high in runs)))
            for level, runs in ranges.items()
        ]

    def day(self) -> Any:
        """A call's local day (for the parts read from the calls)."""
        return local_bucket(self.dialect, offsets(self.zone, self.filters.start, self.filters.end), DAY)


def _calls_with(where: tuple[Dimension, str]) -> ColumnElement[bool]:
    """The calls of a filter's value (dimension, stored key), on the column itself rather than its
    stored text (key_of): no conversion of every call's value (an id to text), and a condition the
    database plans as any other."""
    dim, key = where
    column, value = COLUMNS[dim], to_key(dim, key)
    condition: ColumnElement[bool] = column.is_(None) if value is None else column == value
    return condition


_FILTERS: tuple[tuple[str, Dimension], ...] = (
    ("group_id", Dimension.group), ("project_id", Dimension.project), ("user_id", Dimension.user),
    ("api_token_id", Dimension.token), ("model", Dimension.model), ("agent", Dimension.agent),
    ("operation", Dimension.operation), ("status", Dimension.status),
)  # fmt: skip


def _filter(dialect: str, f: Filters) -> tuple[Dimension, str] | bool | None:
    """The one filter of ``f`` as (dimension, stored key); None without; False for two or more."""
    chosen = [(dim, getattr(f, name)) for name, dim in _FILTERS if getattr(f, name) is not None]
    if len(chosen) > 1:
        return False
    if not chosen:
        return None
    dim, value = chosen[0]
    return dim, stored(dialect, value)


def stored(dialect: str, value: object) -> str:
    """A dimension's value as the rollups store it (as the database writes it as text; '' for none)."""
    if value is None:
        return ""
    if isinstance(value, uuid.UUID):
        return str(value) if dialect == "postgresql" else value.hex
    return str(value)


@dataclass(frozen=True)
class _Version:
    watermark: int
    built: str | None  # the zone of the account's rollups (None: none yet)
    current: str | None  # the account's zone
    people: bool  # whether they keep the person dimensions


async def _versions(session: AsyncSession, account_id: uuid.UUID) -> _Version:
    """The watermark and what the account's rollups are: their zone, the account's, their mode (one
    statement: a view checks them after each of its reads)."""
    UA = UsageRollupAccount
    mark = select(UsageRollupState.watermark).where(UsageRollupState.name == STATE).scalar_subquery()
    row = (
        await session.execute(
            select(Account.timezone, UA.zone, UA.people, mark)
            .join(UA, UA.account_id == Account.id, isouter=True)
            .where(Account.id == account_id)
        )
    ).first()
    if row is None:
        return _Version(await watermark(session), None, None, False)
    return _Version(int(row[3] or 0), row[1], row[0] or "UTC", bool(row[2]))


_PLANS = "cockpit.analytics.plans"  # a session's plans (Session.info), by (scope, filters)


async def plan(session: AsyncSession, scope: Scope, f: Filters) -> Plan | None:
    """How to read the view from the rollups; None when they cannot answer it (a project's or one
    person's view, two filters or more, rollups not built yet or in another zone, no whole day).
    Kept for the session while the rollups' version is the same (one statement): a view reads the
    rollups several times (a pivot: 4 reads), and planning each read again took 12 of a pivot's 17
    statements."""
    plans: dict[tuple[Scope, Filters], Plan] = session.info.setdefault(_PLANS, {})
    kept = plans.get((scope, f))
    if kept is not None and await unchanged(session, kept):
        return kept
    found = await _plan(session, scope, f)
    if found is not None:
        plans[(scope, f)] = found
    return found


async def _plan(session: AsyncSession, scope: Scope, f: Filters) -> Plan | None:
    dialect = dialect_name(session)
    where = _filter(dialect, f)
    if scope.project_id is not None or scope.user_id is not None or where is False:
        return None
    version = await _versions(session, scope.account_id)
    mark, built = version.watermark, version.built
    if built is None or built != version.current:
        return None
    try:
        zone = ZoneInfo(built)
    except (KeyError, ValueError):
        return None
    found = parts(dialect, scope.account_id, f, zone, mark)
    if found is None:
        return None
    d0, d1, raw = found
    if isinstance(where, tuple):
        only = _calls_with(where)
        raw = [Part(and_(part.condition, only), part.sign) for part in raw]
    # One max() per dim: each is one step back along the primary key (with GROUP BY dim, every row).
    running = [dim.running for dim in DIMS.values() if dim.cumulative and version.people]
    newest: Sequence[Any] = ()
    if running:
        maxima = (
            select(func.max(R.block))
            .where(R.account_id == scope.account_id, R.dim == name, R.level == 0)
            .scalar_subquery()
            for name in running
        )
        newest = (await session.execute(select(*maxima))).one()
    return Plan(
        scope.account_id, dialect, zone, mark, d0, d1, raw, f, where if isinstance(where, tuple) else None,
        version.people,
        {name: int(day) for name, day in zip(running, newest, strict=True) if day is not None},
    )  # fmt: skip


async def unchanged(session: AsyncSession, p: Plan) -> bool:
    version = await _versions(session, p.account_id)
    return (
        version.watermark == p.watermark
        and version.built == version.current == str(p.zone.key)
        and version.people == p.people
    )


# ---- statements ----


@dataclass(frozen=True)
class Source:
    """Which rollup rows give a view's values: ``rolled``'s rows (with key ``value`` under a filter),
    the values of ``dims`` (at most two) read from ``key`` and ``key2`` or, shifted, from ``key2``."""

    rolled: RolledDim
    dims: tuple[Dimension | None, Dimension | None]
    value: str | None = None
    shifted: bool = False
    calls: bool = False  # no rollup row: the period's calls only (an account without person rollups)
    # PEOPLE_BLOCKS: its blocks [low, high) and the period's calls around them (rollup_parts.people_blocks)
    within: tuple[int, int, tuple[Part, ...]] | None = None


def source(
    p: Plan, first: Dimension | None, second: Dimension | None = None, *, blocks: bool = False
) -> Source | None:
    """The rollup rows for the values of ``first`` (and ``second``) under the plan's filter, if kept.
    An account whose rollups keep no people keeps only the ``always`` dimensions: the others are read
    from its calls (which are few), by the same statements, so sorted, paged and counted there;
    ``blocks``: its people without a filter from its blocks of 16 days (PEOPLE_BLOCKS) and the calls
    around them, where the period holds such a block (for sums per person: not per day)."""
    found = _source(p, first, second)
    if p.people or (found is not None and found.rolled.always):
        return found
    if blocks and p.where is None and first is Dimension.user and second is None:
        within = people_blocks(p.dialect, p.account_id, p.filters, p.zone, p.watermark)
        if within is not None:
            return Source(PEOPLE_BLOCKS, (first, None), within=within)
    return Source(WHOLE, (first, second), calls=True)


def _source(p: Plan, first: Dimension | None, second: Dimension | None) -> Source | None:
    if p.where is None:
        found = rolled(first, second)
        return Source(found, (first, second)) if found is not None else None
    dim, value = p.where
    if second is not None:  # a pair under a filter on its first dimension: the F|D rows of that value
        pair = rolled(dim, second) if first is dim else None
        return Source(pair, (first, second), value) if pair is not None else None
    if first is None or first is dim:
        alone = rolled(dim)
        return Source(alone, (first, None), value) if alone is not None else None
    pair = rolled(dim, first)
    return Source(pair, (first, None), value, shifted=True) if pair is not None else None


def _union(
    p: Plan,
    src: Source,
    *,
    by_day: bool = False,
    people: bool = False,
    only: Sequence[int] = (),
    keys: tuple[int, Sequence[str]] | None = None,
    sums: Sequence[str] = SUM_COLUMNS,
    within: ColumnElement[bool] | None = None,
) -> Any:
    """The rollup rows of ``src`` over S and the parts' calls, as one derived table of (day,) key,
    key2, the sums (and ``people``/``raw`` for the whole-day timeline); ``keys`` (n, values): only
    these values (stored text) of the source's n-th dimension (not shifted); ``sums``: only these
    sums, the others 0 (counting people needs only the requests); ``within``: of a source of calls,
    only these."""
    day: list[Any] = [R.block.label("day")] if by_day else []
    newest = p.newest.get(src.rolled.running) if src.rolled.cumulative and not (by_day or only) else None
    if only:
        rows = [and_(R.level == 0, R.block.in_(list(only)))]
    elif by_day:
        rows = [and_(R.level == 0, R.block >= p.first_day, R.block < p.last_day)]
    else:  # one value's rows (a filter) or a few keys': each block named, then the key in the index
        rows = p.blocks(src.rolled, each=keys is not None or src.value is not None)
    parts = p.parts
    if src.within is not None:  # a small account's blocks of people and the calls around them
        low, high, around = src.within
        named = R.block.in_(list(range(low, high))) if keys is not None else R.block.between(low, high - 1)
        rows, parts = [and_(R.level == src.rolled.lowest, named)], list(around)
    keyed: list[Any] = []
    if src.value is not None:
        keyed.append(R.key == src.value)
    first: list[Any] = []
    if keys is not None:
        position, values = keys
        keyed.append((R.key2 if position else R.key).in_(list(values)))
        first.append(
            among(src.dims[position], values) if src.calls else key_of(src.dims[position]).in_(list(values))
        )
    empty = literal("", String)
    if src.shifted:
        columns = [R.key2.label("key"), empty.label("key2")]
    elif src.dims[0] is None:
        columns = [empty.label("key"), empty.label("key2")]
    else:
        columns = [R.key.label("key"), R.key2.label("key2")]
    extra: list[Any] = [R.people.label("people"), literal(0, BigInteger).label("raw")] if people else []
    mine = R.account_id == p.account_id
    selects: list[Select[Any]]
    if src.calls:  # the period's calls only
        selects, parts = [], [Part(p.period() if within is None else and_(p.period(), within), 1)]
    elif newest is None:
        selects = [
            select(*day, *columns, *padded({name: R[name] for name in sums}), *extra).where(
                mine, R.dim == src.rolled.name, level, *keyed
            )
            for level in rows
        ]
    else:
        # Running sums: S's sums from the running rows of (at most) two kept days and a few days'
        # rows, whatever S's length (rollups._accumulate).
        reads = running_reads(p.first_day, p.last_day, newest)

        def since(low: int) -> list[Any]:
            return [R.block >= low] if low != EARLIEST else []

        selects = [
            select(*columns, *padded({name: R[name] * sign for name in sums})).where(
                mine, R.dim == src.rolled.running, R.level == 0, R.block == block, *keyed
            )
            for block, sign in reads.rows.items()
        ] + [
            select(*columns, *padded({name: R[name] * sign for name in sums})).where(
                mine, R.dim == src.rolled.name, R.level == 0, R.block <= high, *keyed, *since(low)
            )
            for low, high, sign in reads.days
        ]
    raw_day: list[Any] = [p.day().label("day")] if by_day else []
    if src.calls and p.dialect == "postgresql":
        return calls_grouped(src.dims, parts[0].condition, first, raw_day, sums, people=people)
    for part in parts:
        extras: list[Any] = (
            [literal(0, BigInteger).label("people"), literal(1, BigInteger).label("raw")] if people else []
        )
        selects.append(
            select(
                *raw_day,
                key_of(src.dims[0]).label("key"),
                key_of(src.dims[1]).label("key2"),
                # As the stored integers (pico-dollars, micro-credits), like the rollup rows: a union
                # of calls only would otherwise take the money columns' types, read as Decimals.
                # (A call without a first token adds 0: a group of such calls only sums to 0, not NULL.)
                *padded(
                    {
                        name: func.coalesce(type_coerce(value, BigInteger), 0)
                        for name, value in per_call(part.sign).items()
                        if name in sums
                    }
                ),
                *extras,
            ).where(part.condition, *first)
        )
    return union_all(*selects).subquery("calls")


def _sums(p: Plan, u: Any) -> list[Any]:
    return [read_total(u.c[name], p.dialect).label(name) for name in SUM_COLUMNS]


async def grouped(
    session: AsyncSession,
    p: Plan,
    src: Source,
    keys: tuple[int, Sequence[str]] | None = None,
    sums: Sequence[str] = SUM_COLUMNS,
) -> list[Any]:
    """Rows of (key, key2, sums) with requests, in no order; ``keys`` (n, values): of these values
    of the source's n-th dimension only; ``sums``: only these sums, the others 0."""
    u = _union(p, src, keys=keys, sums=sums)
    if src.calls and once_per_key(p.dialect, src.dims):
        stmt = select(u.c.key, u.c.key2, *[as_read(u.c[name], p.dialect).label(name) for name in SUM_COLUMNS])
    else:
        stmt = select(u.c.key, u.c.key2, *_sums(p, u)).group_by(u.c.key, u.c.key2)
        stmt = stmt.having(func.sum(u.c.requests) > 0)
    return list((await session.execute(stmt)).all())  # all(): one fetch, not one per row


def _per_value(u: Any, *by: str, sums: Sequence[str] = SUM_COLUMNS) -> Any:
    """The sums of a union's rows per value of the ``by`` columns, for values with calls left;
    ``sums``: only these, the others 0."""
    group = [u.c[name] for name in by]
    summed = padded({name: func.sum(u.c[name]) for name in (*sums, "requests")})
    return select(*group, *summed).group_by(*group).having(func.sum(u.c.requests) > 0).subquery()


async def totals(session: AsyncSession, p: Plan) -> tuple[Any, int] | None:
    """The period's sums (a row of two keys and the sums, None without calls) and its distinct
    people, in one statement: the person rows (or running sums) under the filter hold every call
    once, split by person, so their sums are the totals. An account whose rollups keep no person
    rows, without a filter: the sums from the whole account's rows, the people counted from the
    calls (a grouping of the calls by person alone is a third of one that also sums them). None when
    the rollups cannot answer (then one aggregate of the calls)."""
    src = source(p, Dimension.user)
    if src is None:
        return None
    if src.calls:  # no person rows: the sums from the rollups, the people from the calls
        # Under a filter, one aggregate of the value's calls (a fraction of the period's) is cheaper
        # than a read of the rollups and a count of the calls (measured: 14 against 17-19 ms).
        whole = source(p, None) if p.where is None else None
        if whole is None:
            return None
        rows = await grouped(session, p, whole)
        return (rows[0] if rows else None), await people_in_calls(
            session, p.dialect, p.account_id, p.filters.start, p.filters.end
        )
    per_person = _per_value(_union(p, src), "key")
    persons = func.count().filter(per_person.c.key != "")
    empty = literal("", String)
    row = (
        await session.execute(
            select(empty, empty, *_sums(p, per_person), persons.label("people")).select_from(per_person)
        )
    ).one()
    return (row if row.requests is not None and int(row.requests) > 0 else None), int(row.people)


async def ranked(
    session: AsyncSession,
    p: Plan,
    src: Source,
    metric: str,
    *,
    then_requests: bool,
    limit: int,
    offset: int,
    sums: Sequence[str] = SUM_COLUMNS,
) -> list[Any]:
    """One page of the values of ``src`` (``key``), largest ``metric`` first (``cost``, ``requests``,
    ``errors`` or ``tokens``; then most requests if ``then_requests``; then by the key as text, a
    value without one as 'None', as the views order them): rows of (key, key2, the sums, ``n``: how
    many values, ``people``: how many are not '', and the sums of all values). Sorted and paged in the
    database: a breakdown by person is one page of ~5,000 people. ``sums``: only these sums, the
    others 0."""
    u = _union(p, src, sums=sums)
    g = u if src.calls and once_per_key(p.dialect, src.dims) else _per_value(u, "key", "key2", sums=sums)
    amount = {
        "cost": g.c.cost_usd, "requests": g.c.requests, "errors": g.c.errors,
        "tokens": g.c.input_tokens + g.c.output_tokens,
    }[metric]  # fmt: skip
    spelled: Any = case((g.c.key == "", literal("None", String)), else_=g.c.key)
    if p.dialect == "postgresql":
        spelled = spelled.collate("C")  # code point order, as Python compares the keys
    order = [amount.desc(), *([g.c.requests.desc()] if then_requests else []), spelled]
    read = [as_read(g.c[name], p.dialect).label(name) for name in SUM_COLUMNS]
    read_sums = {*sums, "requests"}  # (a sum not read is 0 on every row)
    everything = [
        as_read(func.sum(g.c[n]).over() if n in read_sums else g.c[n], p.dialect).label(f"all_{n}")
        for n in SUM_COLUMNS
    ]
    values = func.count().over().label("n")
    people = func.sum(case((g.c.key != "", 1), else_=0)).over().label("people")
    stmt = (
        select(g.c.key, g.c.key2, *read, values, people, *everything)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    )
    return list((await session.execute(stmt)).all())


async def days(session: AsyncSession, p: Plan, src: Source, *, whole: bool) -> list[Any]:
    """Rows of (day, key, sums[, people, raw]) per local day; ``whole``: the whole-day rows, with their
    people and how many calls were read for the day."""
    u = _union(p, src, by_day=True, people=whole)
    extra = (
        [
            func.sum(u.c.people, type_=BigInteger).label("people"),
            func.sum(u.c.raw, type_=BigInteger).label("raw"),
        ]
        if whole
        else []
    )
    stmt = (
        select(u.c.day, u.c.key, *_sums(p, u), *extra)
        .group_by(u.c.day, u.c.key)
        .having(func.sum(u.c.requests) > 0)
    )
    return list((await session.execute(stmt)).all())  # all(): one fetch, not one per row


async def people_by_day(session: AsyncSession, p: Plan, wanted: Sequence[int]) -> dict[int, int] | None:
    """The distinct people of each of ``wanted`` days, from the day rows of people and the calls;
    None when the rollups do not keep them under the filter."""
    src = source(p, Dimension.user)
    if src is None:
        return None
    if not wanted:
        return {}
    if src.calls:  # the calls of these days only (one range of the index; the days are picked below)
        if len(wanted) > 2:
            return None  # every day's people: the calls' own daily timeline counts them in its one pass
        lowest, highest = midnight(min(wanted), p.zone), midnight(max(wanted) + 1, p.zone)
        u = _union(p, src, by_day=True, sums=("requests",), within=T.created_at.between(lowest, highest))
    else:
        kept = [d for d in wanted if p.first_day <= d < p.last_day] or [p.first_day - 1]  # the days in S
        u = _union(p, src, by_day=True, only=kept, sums=("requests",))
    persons = (
        select(u.c.day, u.c.key)
        .where(u.c.key != "", u.c.day.in_(list(wanted)))
        .group_by(u.c.day, u.c.key)
        .having(func.sum(u.c.requests) > 0)
        .subquery()
    )
    rows = (await session.execute(select(persons.c.day, func.count()).group_by(persons.c.day))).all()
    return {int(day): int(n) for day, n in rows}
