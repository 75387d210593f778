"""Page-number pagination shared by the API and the console."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, TypeVarTuple

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
U = TypeVar("U")
Ts = TypeVarTuple("Ts")

MAX_PER_PAGE = 200


@dataclass(frozen=True)
class PageParams:
    page: int = 1
    per_page: int = 50

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 50,
) -> PageParams:
    return PageParams(page=page, per_page=per_page)


def catalog_page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = MAX_PER_PAGE,
) -> PageParams:
    """Paging of lists that are usually short (groups, projects, providers, models, tokens): the
    first page holds up to MAX_PER_PAGE items, and ``meta`` says when there are more."""
    return PageParams(page=page, per_page=per_page)


@dataclass
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    page: int
    per_page: int
    more: bool = False  # the total was counted only up to a cap: there are more than ``total``

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages or (self.more and len(self.items) == self.per_page)

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def first_index(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.page * self.per_page)

    def with_items(self, items: Sequence[U]) -> Page[U]:
        """The same page (position and totals) with other items, e.g. each item with a figure."""
        return Page(items=items, total=self.total, page=self.page, per_page=self.per_page, more=self.more)


async def paginate(session: AsyncSession, stmt: Select[T], params: PageParams) -> Page[T]:
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = await session.scalars(stmt.limit(params.per_page).offset(params.offset))
    return Page(items=list(rows), total=total or 0, page=params.page, per_page=params.per_page)


async def paginate_rows(session: AsyncSession, stmt: Select[*Ts], params: PageParams) -> Page[Any]:
    """``paginate`` for statements that select several columns: the items are rows (tuples)."""
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = await session.execute(stmt.limit(params.per_page).offset(params.offset))
    return Page(items=list(rows.all()), total=total or 0, page=params.page, per_page=params.per_page)


class PageMeta(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int

    @classmethod
    def of(cls, page: Page[Any]) -> PageMeta:
        return cls(page=page.page, per_page=page.per_page, total=page.total, pages=page.pages)
