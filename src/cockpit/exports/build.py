"""What an export contains: the cost tracking view as a report (indicators, timelines, breakdowns,
the top users, the pivot), or the raw calls of the filtered view, streamed to a file in batches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import queries
from cockpit.analytics.figures import Totals
from cockpit.analytics.filters import Dimension, Filters, Scope
from cockpit.analytics.queries import Key
from cockpit.analytics.service import (
    Breakdown,
    Labeler,
    Metric,
    breakdown,
    pivot,
    summary,
    timeline,
    top_users,
)
from cockpit.reports.csvs import header_line, rows_text
from cockpit.reports.model import Chart, ChartKind, Column, Indicator, Kind, Report, Series, Table, Value
from cockpit.reports.xlsx import RowsWorkbook
from cockpit.usage.models import UsageRecord

BREAKDOWNS = (
    Dimension.model,
    Dimension.group,
    Dimension.user,
    Dimension.project,
    Dimension.agent,
    Dimension.integration,
    Dimension.operation,
    Dimension.provider,
)
ROWS_PER_TABLE = 200
BATCH = 5_000
Progress = Callable[[int, int], Awaitable[None]]  # (rows written, rows in all)

FIGURE_COLUMNS = [
    Column("Requests", Kind.number),
    Column("Errors", Kind.number),
    Column("Cost (USD)", Kind.usd),
    Column("Credits", Kind.credits),
    Column("Input tokens", Kind.number),
    Column("Output tokens", Kind.number),
]


def _bucket(start: datetime, granularity: str) -> Value:
    """A timeline bucket's start as the report shows it: a date for a day, a local time for an hour."""
    local = start.replace(tzinfo=None)
    return local.date() if granularity == "day" else local


def _figures(t: Totals) -> list[Value]:
    return [t.requests, t.errors, t.cost_usd, t.credits, t.input_tokens, t.output_tokens]


def _indicators(current: Totals, previous: Totals) -> list[Indicator]:
    def item(label: str, kind: Kind, pick: Callable[[Totals], Any]) -> Indicator:
        return Indicator(label, pick(current), kind, pick(previous))

    return [
        item("Total cost", Kind.usd, lambda t: t.cost_usd),
        item("Credits", Kind.credits, lambda t: t.credits),
        item("Requests", Kind.number, lambda t: t.requests),
        item("Errors", Kind.number, lambda t: t.errors),
        item("Error rate", Kind.percent, lambda t: t.error_rate),
        item("Average cost per request", Kind.usd, lambda t: t.avg_cost_per_request_usd),
        item("Average request time", Kind.ms, lambda t: t.avg_latency_ms),
        item("Time to first token", Kind.ms, lambda t: t.avg_ttft_ms),
        item("Active users", Kind.number, lambda t: t.active_users),
        item("Average cost per user", Kind.usd, lambda t: t.avg_cost_per_user_usd),
        item("Average requests per user", Kind.number, lambda t: t.avg_requests_per_user),
        item("Input tokens", Kind.number, lambda t: t.input_tokens),
        item("Output tokens", Kind.number, lambda t: t.output_tokens),
        item("Cached tokens", Kind.number, lambda t: t.cached_tokens),
        item("Tokens per request", Kind.number, lambda t: t.avg_tokens_per_request),
        item("Tokens per response", Kind.number, lambda t: t.avg_tokens_per_response),
    ]


def _breakdown_table(title: str, found: Breakdown) -> Table:
    columns = [
        Column(found.dimension.value.capitalize()),
        *FIGURE_COLUMNS,
        Column("Share of cost", Kind.percent),
    ]
    rows = [[i.label, *_figures(i.totals), i.share] for i in found.items]
    totals: list[Value] = ["Total", *_figures(found.total), 1 if found.total.requests else 0]
    return Table(title, columns, rows, totals=totals)


async def cost_report(
    session: AsyncSession,
    scope: Scope,
    f: Filters,
    labeler: Labeler,
    *,
    title: str,
    account: str,
    zone: ZoneInfo,
    filters_text: Sequence[tuple[str, str]],
    now: datetime,
) -> Report:
    whole = await summary(session, scope, f)
    line = await timeline(session, scope, f, zone, labeler, stack_by=Dimension.model)
    pattern = "%d %b %H:%M" if line.granularity == "hour" else "%d %b"
    labels = [start.strftime(pattern) for start in line.starts]
    sections: list[Table | Chart] = [
        Chart(
            "Cost by " + line.granularity,
            ChartKind.line,
            labels,
            [Series("Cost (USD)", [p.cost_usd for p in line.points])],
            unit=Kind.usd,
        ),
        Chart(
            f"Cost by {line.granularity} and model",
            ChartKind.stacked,
            labels,
            [Series(s.label, [p.cost_usd for p in s.points]) for s in line.stacks],
            unit=Kind.usd,
        ),
        Chart(
            "Requests by " + line.granularity,
            ChartKind.bars,
            labels,
            [Series("Requests", [p.requests for p in line.points])],
        ),
        Table(
            "Timeline",
            [
                Column(line.granularity.capitalize(), Kind.day if line.granularity == "day" else Kind.moment),
                *FIGURE_COLUMNS,
                Column("Active users", Kind.number),
            ],
            [
                [_bucket(start, line.granularity), *_figures(p), p.active_users]
                for start, p in zip(line.starts, line.points, strict=True)
            ],
        ),
    ]
    for dim in BREAKDOWNS:
        found = await breakdown(session, scope, f, dim, labeler, limit=ROWS_PER_TABLE)
        sections.append(_breakdown_table(f"By {dim.value}", found))
    for metric in (Metric.cost, Metric.requests):
        top = await top_users(session, scope, f, labeler, metric=metric)
        sections.append(_breakdown_table(f"Top users by {metric.value}", top))
    table = await pivot(session, scope, f, labeler, limit=ROWS_PER_TABLE)
    columns = [
        Column("User"),
        *(Column(label, Kind.usd) for _, label, _ in table.columns),
        Column("Total", Kind.usd),
    ]
    rows = [[r.label, *(r.cells.get(k, 0) for k, _, _ in table.columns), r.total] for r in table.rows]
    sections.append(Table("Cost by user and model", columns, rows))
    return Report(
        title=title,
        account=account,
        start=f.start.astimezone(zone),
        end=f.end.astimezone(zone),
        zone=zone.key,
        generated_at=now.astimezone(zone),
        filters=filters_text,
        indicators=_indicators(whole.current, whole.previous),
        sections=sections,
    )


