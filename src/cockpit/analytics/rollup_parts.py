"""How a period splits into the local days read from the rollups and the calls read around them
(docs/analytics-rollups.md, "Reading them"): the parts of ``rollup_read``'s statements."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, literal_column

from cockpit.analytics.columns import T, bucket_start
from cockpit.analytics.filters import Filters
from cockpit.analytics.rollup_dims import PEOPLE_BLOCKS
from cockpit.analytics.rollups import not_rolled_condition, rolled_condition

DAY = 86400


@dataclass(frozen=True)
class Part:
    """Calls of the account that add to (sign 1) or take from (sign -1) the rollups' days."""

    condition: ColumnElement[bool]  # on the account's calls
    sign: int


def day_of(moment: datetime, zone: ZoneInfo) -> int:
    offset = moment.astimezone(zone).utcoffset() or timedelta(0)
    return int((moment.timestamp() + offset.total_seconds()) // DAY)


def midnight(day: int, zone: ZoneInfo) -> datetime:
    return bucket_start(day, DAY, zone)


def calls_column(name: str, dialect: str) -> Any:
    """usage_requests.<name>; on SQLite with a unary + so that the watermark's rowid range is used
    rather than the (account, created_at) index for the calls above the watermark."""
    column = T[name]
    if dialect == "postgresql":
        return column
    return literal_column(f"+usage_requests.{name}", type_=column.type)


def parts(
    dialect: str, account_id: uuid.UUID, f: Filters, zone: ZoneInfo, mark: int
) -> tuple[int, int, list[Part]] | None:
    """S and the parts read from the calls; None when the period holds no whole day worth reading."""
    start, end = f.start, f.end
    first, last = day_of(start, zone), day_of(end - timedelta(microseconds=1), zone)
    head, tail = midnight(first, zone), midnight(last + 1, zone)
    # A partial day comes from the rollups when most of it is in the period (then the calls outside
    # the period are taken away), else from the calls.
    d0 = first if start == head or (start - head) < (midnight(first + 1, zone) - start) else first + 1
    d1 = last + 1 if end == tail or (tail - end) < (end - midnight(last, zone)) else last
    if d0 >= d1:
        return None
    t0, t1 = midnight(d0, zone), midnight(d1, zone)
    mine, created = T.account_id == account_id, T.created_at
    found: list[Part] = []
    if start < t0:
        found.append(Part(and_(mine, created >= start, created < t0), 1))
    if t1 < end:
        found.append(Part(and_(mine, created >= t1, created < end), 1))
    if t0 < start:
        found.append(Part(and_(mine, created >= t0, created < start, rolled_condition(dialect, mark)), -1))
    if end < t1:
        found.append(Part(and_(mine, created >= end, created < t1, rolled_condition(dialect, mark)), -1))
    at = calls_column("created_at", dialect)
    recent = and_(
        not_rolled_condition(dialect, mark), calls_column("account_id", dialect) == account_id,
        at >= max(t0, start), at < min(t1, end),
    )  # fmt: skip
    found.append(Part(recent, 1))
    return d0, d1, found


def people_blocks(
    dialect: str, account_id: uuid.UUID, f: Filters, zone: ZoneInfo, mark: int
) -> tuple[int, int, tuple[Part, ...]] | None:
    """The blocks of PEOPLE_BLOCKS whose days all lie in the period, [low, high), and the parts read
    from the calls: the period's calls before and after them, and those in them recorded since the
    watermark; None when the period holds no such block."""
    size = 4**PEOPLE_BLOCKS.lowest
    first, last = day_of(f.start, zone), day_of(f.end, zone)  # whole days: [first, last)
    first += midnight(first, zone) < f.start
    low, high = -(-first // size), last // size
    if low >= high:
        return None
    t0, t1 = midnight(low * size, zone), midnight(high * size, zone)
    mine, created = T.account_id == account_id, T.created_at
    spans = ((f.start, t0), (t1, f.end))
    around = [Part(and_(mine, created >= a, created < b), 1) for a, b in spans if a < b]
    at = calls_column("created_at", dialect)
    recent = and_(
        not_rolled_condition(dialect, mark), calls_column("account_id", dialect) == account_id,
        at >= t0, at < t1,
    )  # fmt: skip
    return low, high, (*around, Part(recent, 1))
