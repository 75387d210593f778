"""Keeping the rollups of the recorded calls (docs/analytics-rollups.md; tables in rollup_models.py).

``roll`` adds the calls recorded since the watermark to the rollups and moves the watermark, in one
transaction: a job (``usage.rollup``) runs it every few seconds, off the gateway's hot path. Sums are
added (``ON CONFLICT … DO UPDATE``), so a call is counted exactly once however the batches fall, and
a late call (a journal replayed after a crash) lands in its own past day. An account whose time zone
changed is rebuilt from all its calls in the same transaction.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import UserDefinedType

from cockpit.analytics.columns import T, bucket_start, local_bucket, offsets, per_call, total
from cockpit.analytics.rollup_dims import DIMS, PEOPLE_COUNTED, WHOLE, RolledDim, key_of
from cockpit.analytics.rollup_models import SUM_COLUMNS, UsageRollup, UsageRollupAccount, UsageRollupState
from cockpit.analytics.rollup_running import CHECKPOINT, checkpoint
from cockpit.kit.db import dialect_name
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord

R = UsageRollup.__table__.c
STATE = "usage"
KEY_COLUMNS = ["account_id", "dim", "level", "block", "key", "key2"]
ROW_COLUMNS = [*KEY_COLUMNS, *SUM_COLUMNS, "people"]  # a rollup row, in insert order
KEYS_PER_STATEMENT = 2000  # values whose running sums one statement recomputes (two lists of bound keys)
SQLITE_CHUNK = 200_000  # calls per transaction on SQLite (one writer: keep each lock short)
# Calls rebuilt per run for new zones (e.g. every small account after migration 0037): the others
# wait for the next runs, their views reading their calls meanwhile.
REBUILD_CALLS = 200_000


# ---- the watermark ----


class XID8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (only cast to, for comparisons with ``recorded_xid``)."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"


def _xid(watermark: int, bound: bool) -> ColumnElement[Any]:
    if bound:  # one statement text whatever the value: the caches keep it (the roll job)
        return cast(cast(literal(str(int(watermark)), String), Text), XID8())
    # In the text: the planner sees how few calls lie above it (a view's statement).
    return literal_column(f"'{int(watermark)}'::xid8", XID8())


def rolled_condition(dialect: str, watermark: int, *, bound: bool = False) -> ColumnElement[bool]:
    """The calls the rollups hold at ``watermark``."""
    if dialect == "postgresql":
        return literal_column("usage_requests.recorded_xid") < _xid(watermark, bound)
    return literal_column("usage_requests.rowid") <= watermark


def not_rolled_condition(dialect: str, watermark: int, *, bound: bool = False) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return literal_column("usage_requests.recorded_xid") >= _xid(watermark, bound)
    return literal_column("usage_requests.rowid") > watermark


async def watermark(session: AsyncSession) -> int:
    found = await session.scalar(select(UsageRollupState.watermark).where(UsageRollupState.name == STATE))
    return int(found or 0)


def _range(dialect: str, low: int, high: int) -> ColumnElement[bool]:
    """The calls above watermark ``low`` and at or below ``high``."""
    return and_(not_rolled_condition(dialect, low, bound=True), rolled_condition(dialect, high, bound=True))


# ---- rolling ----


def _insert(dialect: str, model: Any = UsageRollup) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def _upsert(
    session: AsyncSession,
    dialect: str,
    account_id: uuid.UUID,
    dim: RolledDim,
    level: int,
    calls: Any,
    day: Any,
) -> None:
    """Add the sums of ``calls`` (a condition on usage_requests) to ``dim``'s blocks of ``level``."""
    inner = (
        select(
            day.label("day"),
            key_of(dim.first).label("key"),
            key_of(dim.second).label("key2"),
            *[value.label(name) for name, value in per_call().items()],
        )
        .where(T.account_id == account_id, calls)
        .subquery()
    )
    block = (inner.c.day // literal_column(str(4**level))).label("block")
    source = (
        select(
            literal(account_id).label("account_id"),
            literal(dim.name, String).label("dim"),
            literal(level).label("level"),
            block,
            inner.c.key,
            inner.c.key2,
            *[total(inner.c[name]).label(name) for name in SUM_COLUMNS],
            literal(0).label("people"),
        )
        .where(true())  # SQLite: an INSERT … SELECT … ON CONFLICT needs the SELECT's WHERE
        .group_by(text("block"), inner.c.key, inner.c.key2)
    )
    stmt = _insert(dialect).from_select(ROW_COLUMNS, source)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=KEY_COLUMNS,
        set_={name: R[name] + excluded[name] for name in SUM_COLUMNS},
    )
    await session.execute(stmt)


