"""A report as an Excel workbook (XlsxWriter): a Summary sheet (period, filters, indicators), then one
sheet per table and per chart (the chart's figures as a table, with a native Excel chart beside it).
Numbers and dates are typed cells with number formats; header rows are frozen; text is never read as
a formula. Long lists of rows stream to a file with ``RowsWorkbook`` (constant memory)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from cockpit.reports.model import Chart, ChartKind, Column, Kind, Report, Table, Value, slug

OPTIONS = {
    "strings_to_formulas": False,  # a name like "=HYPERLINK(...)" stays text
    "strings_to_urls": False,
    "strings_to_numbers": False,
    "remove_timezone": True,  # moments are written in the report's zone by the caller
}
NUMBER_FORMATS = {
    Kind.number: "#,##0",
    Kind.usd: '"$"#,##0.00######',
    Kind.credits: "#,##0.00####",
    Kind.percent: "0.00%",
    Kind.ms: '#,##0" ms"',
    Kind.moment: "yyyy-mm-dd hh:mm",
    Kind.day: "yyyy-mm-dd",
}
CHART_TYPES = {
    ChartKind.line: {"type": "line"},
    ChartKind.bars: {"type": "column"},
    ChartKind.stacked: {"type": "column", "subtype": "stacked"},
}
MAX_ROWS = 1_048_575  # an Excel sheet's rows, less the header


class _Formats:
    def __init__(self, book: Workbook) -> None:
        self.header = book.add_format({"bold": True, "bg_color": "#F3F4F6", "bottom": 1})
        self.title = book.add_format({"bold": True, "font_size": 14})
        self.muted = book.add_format({"font_color": "#6B7280"})
        self.bold = book.add_format({"bold": True})
        self.kinds = {kind: book.add_format({"num_format": fmt}) for kind, fmt in NUMBER_FORMATS.items()}
        self.totals = {
            kind: book.add_format({"num_format": fmt, "bold": True, "top": 1})
            for kind, fmt in NUMBER_FORMATS.items()
        }
        self.total_text = book.add_format({"bold": True, "top": 1})

    def of(self, kind: Kind, *, total: bool = False) -> Format | None:
        if total:
            return self.totals.get(kind, self.total_text)
        return self.kinds.get(kind)


def _cell(value: Value, kind: Kind) -> Any:
    """A value as Excel stores it: numbers as numbers (Excel has only doubles: the exact figures
    are in the CSV export), dates as dates, everything else as text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, int | datetime | date):
        return value
    return str(value)


def _write_row(
    sheet: Worksheet,
    row: int,
    values: Sequence[Value],
    columns: Sequence[Column],
    f: _Formats,
    *,
    total: bool = False,
) -> None:
    for col, (value, column) in enumerate(zip(values, columns, strict=True)):
        sheet.write(row, col, _cell(value, column.kind), f.of(column.kind, total=total))


def _header(sheet: Worksheet, labels: Sequence[str], f: _Formats, widths: Sequence[int]) -> None:
    for col, label in enumerate(labels):
        sheet.write_string(0, col, label, f.header)
        sheet.set_column(col, col, widths[col])
    sheet.freeze_panes(1, 0)


def _width(column: Column, rows: Sequence[Sequence[Value]], index: int) -> int:
    longest = max((len(str(row[index])) for row in rows[:200] if row[index] is not None), default=0)
    return max(10, min(60, max(len(column.label), longest) + 2))


def _summary(book: Workbook, report: Report, f: _Formats, taken: set[str]) -> None:
    sheet = book.add_worksheet(slug("Summary", taken))
    sheet.set_column(0, 0, 34)
    sheet.set_column(1, 3, 20)
    sheet.write_string(0, 0, report.title, f.title)
    sheet.write_string(1, 0, report.account, f.muted)
    sheet.write_string(2, 0, "Period", f.bold)
    sheet.write_string(2, 1, report.period)
    sheet.write_string(3, 0, "Generated", f.bold)
    sheet.write_datetime(3, 1, report.generated_at, f.of(Kind.moment))
    row = 4
    for what, value in report.filters:
        sheet.write_string(row, 0, f"Filter: {what}", f.bold)
        sheet.write_string(row, 1, value)
        row += 1
    row += 1
    for col, label in enumerate(("Indicator", "This period", "Previous period", "Change")):
        sheet.write_string(row, col, label, f.header)
    sheet.freeze_panes(row + 1, 0)
    for item in report.indicators:
        row += 1
        sheet.write_string(row, 0, item.label)
        sheet.write(row, 1, _cell(item.value, item.kind), f.of(item.kind))
        sheet.write(row, 2, _cell(item.previous, item.kind), f.of(item.kind))
        change = item.change
        sheet.write(row, 3, _cell(change, Kind.percent), f.of(Kind.percent))


