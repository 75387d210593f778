"""The filter bar of Cost tracking and Project → Analytics: the query string read into the period,
the filters and the view's choices (breakdown, timeline, pivot), every bad value reported inline.

Everything the page shows is in its address (bookmarkable): a value that cannot be used is dropped
with a message saying why, and the rest of the view still applies. Values are checked before they
reach the database: no control characters (PostgreSQL refuses NUL), nothing that was not valid
UTF-8 (decoded as U+FFFD), nothing longer than the stored columns.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics.filters import Dimension, Filters, Operation, Status
from cockpit.analytics.service import Metric
from cockpit.credits import cycles
from cockpit.credits.models import Cadence
from cockpit.kit.errors import InvalidInput
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account

RANGES = {
    "today": "Today",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "cycle": "This cycle",
    "last_cycle": "Last cycle",
    "month": "This month",
    "custom": "Custom dates",
}
DEFAULT_RANGE = "30d"
DIRECT = "__direct__"  # the agent filter's value for calls made without an agent
OPERATIONS = {Operation.chat.value: "Chat", Operation.embedding.value: "Embeddings"}
STATUSES = {
    Status.success.value: "Success",
    Status.error.value: "Error",
    Status.client_disconnected.value: "Caller went away",
}
DIMENSIONS = {
    "model": "Model",
    "group": "Group",
    "user": "User",
    "project": "Project",
    "agent": "Agent",
    "integration": "Integration",
    "operation": "Operation",
    "provider": "Provider",
}
SORTS = {"cost": "Cost", "requests": "Requests", "tokens": "Tokens", "errors": "Errors"}
SERIES = {
    "cost": "Cost",
    "requests": "Requests",
    "tokens": "Tokens",
    "errors": "Errors",
    "cost_per_user": "Avg cost per user",
    "requests_per_user": "Avg requests per user",
}
PIVOT_COLUMNS = {"model": "Models", "agent": "Agents"}
PIVOT_VALUES = {"cost": "Cost", "requests": "Requests", "tokens": "Tokens"}
# The filter's query parameter -> the text limit of what it holds.
FILTER_FIELDS = (
    "range",
    "from",
    "to",
    "group",
    "project",
    "user",
    "model",
    "agent",
    "token",
    "operation",
    "status",
)
VIEW_FIELDS = ("by", "sort", "page", "series", "stack", "pivot", "value", "ppage")
MAX_TEXT = {"model": 200, "agent": 100}
MAX_PAGE = 100_000
# Left out of addresses when they are what the page shows anyway.
DEFAULTS = {"range": DEFAULT_RANGE, "by": "model", "sort": "cost", "page": "1", "series": "cost",
            "pivot": "model", "value": "cost", "ppage": "1"}  # fmt: skip


@dataclass
class View:
    """What the query string asks for, as read: ``form`` keeps the accepted values (the links and the
    form are built from it), ``errors`` says what was dropped and why."""

    filters: Filters
    form: dict[str, str]
    errors: list[str] = field(default_factory=list)
    by: Dimension = Dimension.model
    sort: Metric = Metric.cost
    page: int = 1
    series: str = "cost"
    stack: Dimension | None = None
    pivot: Dimension = Dimension.model
    value: Metric = Metric.cost
    ppage: int = 1

    def url(self, base: str, **changes: str | int | None) -> str:
        """This view's address with some parameters changed (None or "" drops one)."""
        values: dict[str, str] = dict(self.form)
        for key, value in changes.items():
            values[key] = "" if value is None else str(value)
        query = urlencode({k: v for k, v in values.items() if v and DEFAULTS.get(k) != v})
        return f"{base}?{query}" if query else base


def _clean(raw: str, name: str, limit: int, errors: list[str]) -> str | None:
    if len(raw) > limit:
        errors.append(f"The {name} filter is too long (at most {limit} characters): it was ignored.")
        return None
    if any(ord(c) < 32 or ord(c) == 127 or c == "\ufffd" or 0xD800 <= ord(c) <= 0xDFFF for c in raw):
        errors.append(f"The {name} filter contains characters that are not allowed: it was ignored.")
        return None
    return raw.strip()


def _ident(raw: str, name: str, errors: list[str]) -> uuid.UUID | None:
    text = _clean(raw, name, 64, errors)
    if not text:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        errors.append(f"Unknown {name}: the filter was ignored.")
        return None


def _choice(raw: str, name: str, choices: Mapping[str, str], errors: list[str]) -> str | None:
    if not raw:
        return None
    if raw not in choices:
        shown = raw if len(raw) <= 40 and raw.isprintable() else "this value"
        errors.append(f"Unknown {name} “{shown}”: choose one of {', '.join(choices.values())}.")
        return None
    return raw


def _number(raw: str, name: str, errors: list[str]) -> int:
    if not raw:
        return 1
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw[:7]) <= MAX_PAGE or len(raw) > 7:
        errors.append(f"The {name} number must be a whole number from 1 to {MAX_PAGE:,}.")
        return 1
    return int(raw)


def _day(raw: str, name: str, errors: list[str]) -> date | None:
    text = _clean(raw, name, 20, errors)
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        errors.append(f"“{text}” is not a date: write the {name} date as YYYY-MM-DD.")
        return None
    if not 2000 <= day.year <= 2999:
        errors.append(f"The {name} date must be between the years 2000 and 2999.")
        return None
    return day


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def zone_of(account: Account) -> ZoneInfo:
    try:
        return ZoneInfo(account.timezone or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


async def _cycle(
    session: AsyncSession, account: Account, zone: ZoneInfo, now: datetime
) -> tuple[datetime, datetime]:
    """This cycle's start and end (read only: a cycle not rolled over yet is computed, not made)."""
    cadence = Cadence(account.cycle_cadence)
    cycle = await cycles.open_cycle(session, account.id)
    if cycle is not None and cycle.starts_at <= now < cycle.ends_at:
        return _aware(cycle.starts_at), _aware(cycle.ends_at)
    start = cycles.period_start(cadence, now, zone)
    return start, cycles.period_end(cadence, start, zone)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))