async def _count_people(session: AsyncSession, account_id: uuid.UUID, days: Sequence[int]) -> None:
    """The distinct people of each of ``days`` on its day rows: the whole-day row's from the day's
    person rows, the day rows of a dimension in PEOPLE_COUNTED from its ``F|user`` rows."""
    u = UsageRollup.__table__.alias("u")
    counted = [(WHOLE.name, and_(u.c.dim == "user", u.c.key != ""))] + [
        (dim.value, and_(u.c.dim == f"{dim.value}|user", u.c.key == R.key, u.c.key2 != ""))
        for dim in PEOPLE_COUNTED
    ]
    for name, persons in counted:
        people = (
            select(func.count())
            .select_from(u)
            .where(u.c.account_id == account_id, u.c.level == 0, u.c.block == R.block, persons)
            .correlate(UsageRollup.__table__)
            .scalar_subquery()
        )
        for n in range(0, len(days), 500):
            await session.execute(
                update(UsageRollup)
                .where(
                    R.account_id == account_id, R.dim == name, R.level == 0, R.block.in_(days[n : n + 500])
                )
                .values(people=people)
            )


async def _count_people_in_calls(
    session: AsyncSession, account_id: uuid.UUID, days: Sequence[int], zone: ZoneInfo, rolled: Any
) -> None:
    """The distinct people of each of ``days`` on its whole-day row, from the day's rolled calls (an
    account without person rows: few calls a day; one index range each)."""
    for day in days:
        people = (
            select(func.count(func.distinct(T.user_id)))
            .where(
                T.account_id == account_id,
                T.created_at >= bucket_start(day, 86400, zone),
                T.created_at < bucket_start(day + 1, 86400, zone),
                rolled,
            )
            .scalar_subquery()
        )
        await session.execute(
            update(UsageRollup)
            .where(R.account_id == account_id, R.dim == WHOLE.name, R.level == 0, R.block == day)
            .values(people=people)
        )


def _day_range(first: int, last: int) -> Any:
    """The days first..last as a one-column table ``d`` (a recursive CTE: both databases have it)."""
    days = select(cast(literal(first), Integer).label("d")).cte("days", recursive=True)
    return days.union_all(select((days.c.d + 1).label("d")).where(days.c.d < cast(literal(last), Integer)))


def _keys_table(dialect: str, keys: Sequence[str]) -> Any:
    """``keys`` as a one-column table ``key`` (PostgreSQL: unnest of an array; SQLite: json_each)."""
    if dialect == "postgresql":
        array = bindparam("keys", list(keys), type_=postgresql.ARRAY(String))
        return select(func.unnest(array).label("key")).subquery("touched")
    listed = bindparam("keys", json.dumps(list(keys)), type_=String)
    each = func.json_each(listed).table_valued("value", name="touched")
    return select(each.c.value.label("key")).subquery("touched")


