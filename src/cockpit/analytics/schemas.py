"""The analytics API's answers. Money and every ratio are exact decimal strings; counts are integers;
instants are ISO 8601 in the account's time zone."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field

from cockpit.analytics.figures import Totals
from cockpit.analytics.queries import Key
from cockpit.analytics.service import Breakdown, Item, Pivot, Summary, Timeline
from cockpit.kit.money import plain
from cockpit.kit.schemas import OutputSchema


def _text(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


def _key(key: Key) -> str | None:
    return None if key is None else str(key)


class Sums(OutputSchema):
    requests: int
    errors: int
    cost_usd: str = Field(description='Exact decimal in USD, e.g. "12.345678901234"')
    credits: str = Field(description="Exact decimal")
    input_tokens: int
    output_tokens: int
    cached_tokens: int

    @classmethod
    def values(cls, t: Totals) -> dict[str, object]:
        return {
            "requests": t.requests, "errors": t.errors, "cost_usd": plain(t.cost_usd),
            "credits": plain(t.credits), "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
            "cached_tokens": t.cached_tokens,
        }  # fmt: skip


class Figures(Sums):
    error_rate: str | None = Field(description='Errors per request as a fraction ("0.0523" is 5.23 %)')
    active_users: int
    avg_cost_per_request_usd: str | None
    avg_latency_ms: str | None
    avg_ttft_ms: str | None = Field(description="Time to first token of streamed calls")
    avg_cost_per_user_usd: str | None
    avg_requests_per_user: str | None
    avg_tokens_per_request: str | None
    avg_tokens_per_response: str | None

    @classmethod
    def values(cls, t: Totals) -> dict[str, object]:
        return {
            **Sums.values(t),
            "error_rate": _text(t.error_rate),
            "active_users": t.active_users,
            "avg_cost_per_request_usd": _text(t.avg_cost_per_request_usd),
            "avg_latency_ms": _text(t.avg_latency_ms),
            "avg_ttft_ms": _text(t.avg_ttft_ms),
            "avg_cost_per_user_usd": _text(t.avg_cost_per_user_usd),
            "avg_requests_per_user": _text(t.avg_requests_per_user),
            "avg_tokens_per_request": _text(t.avg_tokens_per_request),
            "avg_tokens_per_response": _text(t.avg_tokens_per_response),
        }

    @classmethod
    def of(cls, t: Totals) -> Figures:
        return cls.model_validate(cls.values(t))


class SummaryOut(Figures):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    previous_from: datetime
    previous_to: datetime
    previous: Figures

    @classmethod
    def of_summary(cls, s: Summary) -> SummaryOut:
        before = s.filters.previous()
        return cls.model_validate(
            {
                **Figures.values(s.current),
                "from_": s.filters.start, "to": s.filters.end,
                "previous_from": before.start, "previous_to": before.end,
                "previous": Figures.of(s.previous),
            }
        )  # fmt: skip


class BreakdownItem(Sums):
    key: str | None = Field(description="The value's id or name; null for calls without one (direct API)")
    label: str
    share: str = Field(description="Share of the total cost (of the requests when nothing cost anything)")

    @classmethod
    def of(cls, item: Item) -> BreakdownItem:
        return cls.model_validate(
            {
                **Sums.values(item.totals),
                "key": _key(item.key),
                "label": item.label,
                "share": plain(item.share),
            }
        )


class BreakdownOut(OutputSchema):
    by: str
    items: list[BreakdownItem]
    count: int = Field(description="Items on all pages")
    total: Figures

    @classmethod
    def of(cls, b: Breakdown) -> BreakdownOut:
        return cls(by=b.dimension.value, items=[BreakdownItem.of(i) for i in b.items], count=b.count,
                   total=Figures.of(b.total))  # fmt: skip


class Point(Figures):
    start: datetime


class StackOut(OutputSchema):
    key: str | None
    label: str
    points: list[Sums]


class TimelineOut(OutputSchema):
    granularity: str
    zone: str
    points: list[Point]
    stacks: list[StackOut]

    @classmethod
    def of(cls, line: Timeline, zone: str) -> TimelineOut:
        points = [
            Point.model_validate({**Figures.values(t), "start": start})
            for start, t in zip(line.starts, line.points, strict=True)
        ]
        stacks = [
            StackOut(
                key=_key(s.key), label=s.label, points=[Sums.model_validate(Sums.values(t)) for t in s.points]
            )
            for s in line.stacks
        ]
        return cls(granularity=line.granularity, zone=zone, points=points, stacks=stacks)


class PivotColumn(OutputSchema):
    key: str | None
    label: str
    total: str | int


class PivotRowOut(OutputSchema):
    key: str | None
    label: str
    total: str | int
    cells: list[str | int] = Field(description="One value per column, in the columns' order")


class PivotOut(OutputSchema):
    rows_by: str
    columns_by: str
    value: str
    columns: list[PivotColumn]
    rows: list[PivotRowOut]
    count: int = Field(description="Rows on all pages")
    total: str | int

    @classmethod
    def of(cls, p: Pivot) -> PivotOut:
        def out(value: Decimal | int) -> str | int:
            return plain(Decimal(value)) if isinstance(value, Decimal) else int(value)

        columns = [PivotColumn(key=_key(k), label=label, total=out(total)) for k, label, total in p.columns]
        nothing: Decimal | int = Decimal(0) if isinstance(p.total, Decimal) else 0
        rows = [
            PivotRowOut(
                key=_key(r.key),
                label=r.label,
                total=out(r.total),
                cells=[out(r.cells.get(k, nothing)) for k, _, _ in p.columns],
            )
            for r in p.rows
        ]
        return cls(
            rows_by=p.rows_by.value, columns_by=p.columns_by.value, value=p.value.value, columns=columns,
            rows=rows, count=p.count, total=out(p.total),
        )  # fmt: skip
