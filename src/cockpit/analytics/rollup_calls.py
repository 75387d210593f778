"""The calls of an account whose rollups keep no person rows, read as the rollups' statements read
rows (docs/analytics-rollups.md, "Small accounts"), and the rollups' keys turned back into values."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics.columns import COLUMNS, T, per_call
from cockpit.analytics.filters import Dimension
from cockpit.analytics.rollup_models import SUM_COLUMNS

# The dimensions whose values are ids: their texts are distinct, and never '' (which stands for none).
_IDS = frozenset({Dimension.user, Dimension.token, Dimension.group, Dimension.project, Dimension.provider})


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
        *padded({name: func.coalesce(inner.c[name], 0) for name in sums}),
        *extras,
    ).subquery("calls")


def padded(values: Mapping[str, Any]) -> list[Any]:
    """Every sum's column (``SUM_COLUMNS``, in order): ``values`` by name, 0 for a sum not given. A
    view that needs a few sums reads only these (a pivot of cost: the cost and the requests; over
    the 100,000 calls of a small account's period, 2 of the 11 sums made its ranking ~35% faster),
    and every statement still has the same columns."""
    zero = literal(0, BigInteger)
    return [values.get(name, zero).label(name) for name in SUM_COLUMNS]


def once_per_key(dialect: str, dims: tuple[Dimension | None, Dimension | None]) -> bool:
    """Whether a source of calls has one row per key already (then it is not grouped again: regrouping
    the ~5,000 people of a 100,000-call period took ~20 ms): on PostgreSQL the calls are grouped by
    their raw values (``calls_grouped``), whose texts are the keys; ids' texts are distinct and never
    '', so no two groups share a key (a model or an agent could be '' as well as none)."""
    return dialect == "postgresql" and all(d is None or d in _IDS for d in dims)


def among(dim: Dimension | None, values: Sequence[str]) -> ColumnElement[bool]:
    """The calls whose ``dim`` is one of ``values`` (stored text, '' for none), on the column itself:
    an index such as (account, user, created_at) then finds a page of people's calls."""
    assert dim is not None  # (keys are a dimension's values)
    column = COLUMNS[dim]
    found = column.in_([to_key(dim, value) for value in values if value != ""])
    return or_(found, column.is_(None)) if "" in values else found


async def people_in_calls(
    session: AsyncSession, dialect: str, account_id: uuid.UUID, start: datetime, end: datetime
) -> int:
    """The distinct people of an account's calls in [start, end) (an account whose rollups keep no
    person rows, so of at most COCKPIT_ROLLUP_PEOPLE_FROM calls): one grouping of the calls by person,
    without their sums."""
    if dialect != "postgresql":
        # Only the (account, person, time) index, which holds all three columns, in person order: no
        # sort of the period's people (90 days of 100,000 calls: 8 against 80 ms through the
        # (account, time) index, which SQLite picks by itself). The index is read for the account's
        # every call, which are few (see the docstring). SQLAlchemy has no INDEXED BY for SQLite.
        counted = text(
            "SELECT count(DISTINCT user_id) FROM usage_requests "
            "INDEXED BY ix_usage_requests_account_user_created "  # usage.models' (account, user, time)
            "WHERE account_id = :account AND created_at >= :start AND created_at < :end"
        ).bindparams(
            bindparam("account", account_id, type_=T.account_id.type),
            bindparam("start", start, type_=T.created_at.type),
            bindparam("end", end, type_=T.created_at.type),
        )
        return int(await session.scalar(counted) or 0)
    period = and_(T.account_id == account_id, T.created_at >= start, T.created_at < end)
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
