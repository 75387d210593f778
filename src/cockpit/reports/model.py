"""What a report is made of, whatever it is written as (PDF, Excel, CSV): a title, the account and
period it covers, the filters applied, indicators, tables and charts.

Every figure is exact (an int or a Decimal, never a float) and carries its kind, so that each writer
formats it for people (thousands separators, credits to 2 decimals, USD to the cent) or stores it as a
typed number (Excel). Text that comes from people (names, model names) is escaped by the writers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from cockpit.kit.money import credits_text, exact, number_text, usd_text


class Kind(StrEnum):
    text = "text"
    number = "number"  # an int: requests, tokens
    usd = "usd"
    credits = "credits"
    percent = "percent"  # a fraction: Decimal("0.0523") reads "5.23 %"
    ms = "ms"  # a duration in milliseconds
    moment = "moment"  # a datetime, written in the report's time zone
    day = "day"  # a date


Value = str | int | Decimal | datetime | date | None

_PERCENT = Decimal("0.01")


def format_value(value: Value, kind: Kind) -> str:
    """A value as people read it (the PDF and the CSV's labels); empty for None."""
    if value is None:
        return ""
    if kind is Kind.text:
        return str(value)
    if kind is Kind.moment and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if kind is Kind.day and isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str | datetime | date):
        return str(value)
    if kind is Kind.usd:
        return usd_text(value)
    if kind is Kind.credits:
        return credits_text(value)
    if kind is Kind.percent:
        return f"{(exact(value) * 100).quantize(_PERCENT):,.2f} %"
    if kind is Kind.ms:
        return f"{number_text(exact(value).quantize(Decimal(1)))} ms"
    return number_text(value)


@dataclass(frozen=True)
class Column:
    label: str
    kind: Kind = Kind.text


@dataclass(frozen=True)
class Table:
    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Value]]
    totals: Sequence[Value] | None = None  # a last row, in bold, under the rows

    def __post_init__(self) -> None:
        for row in (*self.rows, *([self.totals] if self.totals is not None else [])):
            if len(row) != len(self.columns):
                raise ValueError(f"{self.title}: a row has {len(row)} values for {len(self.columns)} columns")


class ChartKind(StrEnum):
    line = "line"
    bars = "bars"
    stacked = "stacked"  # stacked bars


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int | Decimal]


@dataclass(frozen=True)
class Chart:
    title: str
    kind: ChartKind
    categories: Sequence[str]  # the x axis: hours, days, or names
    series: Sequence[Series]
    unit: Kind = Kind.number

    def __post_init__(self) -> None:
        for series in self.series:
            if len(series.values) != len(self.categories):
                raise ValueError(f"{self.title}: series {series.name!r} does not match the categories")


@dataclass(frozen=True)
class Indicator:
    label: str
    value: int | Decimal | None
    kind: Kind = Kind.number
    previous: int | Decimal | None = None  # the same figure over the previous period

    @property
    def change(self) -> Decimal | None:
        """The relative change against the previous period (None when there is nothing to compare)."""
        if self.value is None or self.previous is None or self.previous == 0:
            return None
        return (exact(self.value) - exact(self.previous)) / abs(exact(self.previous))


Section = Table | Chart


@dataclass(frozen=True)
class Report:
    title: str
    account: str
    start: datetime
    end: datetime
    zone: str  # the time zone the period and the moments are written in
    generated_at: datetime
    filters: Sequence[tuple[str, str]] = ()  # (what, value) as people read them
    indicators: Sequence[Indicator] = ()
    sections: Sequence[Section] = field(default_factory=list)

    @property
    def period(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} ({self.zone})"

    def tables(self) -> list[Table]:
        return [section for section in self.sections if isinstance(section, Table)]


def formula_safe(text: str) -> str:
    """Text for a spreadsheet cell: never the start of a formula (=, +, -, @, tab, CR)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def slug(title: str, taken: set[str], *, limit: int = 31) -> str:
    """A short unique name for a sheet or a file: letters, digits, spaces, dashes."""
    base = re.sub(r"[^\w\- ]+", "", title).strip()[:limit] or "Sheet"
    name, n = base, 2
    while name.lower() in taken:
        suffix = f" {n}"
        name, n = base[: limit - len(suffix)] + suffix, n + 1
    taken.add(name.lower())
    return name
