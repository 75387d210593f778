"""The report writers: a PDF that renders (pages numbered, charts drawn, any European name written),
a workbook a spreadsheet reader opens with typed cells, frozen headers and native charts, CSV files
with exact values; text never becomes a formula."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pypdfium2
import pytest

from cockpit.reports.csvs import csv_stream, report_csv
from cockpit.reports.model import (
    Chart,
    ChartKind,
    Column,
    Indicator,
    Kind,
    Report,
    Series,
    Table,
    Value,
    format_value,
)
from cockpit.reports.pdf import report_pdf
from cockpit.reports.xlsx import RowsWorkbook, report_xlsx

START = datetime(2026, 11, 1, tzinfo=UTC)
HOSTILE = '=HYPERLINK("http://evil.example","x")'
MODELS = ["gpt-4o", "claude", HOSTILE]
NAMES = ["Zoë Ünal", "Дмитрий Петров", "Ångström Øre", HOSTILE, "Nina"]
USER_COLUMNS = [
    Column("User"),
    Column("Requests", Kind.number),
    Column("Cost", Kind.usd),
    Column("Credits", Kind.credits),
    Column("Share", Kind.percent),
]


def _report(rows: int = 240) -> Report:
    users: list[list[Value]] = [
        [f"{NAMES[n % len(NAMES)]} {n}", 1000 + n, Decimal("12.3456789") + n, Decimal("12345.678901") + n,
         Decimal(1) / 240]
        for n in range(rows)
    ]  # fmt: skip
    days = [(START + timedelta(days=d)).strftime("%d %b") for d in range(30)]
    requests = sum(1000 + n for n in range(rows))
    cost = sum((Decimal("12.3456789") + n for n in range(rows)), Decimal(0))
    totals: list[Value] = ["Total", requests, cost, Decimal(0), Decimal(1)]
    return Report(
        title="Cost tracking",
        account="Acme Robotics",
        start=START,
        end=START + timedelta(days=30),
        zone="Europe/Paris",
        generated_at=datetime(2026, 12, 6, 9, 30, tzinfo=UTC),
        filters=[("Group", "Engineering"), ("Model", "gpt-4o")],
        indicators=[
            Indicator("Total cost", Decimal("1234.5678"), Kind.usd, previous=Decimal("1000")),
            Indicator("Credits", Decimal("1234567.891"), Kind.credits, previous=Decimal("2000000")),
            Indicator("Requests", 120_345, Kind.number, previous=0),
            Indicator("Error rate", Decimal("0.0523"), Kind.percent, previous=None),
            Indicator("Average request time", Decimal("812.4"), Kind.ms, previous=Decimal(800)),
        ],
        sections=[
            Chart("Cost per day", ChartKind.line, days, [Series("Cost", [Decimal(d) / 7 for d in range(30)])],
                  unit=Kind.usd),
            Chart("Requests per day by model", ChartKind.stacked, days,
                  [Series(m, [d * (k + 1) for d in range(30)]) for k, m in enumerate(MODELS)]),
            Chart("Errors by model", ChartKind.bars, ["gpt-4o", "claude"], [Series("Errors", [3, 0])]),
            Table("Top users", USER_COLUMNS, users, totals=totals),
            Table("Empty breakdown", [Column("Agent"), Column("Requests", Kind.number)], []),
        ],
    )  # fmt: skip


def test_the_pdf_renders_with_numbered_pages_charts_and_every_name() -> None:
    data = report_pdf(_report())

    assert data.startswith(b"%PDF")
    document = pypdfium2.PdfDocument(data)
    pages = len(document)
    assert pages >= 3  # 240 table rows do not fit on one page: the table continues
    texts = [document[n].get_textpage().get_text_range() for n in range(pages)]
    assert "Cost tracking" in texts[0]
    assert "Acme Robotics" in texts[0]
    assert "Group: Engineering; Model: gpt-4o" in texts[0]
    assert "$1,234.57" in texts[0]  # USD to the cent
    assert "1,234,567.89" in texts[0]  # credits to 2 decimals with separators
    assert "5.23 %" in texts[0]
    assert "23.5 % vs previous period" in texts[0]
    everything = "\n".join(texts)
    for n in range(pages):
        assert f"Page {n + 1} of {pages}" in texts[n]
    for name in ("Zoë Ünal 0", "Дмитрий Петров 1", "Ångström Øre 2", HOSTILE):
        assert name in everything
    assert "No data in this period." in everything
    # The table's header is repeated on the pages it continues on.
    assert sum("Requests" in text and "Share" in text for text in texts) >= 2
    # Charts are drawn: the first page's image has coloured (not grey) ink.
    assert _coloured(document[0]) > 500
    # A page of table rows only: grey stripes, no colour left over from a chart.
    assert _coloured(document[pages - 1]) == 0


def _coloured(page: pypdfium2.PdfPage) -> int:
    """Pixels of a page's image that are coloured, not black, white or grey."""
    pixels = page.render(scale=1).to_pil().convert("RGB").tobytes()
    return sum(1 for n in range(0, len(pixels), 3) if max(pixels[n : n + 3]) - min(pixels[n : n + 3]) > 60)


