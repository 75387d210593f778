"""A report as a PDF (fpdf2): a title page header with the account, period and filters, the
indicators, then each chart (drawn as vectors) and table (its header repeated on each page), with
numbered pages. DejaVu Sans (vendored in ``fonts/``) writes any character people's names may hold."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from cockpit.reports.model import Chart, ChartKind, Indicator, Kind, Report, Table, format_value

FONTS = Path(__file__).parent / "fonts"
FAMILY = "DejaVu"
INK = (31, 41, 55)
MUTED = (107, 114, 128)
RULE = (229, 231, 235)
ACCENT = (79, 70, 229)
PALETTE = (
    (79, 70, 229), (14, 165, 233), (16, 185, 129), (245, 158, 11), (239, 68, 68),
    (139, 92, 246), (236, 72, 153), (20, 184, 166), (132, 204, 22), (100, 116, 139),
)  # fmt: skip
MAX_LABELS = 12  # category labels under a chart; the others are left out (every n-th is written)


class _Document(FPDF):
    def __init__(self, report: Report) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.report = report
        self.add_font(FAMILY, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(FAMILY, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        self.set_auto_page_break(auto=True, margin=16)
        self.set_margins(14, 14, 14)
        self.set_title(report.title)
        self.set_author(f"Cockpit · {report.account}")
        self.set_creator("Cockpit")
        self.set_creation_date(report.generated_at)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(FAMILY, "", 8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, f"{self.report.title} · {self.report.account}", align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")

    # ---- blocks ----

    def write_heading(self) -> None:
        r = self.report
        self.set_text_color(*INK)
        self.set_font(FAMILY, "B", 18)
        self.cell(0, 9, r.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FAMILY, "", 10)
        self.set_text_color(*MUTED)
        self.cell(0, 6, f"{r.account} · {r.period}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        filters = "; ".join(f"{what}: {value}" for what, value in r.filters) or "none"
        self.multi_cell(0, 5, f"Filters: {filters}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        generated = r.generated_at.strftime("%Y-%m-%d %H:%M")
        self.cell(0, 5, f"Generated {generated} ({r.zone})", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(3)

    def write_indicators(self, items: list[Indicator]) -> None:
        if not items:
            return
        per_row, gap = 4, 4.0
        width = (self.epw - gap * (per_row - 1)) / per_row
        for start in range(0, len(items), per_row):
            if self.will_page_break(20):
                self.add_page()
            y = self.get_y()
            for n, item in enumerate(items[start : start + per_row]):
                x = self.l_margin + n * (width + gap)
                self.set_draw_color(*RULE)
                self.rect(x, y, width, 18)
                self.set_xy(x + 3, y + 2)
                self.set_font(FAMILY, "", 8)
                self.set_text_color(*MUTED)
                self.cell(width - 6, 4, item.label)
                self.set_xy(x + 3, y + 6.5)
                self.set_font(FAMILY, "B", 13)
                self.set_text_color(*INK)
                self.cell(width - 6, 6, format_value(item.value, item.kind) or "—")
                self.set_xy(x + 3, y + 12.5)
                self.set_font(FAMILY, "", 7.5)
                self.set_text_color(*MUTED)
                self.cell(width - 6, 4, _change_text(item))
            self.set_xy(self.l_margin, y + 18 + gap)
        self.ln(2)

    def section_title(self, text: str) -> None:
        if self.will_page_break(30):
            self.add_page()
        self.set_font(FAMILY, "B", 12)
        self.set_text_color(*INK)
        self.cell(0, 8, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def write_table(self, table: Table) -> None:
        self.section_title(table.title)
        if not table.rows:
            self.set_font(FAMILY, "", 9)
            self.set_text_color(*MUTED)
            self.cell(0, 6, "No data in this period.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(4)
            return
        self.set_font(FAMILY, "", 8)
        self.set_text_color(*INK)
        self.set_draw_color(*RULE)
        self.set_fill_color(255, 255, 255)  # the rows between the striped ones
        aligns = tuple(
            "LEFT" if c.kind in (Kind.text, Kind.moment, Kind.day) else "RIGHT" for c in table.columns
        )
        widths = _widths(self, table)
        heading = FontFace(emphasis="BOLD", fill_color=(243, 244, 246))
        with self.table(
            col_widths=widths, text_align=aligns, headings_style=heading, line_height=5,
            borders_layout="HORIZONTAL_LINES", repeat_headings=1, first_row_as_headings=True,
            cell_fill_color=(249, 250, 251), cell_fill_mode="ROWS",
        ) as grid:  # fmt: skip
            grid.row([c.label for c in table.columns])
            for values in table.rows:
                grid.row([format_value(v, c.kind) for v, c in zip(values, table.columns, strict=True)])
            if table.totals is not None:
                total_style = FontFace(emphasis="BOLD")
                cells = [format_value(v, c.kind) for v, c in zip(table.totals, table.columns, strict=True)]
                grid.row(cells, style=total_style)
        self.ln(5)

    def write_chart(self, chart: Chart) -> None:
        height = 62.0
        if self.will_page_break(8 + height + 16):  # the title goes with its chart, never alone
            self.add_page()
        self.section_title(chart.title)
        left = self.l_margin + 24  # room for the axis labels
        top, width = self.get_y() + 2, self.epw - 24
        _draw(self, chart, left, top, width, height)
        self.set_y(top + height + 9)
        _legend(self, chart)
        self.ln(5)


def _change_text(item: Indicator) -> str:
    change = item.change
    if change is None:
        return "no previous figure" if item.previous is None else "previous: 0"
    arrow = "▲" if change > 0 else "▼" if change < 0 else "="
    percent = (abs(change) * 100).quantize(Decimal("0.1"))
    return f"{arrow} {percent:,} % vs previous period ({format_value(item.previous, item.kind)})"


def _widths(pdf: FPDF, table: Table) -> tuple[float, ...]:
    """Column widths from their content (the longest of a sample of rows), filling the page."""
    sample = list(table.rows[:200]) + ([table.totals] if table.totals is not None else [])
    wanted = []
    for n, column in enumerate(table.columns):
        texts = [column.label] + [format_value(row[n], column.kind) for row in sample]
        wanted.append(min(max(pdf.get_string_width(t) for t in texts) + 4, 90))
    scale = pdf.epw / sum(wanted)
    return tuple(w * scale for w in wanted)


def _nice_top(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def _draw(pdf: FPDF, chart: Chart, left: float, top: float, width: float, height: float) -> None:
    n = len(chart.categories)
    stacked = chart.kind is ChartKind.stacked
    if stacked:
        peak = max((sum(float(s.values[i]) for s in chart.series) for i in range(n)), default=0.0)
    else:
        peak = max((float(v) for s in chart.series for v in s.values), default=0.0)
    top_value = _nice_top(peak)
    if chart.unit is Kind.number and top_value < 20:
        top_value = float(math.ceil(top_value / 4) * 4)  # whole numbers on the axis
    bottom = top + height
    pdf.set_font(FAMILY, "", 7)
    pdf.set_line_width(0.2)
    for tick in range(5):
        value = top_value * tick / 4
        y = bottom - height * tick / 4
        pdf.set_draw_color(*RULE)
        pdf.line(left, y, left + width, y)
        pdf.set_text_color(*MUTED)
        pdf.set_xy(left - 24, y - 2)
        pdf.cell(22, 4, _axis_label(value, chart.unit), align="R")
    if n == 0 or not chart.series:
        pdf.set_xy(left, top + height / 2 - 3)
        pdf.cell(width, 6, "No data in this period.", align="C")
        return
    slot = width / n
    every = max(1, math.ceil(n / MAX_LABELS))
    for i, category in enumerate(chart.categories):
        if i % every == 0:
            pdf.set_xy(left + slot * i, bottom + 1)
            pdf.cell(slot * every, 4, category[:18], align="C" if chart.kind is not ChartKind.line else "L")

    def y_of(value: float) -> float:
        return bottom - height * value / top_value

    if chart.kind is ChartKind.line:
        pdf.set_line_width(0.6)
        for k, series in enumerate(chart.series):
            pdf.set_draw_color(*PALETTE[k % len(PALETTE)])
            points = [(left + slot * (i + 0.5), y_of(float(v))) for i, v in enumerate(series.values)]
            if len(points) == 1:
                x, y = points[0]
                pdf.set_fill_color(*PALETTE[k % len(PALETTE)])
                pdf.circle(x, y, 0.8, style="F")
            else:
                pdf.polyline(points)
        pdf.set_line_width(0.2)
        return
    bar_gap = max(slot * 0.2, slot - 24)  # bars at most 24 mm wide
    for i in range(n):
        base = 0.0
        count = len(chart.series)
        for k, series in enumerate(chart.series):
            value = float(series.values[i])
            pdf.set_fill_color(*PALETTE[k % len(PALETTE)])
            if stacked:
                y0, y1 = y_of(base + value), y_of(base)
                x, w = left + slot * i + bar_gap / 2, slot - bar_gap
                base += value
            else:
                w = (slot - bar_gap) / count
                x = left + slot * i + bar_gap / 2 + w * k
                y0, y1 = y_of(value), bottom
            if y1 - y0 > 0.01:
                pdf.rect(x, y0, w, y1 - y0, style="F")


def _axis_label(value: float, unit: Kind) -> str:
    exact = Decimal(str(round(value, 6))).normalize()
    if unit is Kind.usd:
        return f"${exact:,f}"
    if unit is Kind.percent:
        return f"{exact * 100:,f} %"
    return f"{exact:,f}"


def _legend(pdf: FPDF, chart: Chart) -> None:
    if len(chart.series) < 2 and chart.kind is not ChartKind.stacked:
        return
    pdf.set_font(FAMILY, "", 7.5)
    pdf.set_text_color(*INK)
    x = pdf.l_margin
    for k, series in enumerate(chart.series):
        label = series.name[:40]
        needed = pdf.get_string_width(label) + 9
        if x + needed > pdf.l_margin + pdf.epw:
            x = pdf.l_margin
            pdf.ln(5)
        y = pdf.get_y()
        pdf.set_fill_color(*PALETTE[k % len(PALETTE)])
        pdf.rect(x, y + 1, 3, 3, style="F")
        pdf.set_xy(x + 4, y)
        pdf.cell(needed - 4, 5, label)
        x += needed
        pdf.set_xy(x, y)
    pdf.ln(6)


def report_pdf(report: Report) -> bytes:
    pdf = _Document(report)
    pdf.add_page()
    pdf.write_heading()
    pdf.write_indicators(list(report.indicators))
    for section in report.sections:
        if isinstance(section, Chart):
            pdf.write_chart(section)
        else:
            pdf.write_table(section)
    return bytes(pdf.output())
