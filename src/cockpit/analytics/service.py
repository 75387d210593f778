"""Views of the recorded calls for cost tracking and project analytics: a summary against the
previous period, breakdowns, timelines, the top users and the pivot of activity.

Who sees what: account administrators (``usage:read_all``) the whole account; anyone else their own
calls; a project's view (``project_id``) the project's calls, for its members and the account's
administrators (another account's or a foreign project is NotFound).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import queries
from cockpit.analytics.figures import ZERO, Totals, share
from cockpit.analytics.filters import Dimension, Filters, Scope
from cockpit.analytics.queries import Key
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.errors import InvalidInput
from cockpit.projects.service import access_project

NIL = uuid.UUID(int=0)  # matches no call
DIRECT = "Direct API"
MAX_LIMIT = 500
STACKS = 8  # a stacked timeline shows the largest values; the rest is "Other"
PIVOT_COLUMNS = 12
NONE = Totals()

# The names of a dimension's values in the caller's account ({} for the values it does not know).
Labeler = Callable[[AsyncSession, uuid.UUID, Dimension, Collection[Key]], Awaitable[dict[Key, str]]]


class Metric(StrEnum):
    cost = "cost"
    requests = "requests"
    tokens = "tokens"
    errors = "errors"


def measure(totals: Totals, metric: Metric) -> Decimal | int:
    if metric is Metric.cost:
        return totals.cost_usd
    if metric is Metric.requests:
        return totals.requests
    if metric is Metric.errors:
        return totals.errors
    return totals.tokens


async def scope_for(session: AsyncSession, actor: Actor, project_id: uuid.UUID | None = None) -> Scope:
    if project_id is not None:
        project = await access_project(session, actor, project_id)  # NotFound unless a member or admin
        return Scope(actor.account_id, project_id=project.id)
    if actor.can(Permission.usage_read_all):
        return Scope(actor.account_id)
    return Scope(actor.account_id, user_id=actor.user_id or NIL)


# ---- summary ----


@dataclass(frozen=True)
class Summary:
    filters: Filters
    current: Totals
    previous: Totals


async def summary(session: AsyncSession, scope: Scope, filters: Filters) -> Summary:
    return Summary(
        filters,
        await queries.totals(session, scope, filters),
        await queries.totals(session, scope, filters.previous()),
    )


async def agents_in(session: AsyncSession, scope: Scope, filters: Filters, *, limit: int = 200) -> list[str]:
    """The agents of the calls the scope sees in the filters' period, by name (at most ``limit``),
    for a filter's choices: from the rollups where they answer (a DISTINCT over the calls of 30 days
    at 10M calls took a second)."""
    found = await queries.grouped(
        session, scope, Filters(filters.start, filters.end), Dimension.agent, users=False
    )
    return sorted(str(key) for key in found if key)[:limit]


# ---- breakdowns ----


@dataclass(frozen=True)
class Item:
    key: Key
    label: str
    totals: Totals
    share: Decimal  # of the whole's cost (of its requests when nothing cost anything)


@dataclass(frozen=True)
class Breakdown:
    dimension: Dimension
    items: list[Item]  # one page, largest first by the chosen metric
    count: int  # items on every page
    total: Totals


async def _labels(
    session: AsyncSession, scope: Scope, dim: Dimension, keys: Collection[Key], labeler: Labeler
) -> dict[Key, str]:
    named = await labeler(session, scope.account_id, dim, [k for k in keys if k is not None])
    out: dict[Key, str] = {}
    for key in keys:
        if key is None:
            out[key] = DIRECT if dim in (Dimension.agent, Dimension.integration) else f"No {dim.value}"
        else:
            out[key] = named.get(key) or (key if isinstance(key, str) else f"Deleted {dim.value}")
    return out


def _share(part: Totals, whole: Totals) -> Decimal:
    if whole.cost_usd:
        return share(part.cost_usd, whole.cost_usd)
    return share(part.requests, whole.requests)


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput("invalid_input", f"limit must be between 1 and {MAX_LIMIT}.")
    if offset < 0:
        raise InvalidInput("invalid_input", "offset must be 0 or more.")


async def breakdown(
    session: AsyncSession,
    scope: Scope,
    filters: Filters,
    dim: Dimension,
    labeler: Labeler,
    *,
    sort: Metric = Metric.cost,
    limit: int = 50,
    offset: int = 0,
) -> Breakdown:
    _page(limit, offset)
    if dim is Dimension.user:  # thousands of people: sorted and paged by the database where it can
        found = await queries.ranked(
            session, scope, filters, dim, sort.value, then_requests=True, limit=limit, offset=offset
        )
        if found is not None:
            names = await _labels(session, scope, dim, [k for k, _ in found.page], labeler)
            items = [Item(key, names[key], totals, _share(totals, found.whole)) for key, totals in found.page]
            return Breakdown(dim, items, found.count, found.whole)
    # A breakdown's rows do not show distinct people (its total does).
    groups = await queries.grouped(session, scope, filters, dim, users=False)
    # By person, the groups are the period's people: no need to read them again for the total.
    people = sum(1 for key in groups if key is not None) if dim is Dimension.user else None
    whole = await queries.totals(session, scope, filters, people=people)
    ordered = sorted(groups.items(), key=lambda kv: (-measure(kv[1], sort), -kv[1].requests, str(kv[0])))
    page = ordered[offset : offset + limit]
    names = await _labels(session, scope, dim, [k for k, _ in page], labeler)
    items = [Item(key, names[key], totals, _share(totals, whole)) for key, totals in page]
    return Breakdown(dim, items, len(ordered), whole)


async def top_users(
    session: AsyncSession, scope: Scope, filters: Filters, labeler: Labeler, *, metric: Metric = Metric.cost
) -> Breakdown:
    """The ten people who cost the most (or made the most requests); calls without a person are left out."""
    found = await breakdown(session, scope, filters, Dimension.user, labeler, sort=metric, limit=11)
    items = [item for item in found.items if item.key is not None][:10]
    return Breakdown(Dimension.user, items, len(items), found.total)


# ---- timelines ----


@dataclass(frozen=True)
class Stack:
    key: Key
    label: str
    points: list[Totals]


@dataclass(frozen=True)
class Timeline:
    granularity: Literal["hour", "day"]
    starts: list[datetime]  # each bucket's start, in the account's zone
    points: list[Totals]
    stacks: list[Stack] = field(default_factory=list)


# Where a metric's amount is in queries.Sums (cost in pico-USD: the same order as in dollars).
_SUMS_INDEX = {Metric.cost: (3,), Metric.requests: (0,), Metric.errors: (1,), Metric.tokens: (5, 6)}


def _starts(filters: Filters, zone: ZoneInfo, step: int) -> list[datetime]:
    """The local hours or days that [start, end) touches, in order."""
    local = filters.start.astimezone(zone)
    if step == 86400:
        first = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        advance = timedelta(days=1)
    else:
        first = local.replace(minute=0, second=0, microsecond=0, tzinfo=None)
        advance = timedelta(hours=1)
    starts: list[datetime] = []
    wall = first
    while True:
        moment = wall.replace(tzinfo=zone)
        if moment >= filters.end:
            break
        if not starts or starts[-1] != moment:
            starts.append(moment)
        wall += advance
    return starts


async def timeline(
    session: AsyncSession,
    scope: Scope,
    filters: Filters,
    zone: ZoneInfo,
    labeler: Labeler,
    *,
    granularity: Literal["hour", "day"] | None = None,
    stack_by: Dimension | None = None,
    stack_metric: Metric = Metric.cost,
) -> Timeline:
    granularity = granularity or ("hour" if filters.length <= timedelta(days=2) else "day")
    step = 3600 if granularity == "hour" else 86400
    starts = _starts(filters, zone, step)
    if len(starts) > 24 * 31 + 2:
        raise InvalidInput("invalid_input", "Hourly timelines cover at most 31 days: choose days.")
    index = {start.replace(tzinfo=None): n for n, start in enumerate(starts)}
    points = [NONE] * len(starts)
    walls: dict[int, int | None] = {}

    def position(number: int) -> int | None:
        """The bucket's place in the period (by its local wall time)."""
        if number not in walls:
            walls[number] = index.get(queries.local_wall(number, step))
        return walls[number]

    for (number, _), totals in (await queries.buckets(session, scope, filters, zone, step)).items():
        n = position(number)
        if n is not None:  # every bucket of the period is listed
            points[n] = totals
    stacks: list[Stack] = []
    if stack_by is not None:
        per_key: dict[Key, dict[int, queries.Sums]] = {}
        for (number, key), sums in (
            await queries.stack_sums(session, scope, filters, zone, step, stack_by)
        ).items():
            n = position(number)
            if n is not None:
                per_key.setdefault(key, {})[n] = sums
        at = _SUMS_INDEX[stack_metric]
        ranked = sorted(per_key, key=lambda k: -sum(sum(s[i] for i in at) for s in per_key[k].values()))
        kept, rest = ranked[:STACKS], ranked[STACKS:]
        names = await _labels(session, scope, stack_by, kept, labeler)
        for key in kept:
            found = per_key[key]
            points_of = [queries.totals_from(found[n]) if n in found else NONE for n in range(len(starts))]
            stacks.append(Stack(key, names[key], points_of))
        if rest:
            other = []
            for n in range(len(starts)):
                items = [per_key[key][n] for key in rest if n in per_key[key]]
                other.append(
                    queries.totals_from(tuple(map(sum, zip(*items, strict=True)))) if items else NONE
                )
            stacks.append(Stack("__other__", "Other", other))
    return Timeline(granularity, starts, points, stacks)