def test_the_workbook_opens_with_typed_cells_frozen_headers_and_charts(tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    path.write_bytes(report_xlsx(_report(rows=30)))

    book = openpyxl.load_workbook(path)
    assert book.sheetnames == [
        "Summary", "Cost per day", "Requests per day by model", "Errors by model", "Top users",
        "Empty breakdown",
    ]  # fmt: skip
    summary = book["Summary"]
    assert summary["A1"].value == "Cost tracking"
    assert summary["A5"].value == "Filter: Group"
    labels = {row[0].value: row for row in summary.iter_rows(min_row=8)}
    cost = labels["Total cost"]
    assert cost[1].value == pytest.approx(1234.5678)
    assert cost[2].value == 1000
    assert cost[3].value == pytest.approx(0.2345678)
    assert cost[3].number_format == "0.00%"
    assert labels["Requests"][3].value is None  # no change against 0
    users = book["Top users"]
    assert users.freeze_panes == "A2"
    assert [c.value for c in users[1]] == ["User", "Requests", "Cost", "Credits", "Share"]
    row = users[2]
    assert row[0].value == "Zoë Ünal 0"
    assert row[1].value == 1000
    assert row[1].data_type == "n"
    assert row[2].value == pytest.approx(12.3456789)
    assert row[2].number_format.startswith('"$"#,##0.00')
    assert row[3].number_format.startswith("#,##0.00")
    hostile = users[5][0]
    assert hostile.value == f"{HOSTILE} 3"
    assert hostile.data_type == "s"  # text, not a formula
    assert users[32][0].value == "Total"  # the totals row after 30 rows
    assert users[32][0].font.b
    assert len(book["Cost per day"]._charts) == 1
    assert len(book["Requests per day by model"]._charts) == 1
    assert book["Requests per day by model"]["D1"].value == HOSTILE
    assert book["Empty breakdown"].max_row == 1


def test_the_csv_is_a_zip_of_exact_tables() -> None:
    name, data = report_csv(_report(rows=3))

    assert name == "report.zip"
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == [
        "summary.csv", "cost-per-day.csv", "requests-per-day-by-model.csv", "errors-by-model.csv",
        "top-users.csv", "empty-breakdown.csv",
    ]  # fmt: skip
    users = list(csv.reader(io.StringIO(archive.read("top-users.csv").decode("utf-8-sig"))))
    assert users[0] == ["User", "Requests", "Cost", "Credits", "Share"]
    assert users[1][:4] == ["Zoë Ünal 0", "1000", "12.3456789", "12345.678901"]
    assert users[4] == ["Total", "3003", "40.0370367", "0", "1"]
    summary = list(csv.reader(io.StringIO(archive.read("summary.csv").decode("utf-8-sig"))))
    assert ["Total cost", "usd", "1234.5678", "1000"] in summary
    assert ["Error rate", "percent", "0.0523", ""] in summary
    chart = list(csv.reader(io.StringIO(archive.read("requests-per-day-by-model.csv").decode("utf-8-sig"))))
    assert chart[0] == ["", "gpt-4o", "claude", "'" + HOSTILE]  # never the start of a formula


def test_a_report_with_a_single_table_is_one_csv() -> None:
    report = Report("Users", "Acme", START, START, "UTC", START)
    name, data = report_csv(report)
    assert name == "Summary.csv"
    assert data.decode("utf-8-sig").splitlines()[0] == "Indicator,Kind,This period,Previous period"


async def test_rows_stream_as_csv_lines_as_they_come() -> None:
    columns = [Column("When", Kind.moment), Column("User"), Column("Cost", Kind.usd)]

    async def rows() -> AsyncIterator[Sequence[Value]]:
        for n in range(3):
            yield [START + timedelta(hours=n), NAMES[n + 2], Decimal("0.000001875")]

    lines = [line async for line in csv_stream(columns, rows())]

    assert lines[0] == "\ufeffWhen,User,Cost\r\n"
    assert lines[1] == "2026-11-01T00:00:00+00:00,Ångström Øre,0.000001875\r\n"
    assert lines[2].split(",")[1] == '"\'=HYPERLINK(""http://evil.example""'
    assert len(lines) == 4


def test_rows_stream_into_a_workbook_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "calls.xlsx"
    columns = [Column("When", Kind.moment), Column("Model"), Column("Tokens", Kind.number)]
    writer = RowsWorkbook(path, "Calls", columns)
    for batch in range(5):
        writer.write([START + timedelta(minutes=batch * 1000 + n), HOSTILE, n] for n in range(1000))
    writer.close()

    sheet = openpyxl.load_workbook(path, read_only=True)["Calls"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("When", "Model", "Tokens")
    assert len(rows) == 5001
    assert rows[1] == (START.replace(tzinfo=None), HOSTILE, 0)
    assert rows[-1][2] == 999


def test_figures_are_formatted_for_people() -> None:
    assert format_value(Decimal("0.00018705"), Kind.usd) == "$0.0001871"
    assert format_value(Decimal("18777.77446"), Kind.credits) == "18,777.77"
    assert format_value(Decimal("-0.001"), Kind.credits) == "0.00"
    assert format_value(12345, Kind.number) == "12,345"
    assert format_value(Decimal("0.5"), Kind.percent) == "50.00 %"
    assert format_value(None, Kind.usd) == ""
    with pytest.raises(TypeError):
        format_value(0.1, Kind.usd)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="3 values for 2 columns"):
        Table("t", [Column("a"), Column("b")], [["x", 1, 2]])


def test_a_charts_title_is_never_left_alone_at_the_foot_of_a_page() -> None:
    """Sixteen indicators fill most of the first page: the first chart's title moves to the next
    page with its chart (it was printed at the foot of page 1 and again on page 2)."""
    base = _report(rows=5)
    many = [Indicator(f"Indicator {n}", n, Kind.number, previous=n) for n in range(16)]
    report = Report(**{**base.__dict__, "indicators": many})
    document = pypdfium2.PdfDocument(report_pdf(report))
    texts = [document[n].get_textpage().get_text_range() for n in range(len(document))]
    for title in ("Cost per day", "Requests per day by model", "Errors by model"):
        assert sum(text.count(title) for text in texts) == 1, title
