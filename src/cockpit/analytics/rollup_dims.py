"""The dimensions the rollups keep (docs/analytics-rollups.md): one dimension, or a pair "F|D" (the
values of D under a filter on F), with their block levels; which are kept for every account and which
only for an account whose rollups keep people (``RolledDim.kept``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, literal

from cockpit.analytics.columns import COLUMNS
from cockpit.analytics.filters import Dimension

LEVELS = 4  # blocks of 1, 4, 16 and 64 local days


@dataclass(frozen=True)
class RolledDim:
    """A dimension (or a pair) kept in the rollups, and how many block levels it has."""

    name: str
    first: Dimension | None = None
    second: Dimension | None = None
    levels: int = 1
    # Also kept as running sums per value and local day (dim ``running``): a period's sums of every
    # value are the difference of two days' rows (see ``_accumulate``).
    cumulative: bool = False
    lowest: int = 0  # the lowest level kept (its blocks only: no day rows below it)
    small: bool = False  # kept only while the account's rollups keep no people (``kept``)

    @property
    def running(self) -> str:
        return f"{self.name}+"

    @property
    def always(self) -> bool:
        """Kept for every account: one dimension of a few hundred values a day, not people. The
        others (people, tokens, pairs) only for an account whose rollups keep people (``roll``'s
        ``people_from``): they have as many rows as a small account has calls."""
        return self.second is None and self.first not in (Dimension.user, Dimension.token)

    def kept(self, people: bool) -> bool:
        """Whether an account's rollups keep this dimension (``people``: they keep the person ones)."""
        return not people if self.small else people or self.always


WHOLE = RolledDim("*")
# A small account's people in blocks of 16 days (level 2) only: a period's person views read its
# whole blocks and the calls of the days around them (docs/analytics-rollups.md, "Small accounts").
PEOPLE_BLOCKS = RolledDim("user/16", Dimension.user, levels=3, lowest=2, small=True)
_DAYS = (Dimension.model, Dimension.group, Dimension.project, Dimension.agent, Dimension.provider,
         Dimension.operation, Dimension.status)  # fmt: skip
DIMS: dict[str, RolledDim] = {
    d.name: d
    for d in (
        WHOLE,
        *(RolledDim(dim.value, dim) for dim in _DAYS),
        # Values that are people (or their tokens) number in the thousands every day: a period of
        # any length reads two days of their running sums rather than every day.
        RolledDim("user", Dimension.user, cumulative=True),
        RolledDim("token", Dimension.token, cumulative=True),
        # Pairs "F|D": D's values under a filter on F (the first key, so a filter reads one range of
        # the primary key), the pivot users x models/agents and the assistants' models.
        RolledDim("model|user", Dimension.model, Dimension.user, levels=LEVELS),
        RolledDim("agent|user", Dimension.agent, Dimension.user, levels=LEVELS),
        RolledDim("group|user", Dimension.group, Dimension.user, levels=LEVELS),
        RolledDim("model|agent", Dimension.model, Dimension.agent, levels=LEVELS),
        # The pivot of people's activity: the cells of one page of people are ranges of these.
        RolledDim("user|model", Dimension.user, Dimension.model, levels=LEVELS),
        RolledDim("user|agent", Dimension.user, Dimension.agent, levels=LEVELS),
        RolledDim("model|group", Dimension.model, Dimension.group),
        RolledDim("group|model", Dimension.group, Dimension.model),
        RolledDim("group|agent", Dimension.group, Dimension.agent),
        PEOPLE_BLOCKS,
    )
}


# Dimensions whose day rows also count their distinct people (from their ``F|user`` day rows), as
# the whole-day rows do: a daily timeline under such a filter reads them instead of the person rows.
PEOPLE_COUNTED = tuple(
    d.first for d in DIMS.values() if d.first and d.second is None and f"{d.name}|user" in DIMS
)


def rolled(first: Dimension | None, second: Dimension | None = None) -> RolledDim | None:
    """The rollup of a dimension (or of the pair first|second), if there is one."""
    if first is None:
        return WHOLE
    name = first.value if second is None else f"{first.value}|{second.value}"
    return DIMS.get(name)


def key_of(dim: Dimension | None) -> ColumnElement[Any]:
    """A call's value of a dimension as the rollups store it: text, '' for none."""
    if dim is None:
        return literal("", String)
    return func.coalesce(cast(COLUMNS[dim], String), literal("", String))
