"""A report as CSV: one file per table (a zip when there are several, with the indicators as
``summary.csv``), exact values (money as plain decimals, moments in ISO 8601), and long lists of rows
streamed line by line. Text is never the start of a spreadsheet formula."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

from cockpit.kit.money import plain
from cockpit.reports.model import Chart, Column, Kind, Report, Table, Value, formula_safe, slug


def exact_value(value: Value, kind: Kind) -> str:
    """A value as a CSV cell: exact and machine-readable."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return formula_safe(str(value))


def _line(values: Iterable[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(list(values))
    return out.getvalue()


def header_line(columns: Sequence[Column]) -> str:
    return _line(formula_safe(c.label) for c in columns)


def row_line(values: Sequence[Value], columns: Sequence[Column]) -> str:
    return _line(exact_value(v, c.kind) for v, c in zip(values, columns, strict=True))


def rows_text(rows: Iterable[Sequence[Value]], columns: Sequence[Column]) -> str:
    """Many rows as CSV lines, written by one writer (a long list goes out in such pieces)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    kinds = [c.kind for c in columns]
    writer.writerows([exact_value(v, k) for v, k in zip(row, kinds, strict=True)] for row in rows)
    return out.getvalue()


def table_csv(table: Table) -> str:
    lines = [header_line(table.columns)]
    lines += [row_line(row, table.columns) for row in table.rows]
    if table.totals is not None:
        lines.append(row_line(table.totals, table.columns))
    return "".join(lines)


def chart_table(chart: Chart) -> Table:
    """A chart's figures as a table: one row per category, one column per series."""
    columns = [Column(""), *(Column(s.name, chart.unit) for s in chart.series)]
    rows = [[category, *(s.values[i] for s in chart.series)] for i, category in enumerate(chart.categories)]
    return Table(chart.title, columns, rows)


def summary_table(report: Report) -> Table:
    columns = [Column("Indicator"), Column("Kind"), Column("This period"), Column("Previous period")]
    rows: list[list[Value]] = [
        [i.label, i.kind.value, exact_value(i.value, i.kind), exact_value(i.previous, i.kind)]
        for i in report.indicators
    ]
    rows += [[f"Filter: {what}", "text", value, ""] for what, value in report.filters]
    rows.insert(0, ["Period", "text", f"{report.start.isoformat()}/{report.end.isoformat()}", ""])
    return Table("Summary", columns, rows)


def report_csv(report: Report) -> tuple[str, bytes]:
    """(file name, content): one CSV when the report has one table, else a zip of them."""
    tables = [summary_table(report)] + [
        chart_table(s) if isinstance(s, Chart) else s for s in report.sections
    ]
    if len(tables) == 1:
        return f"{slug(tables[0].title, set(), limit=60)}.csv", table_csv(tables[0]).encode("utf-8-sig")
    buffer = io.BytesIO()
    taken: set[str] = set()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for table in tables:
            name = slug(table.title, taken, limit=60).replace(" ", "-").lower()
            archive.writestr(f"{name}.csv", table_csv(table).encode("utf-8-sig"))
    return "report.zip", buffer.getvalue()


async def csv_stream(columns: Sequence[Column], rows: AsyncIterator[Sequence[Value]]) -> AsyncIterator[str]:
    """Rows as CSV lines, as they come (constant memory however many there are)."""
    yield "\ufeff" + header_line(columns)
    async for row in rows:
        yield row_line(row, columns)