async def _recompute(
    session: AsyncSession,
    dialect: str,
    account_id: uuid.UUID,
    dim: RolledDim,
    keys: Sequence[str],
    start: int,
    end: int,
    before: int | None,
) -> None:
    """The running rows of ``keys`` on the checkpoint days of start..end and on ``end`` (the head),
    from their day rows over start..end and their running row of ``before`` (start - 1, a kept day;
    None: no row before)."""
    touched = _keys_table(dialect, keys)
    days = _day_range(start, end)
    # The day rows and the running rows of the day before as primary-key lookups per (value, day)
    # (joined to derived tables, SQLite scanned them again for every pair).
    daily, base = UsageRollup.__table__.alias("daily"), UsageRollup.__table__.alias("base")

    def row_of(t: Any, dim_name: str, day: Any) -> ColumnElement[bool]:
        return and_(
            t.c.account_id == account_id, t.c.dim == dim_name, t.c.level == 0, t.c.block == day,
            t.c.key == touched.c.key, t.c.key2 == "",
        )  # fmt: skip

    window = {"partition_by": touched.c.key, "order_by": days.c.d, "rows": (None, 0)}

    def running(name: str) -> ColumnElement[Any]:
        summed = func.sum(func.coalesce(daily.c[name], 0)).over(**window)
        return summed if before is None else func.coalesce(base.c[name], 0) + summed

    sums_of = [running(name).label(name) for name in SUM_COLUMNS]
    grid = (
        select(days.c.d.label("block"), touched.c.key.label("key"), *sums_of)
        .select_from(touched)
        .join(days, true())
        .join(daily, row_of(daily, dim.name, days.c.d), isouter=True)
    )
    if before is not None:
        grid = grid.join(base, row_of(base, dim.running, before), isouter=True)
    sums = grid.subquery("grid")
    fresh = select(
        literal(account_id).label("account_id"),
        literal(dim.running, String).label("dim"),
        literal(0).label("level"),
        sums.c.block,
        sums.c.key,
        literal("", String).label("key2"),
        *[sums.c[name] for name in SUM_COLUMNS],
        literal(0).label("people"),
    ).where(
        sums.c.requests > 0,  # a value has no row before its first call
        # Rows on the checkpoint days and on the newest day (the head) only.
        (sums.c.block % literal_column(str(CHECKPOINT)) == 0) | (sums.c.block == literal(end)),
    )
    stmt = _insert(dialect).from_select(ROW_COLUMNS, fresh)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=KEY_COLUMNS, set_={name: stmt.excluded[name] for name in SUM_COLUMNS}
        )
    )


async def _accumulate(
    session: AsyncSession,
    dialect: str,
    account_id: uuid.UUID,
    dim: RolledDim,
    calls: ColumnElement[bool],
    first: int,
    last: int,
) -> None:
    """Keep ``dim``'s running sums after its day rows took ``calls`` (local days first..last).

    A running row (dim ``running``, level 0, block = day D) holds a value's sums over every day up to
    D. Rows are kept on the checkpoint days (every CHECKPOINT-th day) up to the newest day M any roll
    touched, and on M itself (the head): every value with a call up to such a day has a row of it.
    A value's sums up to any day D are then its row of M (D >= M), or of the checkpoint before D plus
    its day rows after it, or of a later kept day less the day rows between (rollup_running.running_reads).
    Here the values of ``calls`` are recomputed over the kept days from ``first`` on (from their row
    of the kept day before it); when M moves on, every other value's row of the old M is carried to
    the new checkpoints and the new M, and the old M's rows go unless it is a checkpoint.
    """
    mine = and_(R.account_id == account_id, R.level == 0)
    found = await session.scalar(select(func.max(R.block)).where(mine, R.dim == dim.running))
    head = int(found) if found is not None else None
    newest = last if head is None else max(head, last)
    # The values first, as a list: the planner cannot tell how many calls lie above the watermark
    # (it guesses one), and a subquery of them re-read inside a nested loop took minutes.
    values = select(key_of(dim.first).label("key")).where(T.account_id == account_id, calls)
    touched = sorted(set(await session.scalars(values.group_by(text("key")))))
    if head is None:  # the first roll: every day row is this roll's
        earliest = await session.scalar(select(func.min(R.block)).where(mine, R.dim == dim.name))
        before, start = None, int(earliest)
    else:  # the kept day before ``first``: a checkpoint, or the head when first is after it
        before = min(checkpoint(first - 1), head)
        start = before + 1
    for n in range(0, len(touched), KEYS_PER_STATEMENT):
        chunk = touched[n : n + KEYS_PER_STATEMENT]
        await _recompute(session, dialect, account_id, dim, chunk, start, newest, before)
    if head is not None and newest > head:
        following = checkpoint(head) + CHECKPOINT
        new_days = [*range(following, newest + 1, CHECKPOINT)]
        if newest % CHECKPOINT:
            new_days.append(newest)
        for day in new_days:
            columns = [R.account_id, R.dim, R.level, literal(day).label("block"), R.key, R.key2]
            carried = select(*columns, *[R[n] for n in SUM_COLUMNS], R.people).where(
                mine, R.dim == dim.running, R.block == head
            )
            carry = _insert(dialect).from_select(ROW_COLUMNS, carried)
            await session.execute(carry.on_conflict_do_nothing(index_elements=KEY_COLUMNS))
        if head % CHECKPOINT:
            await session.execute(delete(UsageRollup).where(mine, R.dim == dim.running, R.block == head))