CALL_COLUMNS = [
    Column("Time", Kind.moment),
    Column("User"),
    Column("Group"),
    Column("Project"),
    Column("API token"),
    Column("Agent"),
    Column("Model"),
    Column("Operation"),
    Column("Status"),
    Column("HTTP status", Kind.number),
    Column("Input tokens", Kind.number),
    Column("Output tokens", Kind.number),
    Column("Cached tokens", Kind.number),
    Column("Cost (USD)", Kind.usd),
    Column("Credits", Kind.credits),
    Column("Latency (ms)", Kind.number),
    Column("Time to first token (ms)", Kind.number),
]
NAMED = (
    (Dimension.user, "user_id"),
    (Dimension.group, "group_id"),
    (Dimension.project, "project_id"),
    (Dimension.token, "api_token_id"),
)


async def _names(
    session: AsyncSession,
    scope: Scope,
    rows: Sequence[Any],
    labeler: Labeler,
    cache: dict[tuple[Dimension, Key], str],
) -> None:
    for dim, attribute in NAMED:
        wanted = {getattr(r, attribute) for r in rows} - {None} - {k for d, k in cache if d is dim}
        if wanted:
            found = await labeler(session, scope.account_id, dim, wanted)
            for key in wanted:
                cache[(dim, key)] = found.get(key, f"Deleted {dim.value}")


_C = UsageRecord.__table__.c
_CALL_FIELDS = (
    _C.created_at, _C.user_id, _C.group_id, _C.project_id, _C.api_token_id, _C.agent_id, _C.model,
    _C.operation, _C.status, _C.http_status, _C.input_tokens, _C.output_tokens, _C.cached_tokens,
    _C.cost_usd, _C.credits, _C.latency_ms, _C.ttft_ms,
)  # fmt: skip


async def write_calls(
    session: AsyncSession,
    scope: Scope,
    f: Filters,
    labeler: Labeler,
    *,
    path: Path,
    xlsx: bool,
    zone: ZoneInfo,
    progress: Progress,
) -> int:
    """Every call of the view, oldest first, in batches (flat memory, however many there are)."""
    where = queries.where(scope, f)
    total = await session.scalar(select(func.count()).select_from(UsageRecord).where(*where)) or 0
    cache: dict[tuple[Dimension, Key], str] = {}
    book = RowsWorkbook(path, "Calls", CALL_COLUMNS) if xlsx else None
    out = None if xlsx else path.open("w", encoding="utf-8-sig", newline="")
    written = 0
    try:
        if out is not None:
            out.write(header_line(CALL_COLUMNS))
        # The columns written, not whole entities: the stored inputs and outputs stay in the database.
        stmt = select(*_CALL_FIELDS).where(*where).order_by(UsageRecord.created_at, UsageRecord.id)
        result = await session.stream(stmt.execution_options(yield_per=BATCH))
        async for rows in result.partitions(BATCH):
            await _names(session, scope, rows, labeler, cache)

            def name(dim: Dimension, key: Any) -> str:
                return "" if key is None else cache[(dim, key)]

            lines = [
                [
                    r.created_at.astimezone(zone).replace(tzinfo=None),
                    name(Dimension.user, r.user_id),
                    name(Dimension.group, r.group_id),
                    name(Dimension.project, r.project_id),
                    name(Dimension.token, r.api_token_id),
                    r.agent_id or "Direct API",
                    r.model,
                    r.operation,
                    r.status,
                    r.http_status,
                    r.input_tokens,
                    r.output_tokens,
                    r.cached_tokens,
                    r.cost_usd,
                    r.credits,
                    r.latency_ms,
                    r.ttft_ms,
                ]
                for r in rows
            ]
            if book is not None:
                book.write(lines)
            elif out is not None:
                out.write(rows_text(lines, CALL_COLUMNS))
            written += len(lines)
            await progress(written, total)
    finally:
        if book is not None:
            book.close()
        if out is not None:
            out.close()
    return written