def _table(book: Workbook, table: Table, f: _Formats, taken: set[str]) -> None:
    sheet = book.add_worksheet(slug(table.title, taken))
    rows = list(table.rows)[:MAX_ROWS]
    _header(
        sheet, [c.label for c in table.columns], f, [_width(c, rows, i) for i, c in enumerate(table.columns)]
    )
    for n, values in enumerate(rows, start=1):
        _write_row(sheet, n, values, table.columns, f)
    if table.totals is not None and len(rows) < MAX_ROWS:
        _write_row(sheet, len(rows) + 1, table.totals, table.columns, f, total=True)


def _chart(book: Workbook, chart: Chart, f: _Formats, taken: set[str]) -> None:
    name = slug(chart.title, taken)
    sheet = book.add_worksheet(name)
    labels = ["", *(s.name for s in chart.series)]
    _header(sheet, labels, f, [18] + [14] * len(chart.series))
    for row, category in enumerate(chart.categories, start=1):
        sheet.write_string(row, 0, category)
        for col, series in enumerate(chart.series, start=1):
            sheet.write(row, col, _cell(series.values[row - 1], chart.unit), f.of(chart.unit))
    if not chart.categories or not chart.series:
        return
    native = book.add_chart(CHART_TYPES[chart.kind])
    last = len(chart.categories)
    quoted = "'" + name.replace("'", "''") + "'"
    for col in range(1, len(chart.series) + 1):
        native.add_series(
            {
                "name": [name, 0, col],
                "categories": f"={quoted}!$A$2:$A${last + 1}",
                "values": [name, 1, col, last, col],
            }
        )
    native.set_title({"name": chart.title})
    native.set_size({"width": 900, "height": 420})
    native.set_legend({"position": "bottom" if len(chart.series) > 1 else "none"})
    sheet.insert_chart(1, len(chart.series) + 2, native)


def report_xlsx(report: Report) -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, **OPTIONS})
    book.set_properties({"title": report.title, "company": report.account, "author": "Cockpit"})
    formats, taken = _Formats(book), set[str]()
    _summary(book, report, formats, taken)
    for section in report.sections:
        if isinstance(section, Chart):
            _chart(book, section, formats, taken)
        else:
            _table(book, section, formats, taken)
    book.close()
    return buffer.getvalue()


class RowsWorkbook:
    """Rows streamed into one sheet of a workbook on disk, in constant memory (rows are written in
    order and flushed as they go); a sheet that fills up continues on the next one."""

    def __init__(self, path: Path, title: str, columns: Sequence[Column]) -> None:
        self.book = xlsxwriter.Workbook(str(path), {"constant_memory": True, **OPTIONS})
        self.formats = _Formats(self.book)
        self.columns, self.title = columns, title
        self.taken: set[str] = set()
        self.sheets = 0
        self._new_sheet()

    def _new_sheet(self) -> None:
        self.sheets += 1
        name = self.title if self.sheets == 1 else f"{self.title} {self.sheets}"
        self.sheet = self.book.add_worksheet(slug(name, self.taken))
        _header(
            self.sheet,
            [c.label for c in self.columns],
            self.formats,
            [max(12, len(c.label) + 2) for c in self.columns],
        )
        self.row = 0

    def write(self, rows: Iterable[Sequence[Value]]) -> None:
        for values in rows:
            if self.row >= MAX_ROWS:
                self._new_sheet()
            self.row += 1
            _write_row(self.sheet, self.row, values, self.columns, self.formats)

    def close(self) -> None:
        self.book.close()