@dataclass(frozen=True)
class _Calls:
    account_id: uuid.UUID
    first: datetime
    last: datetime
    count: int


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _calls_by_account(session: AsyncSession, condition: ColumnElement[bool]) -> list[_Calls]:
    rows = await session.execute(
        select(T.account_id, func.min(T.created_at), func.max(T.created_at), func.count())
        .where(condition)
        .group_by(T.account_id)
    )
    return [_Calls(a, _aware(first), _aware(last), int(n)) for a, first, last, n in rows]


async def _roll_account(
    session: AsyncSession,
    dialect: str,
    calls: _Calls,
    zone: ZoneInfo,
    condition: ColumnElement[bool],
    people: bool,
    rolled: ColumnElement[bool],
) -> None:
    """Add ``calls`` to the account's rollups; ``people``: to the person dimensions too (``rolled``:
    every call the rollups hold after this roll, to count the people of a day without them)."""
    stretches = offsets(zone, calls.first, calls.last + timedelta(seconds=1))
    day = local_bucket(dialect, stretches, 86400)
    dims = [dim for dim in DIMS.values() if dim.kept(people)]
    for dim in dims:
        for level in range(dim.lowest, dim.levels):
            await _upsert(session, dialect, calls.account_id, dim, level, condition, day)
    found = await session.scalars(
        select(day.label("day")).where(T.account_id == calls.account_id, condition).group_by(text("day"))
    )
    days = sorted(int(d) for d in found)
    if not people:
        await _count_people_in_calls(session, calls.account_id, days, zone, rolled)
        return
    await _count_people(session, calls.account_id, days)
    for dim in dims:
        if dim.cumulative and days:
            await _accumulate(session, dialect, calls.account_id, dim, condition, days[0], days[-1])


@dataclass(frozen=True)
class _Kept:
    """An account's zone now and what its rollups hold (built: their zone, None if none yet)."""

    zone: str
    built: str | None
    people: bool
    calls: int


async def _kept(session: AsyncSession, accounts: Sequence[uuid.UUID]) -> dict[uuid.UUID, _Kept]:
    """These accounts' rollups, and every account's whose rollups exist (to see a zone change)."""
    UA = UsageRollupAccount
    rows = await session.execute(
        select(Account.id, Account.timezone, UA.zone, UA.people, UA.calls)
        .join(UA, UA.account_id == Account.id, isouter=True)
        .where(Account.id.in_(accounts) | UA.zone.is_not(None))
    )
    return {
        account_id: _Kept(current or "UTC", built, bool(people), int(calls or 0))
        for account_id, current, built, people, calls in rows
    }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


