"""What the analytics pages show, ready for their templates: the indicators against the previous
period, the breakdown's rows and chart, the timeline's series, the top users and the pivot.

Amounts stay exact (Decimal) until they are written for people by ``console.formatting``; the charts
get the same figures as decimal strings (the bar lengths) and as the page writes them (the tooltips).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from markupsafe import Markup

from cockpit.analytics.figures import Totals
from cockpit.analytics.filters import Dimension
from cockpit.analytics.queries import Key
from cockpit.analytics.service import Assistant, Breakdown, Metric, Pivot, Summary, Timeline, measure
from cockpit.console.formatting import (
    credits_html,
    date_text,
    datetime_text,
    number_text,
    usd_html,
    usd_text,
)
from cockpit.console.pages.analytics_filters import DIRECT, SERIES, View
from cockpit.kit.money import plain

TENTH = Decimal("0.1")
MODELS_SHOWN = 4  # models listed beside an assistant
# A breakdown's dimension -> the filter that narrows the view to one of its values.
NARROWS = {
    Dimension.model: "model",
    Dimension.group: "group",
    Dimension.user: "user",
    Dimension.project: "project",
    Dimension.agent: "agent",
    Dimension.operation: "operation",
    Dimension.token: "token",
}
# The analytics filters -> the request log's parameters of the same meaning.
CALLS_PARAMS = {
    "model": "model", "status": "status", "user": "user", "project": "project", "agent": "agent",
    "token": "token", "group": "group", "operation": "operation",
}  # fmt: skip


def _round(value: Decimal | int, places: Decimal = TENTH) -> Decimal:
    return Decimal(value).quantize(places, rounding=ROUND_HALF_UP)


def _count(value: Decimal | int | None) -> Markup:
    if value is None:
        return Markup("—")
    return Markup("{}").format(number_text(value if isinstance(value, int) else _round(value)))


def _usd(value: Decimal | None) -> Markup:
    return Markup("—") if value is None else usd_html(value)


def _ms(value: Decimal | None) -> Markup:
    if value is None:
        return Markup("—")
    if value >= 10_000:
        return Markup("{} s").format(number_text(_round(value / 1000)))
    return Markup("{} ms").format(number_text(_round(value, Decimal(1))))


def _percent(value: Decimal | None) -> Markup:
    return (
        Markup("—")
        if value is None
        else Markup("{} %").format(number_text(_round(value * 100, Decimal("0.01"))))
    )


def change(current: Decimal | int | None, previous: Decimal | int | None) -> tuple[str, str]:
    """The change against the previous period: ("▲ 12.5 %", "up"), or ("—", "none") with nothing to
    compare with."""
    if current is None or previous is None or previous == 0:
        return "—", "none"
    pct = _round((Decimal(current) - Decimal(previous)) * 100 / Decimal(previous))
    if pct > 0:
        return f"▲ {number_text(pct)} %", "up"
    if pct < 0:
        return f"▼ {number_text(-pct)} %", "down"
    return "0 %", "flat"


@dataclass(frozen=True)
class Indicator:
    label: str
    value: Markup
    change: str
    direction: str
    note: Markup | None = None
    test_id: str = ""


def indicators(s: Summary) -> list[Indicator]:
    now, before = s.current, s.previous
    rows: list[tuple[str, str, Callable[[Totals], Any], Callable[[Any], Markup]]] = [
        ("Total cost", "cost", lambda t: t.cost_usd, _usd),
        ("Avg cost per request", "avg-cost", lambda t: t.avg_cost_per_request_usd, _usd),
        ("Avg request time", "latency", lambda t: t.avg_latency_ms, _ms),
        ("Time to first token", "ttft", lambda t: t.avg_ttft_ms, _ms),
        ("Requests", "requests", lambda t: t.requests, _count),
        ("Errors", "errors", lambda t: t.errors, _count),
        ("Error rate", "error-rate", lambda t: t.error_rate, _percent),
        ("Active users", "users", lambda t: t.active_users, _count),
        ("Avg cost per user", "cost-per-user", lambda t: t.avg_cost_per_user_usd, _usd),
        ("Avg requests per user", "requests-per-user", lambda t: t.avg_requests_per_user, _count),
        ("Input tokens", "input-tokens", lambda t: t.input_tokens, _count),
        ("Output tokens", "output-tokens", lambda t: t.output_tokens, _count),
        ("Cached tokens", "cached-tokens", lambda t: t.cached_tokens, _count),
        ("Avg tokens per request", "tokens-per-request", lambda t: t.avg_tokens_per_request, _count),
        ("Avg tokens per response", "tokens-per-response", lambda t: t.avg_tokens_per_response, _count),
    ]
    found = []
    for label, test_id, get, shown in rows:
        text, direction = change(get(now), get(before)) if before.requests else ("—", "none")
        note = Markup("{} credits").format(credits_html(now.credits)) if test_id == "cost" else None
        found.append(Indicator(label, shown(get(now)), text, direction, note, test_id))
    return found


# ---- links ----


def narrow_value(dim: Dimension, key: Key) -> tuple[str, str] | None:
    """The filter (parameter, value) that narrows a view to one value of a dimension, if there is one."""
    param = NARROWS.get(dim)
    if param is None or key == "__other__":
        return None
    if key is None:
        return ("agent", DIRECT) if dim is Dimension.agent else None
    return param, str(key)


def calls_url(view: View, zone: ZoneInfo, project_id: str | None = None, **extra: str) -> str:
    """The request log with this view's period and filters (and ``extra`` ones)."""
    fmt = "%Y-%m-%dT%H:%M"
    until = view.filters.end.astimezone(zone)
    if until.second or until.microsecond:  # the log's "to" is to the minute: include the last one
        until = until.replace(second=0, microsecond=0) + timedelta(minutes=1)
    params = {
        "range": "custom",
        "since": view.filters.start.astimezone(zone).strftime(fmt),
        "until": until.strftime(fmt),
    }
    for name, param in CALLS_PARAMS.items():
        if view.form.get(name):
            params[param] = view.form[name]
    if project_id:
        params["project"] = project_id
    params.update(extra)
    return "/requests?" + urlencode(params)


