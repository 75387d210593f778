"""Small SQL helpers shared by repositories."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

LIKE_ESCAPE = "\\"


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with % and _ taken literally (use LIKE_ESCAPE)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def names_in_account(
    session: AsyncSession,
    table: Any,
    name: QueryableAttribute[str],
    account_id: uuid.UUID,
    ids: Collection[uuid.UUID],
) -> dict[uuid.UUID, str]:
    """``name`` of each row of ``table`` (a model with ``id`` and ``account_id``) among ``ids`` that
    belongs to the account: what each domain's ``names_of`` returns (others' and deleted ids: left out)."""
    if not ids:
        return {}
    rows = await session.execute(
        select(table.id, name).where(table.account_id == account_id, table.id.in_(list(ids)))
    )
    return {row_id: value for row_id, value in rows.all()}