async def roll(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    people_from: int = 0,
    rebuild_calls: int = REBUILD_CALLS,
) -> int:
    """Add the calls recorded since the watermark to the rollups and commit; returns how many calls
    were added (rebuilt accounts included). An account's rollups keep the person dimensions once they
    hold ``people_from`` calls (0: always): the run that crosses it rebuilds them, with people. The
    accounts whose zone changed are rebuilt until ``rebuild_calls`` calls were (at least one account
    a run). Serialised: concurrent runs wait for each other."""
    dialect = dialect_name(session)
    insert_state = _insert(dialect, UsageRollupState).values(
        name=STATE, watermark=0, updated_at=now or datetime.now(UTC)
    )
    await session.execute(insert_state.on_conflict_do_nothing(index_elements=["name"]))
    low = int(
        await session.scalar(
            select(UsageRollupState.watermark).where(UsageRollupState.name == STATE).with_for_update()
        )
        or 0
    )
    if dialect == "postgresql":
        # Every transaction older than this snapshot's xmin has ended: none can commit a call below it.
        high = int(
            await session.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")) or 0
        )
    else:
        newest: Any = select(func.max(literal_column("rowid"))).select_from(UsageRecord.__table__)
        last = int(await session.scalar(newest) or 0)
        high = min(last, low + SQLITE_CHUNK)
    condition = _range(dialect, low, high) if high > low else None
    fresh = await _calls_by_account(session, condition) if condition is not None else []
    kept = await _kept(session, [c.account_id for c in fresh])
    # Rebuilt from all their calls: a new zone, or crossing ``people_from`` (value: keep people).
    rebuild = {a: k.people for a, k in kept.items() if k.built is not None and k.built != k.zone}
    everything = rolled_condition(dialect, high, bound=True)  # the calls the rollups hold after this run
    rolled: dict[uuid.UUID, tuple[bool, int]] = {}  # account -> (keeps people, calls added)
    added = 0
    for calls in fresh:
        k = kept[calls.account_id]
        if calls.account_id in rebuild:
            continue  # rebuilt below, with these calls
        people = k.people or k.calls + calls.count >= people_from
        if k.built is not None and people and not k.people:
            rebuild[calls.account_id] = True
            continue
        assert condition is not None  # (there are fresh calls)
        await _roll_account(session, dialect, calls, _zone(k.zone), condition, people, everything)
        rolled[calls.account_id] = (people, calls.count)
        added += calls.count
    rebuilt = 0
    for account_id in sorted(rebuild):
        crossing = kept[account_id].built == kept[account_id].zone  # (its calls above are not rolled)
        if rebuilt >= rebuild_calls and not crossing:
            continue  # a later run's: its rollups stay in their old zone, so its views read its calls
        count = await _rebuild(
            session, dialect, account_id, kept[account_id].zone, everything,
            people=rebuild[account_id], people_from=people_from,
        )  # fmt: skip
        added += count
        rebuilt += count
    if rolled:
        await _remember(session, dialect, {a: (kept[a].zone, *v) for a, v in rolled.items()})
    if high > low:
        await session.execute(
            update(UsageRollupState)
            .where(UsageRollupState.name == STATE)
            .values(watermark=high, updated_at=now or datetime.now(UTC))
        )
    await session.commit()
    return added


async def _remember(
    session: AsyncSession, dialect: str, rolled: dict[uuid.UUID, tuple[str, bool, int]]
) -> None:
    """Record what the accounts' rollups now hold: a new account's zone and mode, and every
    account's calls (added to what they held)."""
    UA = UsageRollupAccount
    insert = _insert(dialect, UA).values(
        [{"account_id": a, "zone": z, "people": p, "calls": n} for a, (z, p, n) in rolled.items()]
    )
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["account_id"], set_={"calls": UA.calls + insert.excluded.calls}
        )
    )


async def _rebuild(
    session: AsyncSession,
    dialect: str,
    account_id: uuid.UUID,
    zone: str,
    condition: ColumnElement[bool],
    *,
    people: bool,
    people_from: int,
) -> int:
    """Every rolled call of an account again, in its zone, with people if ``people`` or once it has
    ``people_from`` calls; returns how many."""
    await session.execute(delete(UsageRollup).where(R.account_id == account_id))
    found = await _calls_by_account(session, and_(T.account_id == account_id, condition))
    count = sum(calls.count for calls in found)
    people = people or count >= people_from
    await session.execute(
        update(UsageRollupAccount)
        .where(UsageRollupAccount.account_id == account_id)
        .values(zone=zone, people=people, calls=count)
    )
    for calls in found:
        await _roll_account(
            session,
            dialect,
            calls,
            _zone(zone),
            and_(T.account_id == account_id, condition),
            people,
            condition,
        )
    return count


async def pending(session: AsyncSession) -> bool:
    """Whether calls above the watermark exist (committed ones, as this statement sees them)."""
    dialect, mark = dialect_name(session), await watermark(session)
    above = select(UsageRecord.id).where(not_rolled_condition(dialect, mark, bound=True)).limit(1)
    return (await session.execute(above)).first() is not None


async def roll_all(session: AsyncSession, *, patience: float = 30.0, people_from: int = 0) -> int:
    """Roll until no call is left above the watermark (SQLite rolls at most SQLITE_CHUNK calls per
    transaction; on PostgreSQL a transaction still open anywhere in the cluster holds the snapshot's
    xmin back, so this waits for it, up to ``patience`` seconds)."""
    total, deadline = 0, time.monotonic() + patience
    while True:
        added = await roll(session, people_from=people_from)
        total += added
        if added:
            continue
        if not await pending(session) or time.monotonic() > deadline:
            await session.commit()
            return total
        await session.commit()
        await asyncio.sleep(0.05)
