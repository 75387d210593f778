"""Many rows in one statement on PostgreSQL: ``INSERT … SELECT * FROM unnest(…)``.

A batch of rows goes to the server as one array per column, in one statement whose text does not
depend on how many rows there are: it is parsed and planned once per connection, sent in one round
trip, and executed once. A driver ``executemany`` sends one execution per row, and SQLAlchemy's
multi-row ``VALUES`` (its "insertmanyvalues") writes a new statement text for every batch size, which
the server parses and plans again each time. Measured on the usage writer (docs/benchmarks.md).

Values go through each column type's own SQLAlchemy conversion (the array type applies the item
type's), so what is stored is what an ordinary insert stores.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Enum, String, Table, Text, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


@functools.cache
def _statement(table: Table, conflict: tuple[str, ...], returning: str | None) -> TextClause:
    names = [column.name for column in table.columns]
    arrays = []
    params = []
    for index, column in enumerate(table.columns):
        # Texts as text[]: a cast to varchar(n)[] would cut a longer value short without a word; the
        # insert into the column refuses it, as an ordinary insert does. (An Enum keeps its type: its
        # conversion of the values, which are never longer than the column.) One dimension: a value
        # that is itself a list (JSON) is one element, not a dimension more.
        plain_text = isinstance(column.type, String) and not isinstance(column.type, Enum)
        item = Text() if plain_text else column.type
        array = postgresql.ARRAY(item, dimensions=1)
        arrays.append(f"CAST(:c{index} AS {postgresql.ARRAY(item).compile(dialect=_DIALECT)})")
        params.append(bindparam(f"c{index}", type_=array))
    # Names and types come from the table's definition, never from values (those are parameters).
    quoted = ", ".join(_DIALECT.identifier_preparer.quote(name) for name in names)
    target = _DIALECT.identifier_preparer.format_table(table)
    sql = f"INSERT INTO {target} ({quoted}) SELECT * FROM unnest({', '.join(arrays)})"  # noqa: S608
    if conflict:
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {_DIALECT.identifier_preparer.quote(returning)}"
    return text(sql).bindparams(*params)


async def insert_unnest(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    on_conflict_do_nothing: Sequence[str] = (),
    returning: str | None = None,
) -> list[Any]:
    """Insert ``rows`` (every column of ``table``; a column a row leaves out takes ``defaults``' value,
    else NULL) in one statement; returns the ``returning`` column of the rows inserted (rows skipped
    by ``on_conflict_do_nothing`` are not returned). PostgreSQL only."""
    if not rows:
        return []
    defaults = defaults or {}
    values = {
        f"c{index}": [row.get(column.name, defaults.get(column.name)) for row in rows]
        for index, column in enumerate(table.columns)
    }
    result = await session.execute(_statement(table, tuple(on_conflict_do_nothing), returning), values)
    return list(result.scalars().all()) if returning else []
