"""The calls of an account whose rollups keep no person rows, read as the rollups' statements read
rows (docs/analytics-rollups.md, "Small accounts"), and the rollups' keys turned back into values."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    cast,
    distinct,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics.columns import COLUMNS, T, per_call
from cockpit.analytics.filters import Dimension


def calls_grouped(
    dims: tuple[Dimension | None, Dimension | None],
    condition: ColumnElement[bool],
    first: list[Any],
    raw_day: list[Any],
    sums: Sequence[str],
    *,
    people: bool,
) -> Any:
    """A source of calls on PostgreSQL (``rollup_read._union``'s columns): the calls grouped by the raw
    values of the source's dimensions ``dims`` (and day) first, each group's values then turned into
    their stored text.
    Grouping 100,000 calls by ``coalesce(user_id::varchar, '')`` converts and hashes 100,000 strings;
    by ``user_id``, 100,000 ids, and only the ~5,000 people's ids become text (measured: 51-63 against
    26 ms)."""
    raw = [COLUMNS[d].label(f"k{n}") for n, d in enumerate(dims) if d is not None]
    summed = [
        # (bigint: PostgreSQL's sum of bigints is a numeric, slower to sum again)
        cast(func.sum(type_coerce(value, BigInteger)), BigInteger).label(name)
        for name, value in per_call(1).items()
        if name in sums
    ]
    inner = select(*raw_day, *raw, *summed).where(condition, *first).group_by(*raw_day, *raw).subquery()

    def key(n: int) -> Any:
        dim = dims[n]
        if dim is None:
            return literal("", String)
        return func.coalesce(cast(inner.c[f"k{n}"], String), literal("", String))

    extras: list[Any] = (
        [literal(0, BigInteger).label("people"), literal(1, BigInteger).label("raw")] if people else []
    )
    return select(
        *([inner.c.day] if raw_day else []),
        key(0).label("key"),
        key(1).label("key2"),
        # (a group of calls without a first token sums to 0, not NULL)
        *[func.coalesce(inner.c[name], 0).label(name) for name in sums],
        *extras,
    ).subquery("calls")


def among(dim: Dimension | None, values: Sequence[str]) -> ColumnElement[bool]:
    """The calls whose ``dim`` is one of ``values`` (stored text, '' for none), on the column itself:
    an index such as (account, user, created_at) then finds a page of people's calls."""
    assert dim is not None  # (keys are a dimension's values)
    column = COLUMNS[dim]
    found = column.in_([to_key(dim, value) for value in values if value != ""])
    return or_(found, column.is_(None)) if "" in values else found


async def people_in_calls(session: AsyncSession, dialect: str, period: ColumnElement[bool]) -> int:
    """The distinct people of the calls of ``period`` (``Plan.period``: an account whose rollups keep
    no person rows): one grouping of the calls by person, without their sums."""
    if dialect != "postgresql":  # SQLite would group through the (account, user, time) index: slower
        return int(await session.scalar(select(func.count(distinct(T.user_id))).where(period)) or 0)
    per_person = select(T.user_id).where(period, T.user_id.is_not(None)).group_by(T.user_id).subquery()
    return int(await session.scalar(select(func.count()).select_from(per_person)) or 0)


def to_key(dim: Dimension | None, text: str) -> str | uuid.UUID | None:
    """A rollup's key back to the value the views use (None for '', a UUID for ids)."""
    if text == "" or dim is None:
        return None
    if dim in (Dimension.model, Dimension.agent, Dimension.operation, Dimension.status):
        return text
    return _uuid(text)


@lru_cache(maxsize=1 << 16)
def _uuid(text: str) -> uuid.UUID:
    """The same people's ids come back in every view (parsing one: ~5 µs, 25 ms for 5,000 people)."""
    return uuid.UUID(text)