# ---- breakdown ----


def _metric_text(metric: Metric, value: Decimal | int) -> str:
    return usd_text(value) if metric is Metric.cost else number_text(value)


def breakdown_rows(
    b: Breakdown, view: View, base: str, calls: Callable[..., str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    values: list[str] = []
    texts: list[str] = []
    hrefs: list[str] = []
    for item in b.items:
        narrow = narrow_value(b.dimension, item.key)
        href = view.url(base, page=None, **{narrow[0]: narrow[1]}) if narrow else None
        t = item.totals
        rows.append(
            {
                "label": item.label, "href": href, "calls": calls(**dict([narrow])) if narrow else None,
                "requests": number_text(t.requests), "errors": number_text(t.errors),
                "cost": usd_html(t.cost_usd), "credits": credits_html(t.credits),
                "tokens": number_text(t.tokens),
                "share": _percent(item.share), "share_width": str(_round(item.share * 100)),
            }
        )  # fmt: skip
        value = measure(t, view.sort)
        labels.append(item.label)
        values.append(plain(Decimal(value)))
        texts.append(_metric_text(view.sort, value))
        hrefs.append(href or "")
    return rows, {
        "labels": labels,
        "values": values,
        "texts": texts,
        "hrefs": hrefs,
        "metric": view.sort.value,
    }


# ---- timeline ----


def _series(t: Totals, series: str) -> Decimal | int:
    values: dict[str, Decimal | int | None] = {
        "cost": t.cost_usd, "requests": t.requests, "tokens": t.tokens, "errors": t.errors,
        "cost_per_user": t.avg_cost_per_user_usd, "requests_per_user": t.avg_requests_per_user,
    }  # fmt: skip
    return values[series] or 0


def _series_text(series: str, value: Decimal | int) -> str:
    return usd_text(value) if series in ("cost", "cost_per_user") else number_text(value)


def timeline_chart(line: Timeline, series: str, zone: ZoneInfo, style: str) -> dict[str, Any]:
    def label(start: datetime) -> str:
        if line.granularity == "day":
            return date_text(start.date(), zone, style)
        return datetime_text(start, zone, style)

    def dataset(name: str, points: list[Totals]) -> dict[str, Any]:
        values = [_series(t, series) for t in points]
        return {
            "label": name,
            "values": [plain(Decimal(v)) for v in values],
            "texts": [_series_text(series, v) for v in values],
        }

    datasets = [dataset(s.label, s.points) for s in line.stacks] or [dataset(SERIES[series], line.points)]
    # Averages per user do not add up: stacked bars of them would mislead, they are drawn side by side.
    return {
        "labels": [label(start) for start in line.starts],
        "datasets": datasets,
        "stacked": bool(line.stacks) and series not in ("cost_per_user", "requests_per_user"),
        "granularity": line.granularity,
        "metric": SERIES[series],
        "empty": not any(t.requests for t in line.points),
    }


# ---- top users and pivot ----


def top_rows(b: Breakdown, calls: Callable[..., str]) -> list[dict[str, Any]]:
    return [
        {
            "label": item.label,
            "cost": usd_html(item.totals.cost_usd),
            "requests": number_text(item.totals.requests),
            "calls": calls(user=str(item.key)),
        }
        for item in b.items
    ]


def assistant_rows(found: list[Assistant], calls: Callable[..., str]) -> list[dict[str, Any]]:
    """Token usage by assistant, with the models each one uses (the first few, then "+ n more")."""
    return [
        {
            "label": a.label,
            "requests": number_text(a.totals.requests),
            "input": number_text(a.totals.input_tokens),
            "output": number_text(a.totals.output_tokens),
            "cost": usd_html(a.totals.cost_usd),
            "models": [(model, number_text(tokens)) for model, tokens in a.models[:MODELS_SHOWN]],
            "more": max(len(a.models) - MODELS_SHOWN, 0),
            "calls": calls(agent=DIRECT if a.key is None else str(a.key)),
        }
        for a in found
    ]


def _cell(value: Metric, amount: Decimal | int) -> Markup:
    return usd_html(amount) if value is Metric.cost else Markup("{}").format(number_text(amount))


def pivot_table(p: Pivot, calls: Callable[..., str]) -> dict[str, Any]:
    nothing: Decimal | int = Decimal(0) if p.value is Metric.cost else 0
    rows = []
    for row in p.rows:
        rows.append(
            {
                "label": row.label,
                "cells": [_cell(p.value, row.cells.get(key, nothing)) for key, _, _ in p.columns],
                "total": _cell(p.value, row.total),
                "calls": calls(user=str(row.key)) if row.key is not None else None,
            }
        )
    return {
        "columns": [label for _, label, _ in p.columns],
        "totals": [_cell(p.value, total) for _, _, total in p.columns],
        "total": _cell(p.value, p.total),
        "rows": rows,
        "count": p.count,
    }