async def _period(
    session: AsyncSession, account: Account, zone: ZoneInfo, form: dict[str, str], errors: list[str]
) -> tuple[datetime, datetime]:
    now = utcnow()
    today = _midnight(now.astimezone(zone).date(), zone)
    chosen = form["range"]
    if chosen == "today":
        return today, now
    if chosen in ("7d", "30d"):
        return _midnight(today.date() - timedelta(days=int(chosen[:-1]) - 1), zone), now
    if chosen == "month":
        return _midnight(today.date().replace(day=1), zone), now
    if chosen in ("cycle", "last_cycle"):
        start, _end = await _cycle(session, account, zone, now)
        if chosen == "cycle":
            return start, now
        before = await cycles.cycle_at(session, account.id, start - timedelta(microseconds=1))
        if before is not None:
            return _aware(before.starts_at), start
        cadence = Cadence(account.cycle_cadence)
        previous = cycles.period_start(cadence, start - timedelta(microseconds=1), zone)
        return (previous if cadence is not Cadence.days_15 else start - timedelta(days=15)), start
    # custom: whole local days, "to" included
    first, last = _day(form["from"], "from", errors), _day(form["to"], "to", errors)
    last = last or now.astimezone(zone).date()
    first = first or last - timedelta(days=29)
    if first > last:
        errors.append("The “from” date must not be after the “to” date: showing the last 30 days.")
        form.update({"range": DEFAULT_RANGE, "from": "", "to": ""})
        return await _period(session, account, zone, form, errors)
    form["from"], form["to"] = first.isoformat(), last.isoformat()
    return _midnight(first, zone), _midnight(last + timedelta(days=1), zone)


async def read_view(
    session: AsyncSession, account: Account, query: Mapping[str, str], *, with_project: bool
) -> View:
    """The view a query string asks for; never raises for what a person (or a hostile link) typed."""
    errors: list[str] = []
    raw = {key: query.get(key, "") for key in (*FILTER_FIELDS, *VIEW_FIELDS)}
    form: dict[str, str] = {key: "" for key in (*FILTER_FIELDS, *VIEW_FIELDS)}
    if not raw["range"] and (raw["from"] or raw["to"]):
        raw["range"] = "custom"  # a link with dates alone
    form["range"] = _choice(raw["range"], "time range", RANGES, errors) or DEFAULT_RANGE
    if form["range"] == "custom":
        form["from"], form["to"] = raw["from"], raw["to"]
    ids: dict[str, uuid.UUID | None] = {}
    for name, label in (("group", "group"), ("project", "project"), ("user", "user"), ("token", "API token")):
        if name == "project" and not with_project:
            ids[name] = None
            continue
        ids[name] = _ident(raw[name], label, errors)
        form[name] = str(ids[name]) if ids[name] else ""
    texts: dict[str, str | None] = {}
    for name in ("model", "agent"):
        texts[name] = _clean(raw[name], name, MAX_TEXT[name], errors) or None
        form[name] = texts[name] or ""
    operation = _choice(raw["operation"], "operation", OPERATIONS, errors)
    status = _choice(raw["status"], "status", STATUSES, errors)
    form["operation"], form["status"] = operation or "", status or ""
    zone = zone_of(account)
    start, end = await _period(session, account, zone, form, errors)
    if form["range"] != "custom":
        form["from"] = form["to"] = ""
    agent = texts["agent"]
    try:
        filters = Filters(
            start=start, end=end, group_id=ids["group"], project_id=ids["project"], user_id=ids["user"],
            api_token_id=ids["token"], model=texts["model"], agent="" if agent == DIRECT else agent,
            operation=Operation(operation) if operation else None, status=Status(status) if status else None,
        )  # fmt: skip
    except InvalidInput as exc:
        errors.append(exc.message)
        form.update({"range": DEFAULT_RANGE, "from": "", "to": ""})
        start, end = await _period(session, account, zone, form, errors)
        filters = Filters(start=start, end=end)
    view = View(filters, form, errors)
    dims = {k: v for k, v in DIMENSIONS.items() if with_project or k != "project"}
    view.by = Dimension(_choice(raw["by"], "breakdown", dims, errors) or "model")
    view.sort = Metric(_choice(raw["sort"], "sort", SORTS, errors) or "cost")
    view.page = _number(raw["page"], "page", errors)
    view.series = _choice(raw["series"], "timeline", SERIES, errors) or "cost"
    stack = _choice(raw["stack"], "stack", dims, errors)
    view.stack = Dimension(stack) if stack else None
    view.pivot = Dimension(_choice(raw["pivot"], "pivot", PIVOT_COLUMNS, errors) or "model")
    view.value = Metric(_choice(raw["value"], "pivot value", PIVOT_VALUES, errors) or "cost")
    view.ppage = _number(raw["ppage"], "pivot page", errors)
    form.update(
        by=view.by.value, sort=view.sort.value, page=str(view.page), series=view.series, stack=stack or "",
        pivot=view.pivot.value, value=view.value.value, ppage=str(view.ppage),
    )  # fmt: skip
    return view