# ---- pivot ----


@dataclass(frozen=True)
class PivotRow:
    key: Key
    label: str
    total: Decimal | int
    cells: dict[Key, Decimal | int]


@dataclass(frozen=True)
class Pivot:
    rows_by: Dimension
    columns_by: Dimension
    value: Metric
    columns: list[tuple[Key, str, Decimal | int]]  # (key, label, column total), largest first
    rows: list[PivotRow]  # one page, largest first
    count: int
    total: Decimal | int


def _largest_first(amounts: dict[Key, Decimal | int]) -> list[Key]:
    return sorted(amounts, key=lambda k: (-amounts[k], str(k)))


async def pivot(
    session: AsyncSession,
    scope: Scope,
    filters: Filters,
    labeler: Labeler,
    *,
    rows_by: Dimension = Dimension.user,
    columns_by: Dimension = Dimension.model,
    value: Metric = Metric.cost,
    limit: int = 50,
    offset: int = 0,
) -> Pivot:
    _page(limit, offset)
    row_totals: dict[Key, Decimal | int] = {}
    column_totals: dict[Key, Decimal | int] = {}
    ranked = None
    if await queries.breakdowns_rolled(session, scope, filters, rows_by, columns_by):
        # The rows' and the columns' totals from the rollups of their own dimensions (the page of
        # rows sorted by the database), then only the page's cells: a few ranges of the rollups where
        # the pairs are kept (all the cells of a large account are tens of thousands of rows), else
        # the page's people's calls (e.g. under a group filter: their (account, person, time) index
        # ranges, not every call of the period).
        # Only the value's sums (and the requests): a small account's people are ranked over its calls.
        ranked = await queries.ranked(
            session, scope, filters, rows_by, value.value, then_requests=False, limit=limit, offset=offset,
            sums=queries.METRIC_SUMS[value.value],
        )  # fmt: skip
    if ranked is not None:
        for key, totals in ranked.page:
            row_totals[key] = measure(totals, value)
        for key, totals in (await queries.grouped(session, scope, filters, columns_by, users=False)).items():
            column_totals[key] = measure(totals, value)
        page = [key for key, _ in ranked.page]
        needed = queries.METRIC_SUMS[value.value]  # measure() reads no other
        if rows_by is Dimension.user:
            cells = await queries.page_cells(session, scope, filters, columns_by, ranked.page, needed)
        elif page:
            cells = await queries.pairs(
                session, scope, filters, rows_by, columns_by, row_keys=page, sums=needed
            )
        else:
            cells = {}
        count, total = ranked.count, measure(ranked.whole, value)
    else:
        cells = await queries.pairs(session, scope, filters, rows_by, columns_by)
        for (row, column), totals in cells.items():
            amount = measure(totals, value)
            row_totals[row] = row_totals.get(row, 0) + amount
            column_totals[column] = column_totals.get(column, 0) + amount
        ordered = _largest_first(row_totals)
        page = ordered[offset : offset + limit]
        count = len(ordered)
        amounts = row_totals.values()
        total = sum(amounts, ZERO) if value is Metric.cost else sum(int(v) for v in amounts)
    columns = _largest_first(column_totals)
    shown, others = columns[:PIVOT_COLUMNS], columns[PIVOT_COLUMNS:]
    row_names = await _labels(session, scope, rows_by, page, labeler)
    column_names = await _labels(session, scope, columns_by, shown, labeler)
    listed = [(key, column_names[key], column_totals[key]) for key in shown]
    if others:
        listed.append(("__other__", "Other", sum((column_totals[k] for k in others), ZERO)))
    rows = []
    for key in page:
        row_cells: dict[Key, Decimal | int] = {}
        for column in columns:
            amount = measure(cells[(key, column)], value) if (key, column) in cells else 0
            target = column if column in shown else "__other__"
            row_cells[target] = row_cells.get(target, 0) + amount
        rows.append(PivotRow(key, row_names[key], row_totals[key], row_cells))
    return Pivot(rows_by, columns_by, value, listed, rows, count, total)


# ---- assistants ----


@dataclass(frozen=True)
class Assistant:
    key: Key  # the agent; None: calls made without one ("Direct API")
    label: str
    totals: Totals
    models: list[tuple[str, int]]  # (model, tokens), most tokens first


async def assistants(
    session: AsyncSession, scope: Scope, filters: Filters, labeler: Labeler, *, limit: int = 20
) -> list[Assistant]:
    """Token usage by assistant and the models each one uses, most tokens first."""
    _page(limit, 0)
    per_agent: dict[Key, Totals] = {}
    models: dict[Key, list[tuple[str, int]]] = {}
    for (agent, model), totals in (
        await queries.pairs(session, scope, filters, Dimension.agent, Dimension.model)
    ).items():
        per_agent[agent] = per_agent.get(agent, Totals()) + totals
        models.setdefault(agent, []).append((str(model), totals.tokens))
    ordered = sorted(per_agent, key=lambda k: (-per_agent[k].tokens, -per_agent[k].requests, str(k)))
    kept = ordered[:limit]
    names = await _labels(session, scope, Dimension.agent, kept, labeler)
    return [
        Assistant(key, names[key], per_agent[key], sorted(models[key], key=lambda m: (-m[1], m[0])))
        for key in kept
    ]
