"""ACCOUNT → Usage (issue 17, section 4): the usage statement as a page, like a bank statement: one
line per day per model (and per integration for tool calls) with its calls, tokens, unit prices,
credits and USD, the credits that came in as lines of their own, a running balance, the opening and
closing balances and the totals; downloads as CSV, XLSX and PDF.

Everything comes from ``cockpit.usage.statement`` (the same service as ``GET /api/v1/usage/statement``),
which decides who may see whose: administrators (``credits:manage``) the account's, a group's or a
member's statement; members their own (another member's is refused, another account's user or group
is not found). A project narrows the statement to that project's usage; a member picks among the
projects they belong to.

The REST API only takes bearer tokens, so the downloads are console routes here (the session's
cookie), which build the same statement and write it with the API's writers.

Dates are whole days in the organisation's time zone, both ends included, as are the statement's
lines (the service's days).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.web import SignedIn, Viewer, finish, render
from cockpit.console.whose import MAX_MEMBERS_LISTED, Who, id_of, picker, who_of
from cockpit.kit.errors import InvalidInput
from cockpit.kit.pagination import Page
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession
from cockpit.policies.service import feature_allowed, require_feature
from cockpit.projects import service as projects_service
from cockpit.projects.models import Project
from cockpit.usage import statement as statements

router = APIRouter(prefix="/usage")

# A big account's 90 days are a few thousand lines (days x models and integrations): a page shows
# this many, and a download has them all.
PER_PAGE = 100
# Dates outside these years are typing mistakes (and the far ends overflow a datetime).
FIRST_YEAR, LAST_YEAR = 1970, 9998
PRESETS = (("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days"))

KIND_LABELS = {
    "usage": ("Usage", "neutral"),
    "allocation_set": ("Allocation", "accent"),
    "extra_granted": ("Extra credits", "info"),
    "signup_grant": ("Signup credits", "info"),
    "request_approved": ("Request approved", "success"),
    "cycle_reset": ("Cycle start", "accent"),
    "cycle_allocation": ("Monthly allocation", "accent"),
}

MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}

Text = Annotated[str, Query(max_length=100)]


@dataclass(frozen=True)
class Filters:
    """What the query string asks for: whose statement, which project, which days."""

    user_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    first: date | None = None  # the first day shown, in the organisation's time zone
    last: date | None = None  # the last day shown (included)
    per_call: bool = False  # one line per call instead of per day, model and integration

    @property
    def key(self) -> str:
        return Who(self.user_id, self.group_id).key

    def params(self, *, dates: bool = True) -> dict[str, str]:
        """The query string of these filters (the page's, its pages' and its downloads')."""
        found = Who(self.user_id, self.group_id).params()
        if self.project_id is not None:
            found["project_id"] = str(self.project_id)
        if dates and self.first is not None:
            found["from"] = self.first.isoformat()
        if dates and self.last is not None:
            found["to"] = self.last.isoformat()
        if self.per_call:
            found["lines"] = "call"
        return found

    def span(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        """From the first day's midnight to the midnight after the last day, in ``zone``."""
        return (
            datetime.combine(self.first, time(), zone) if self.first is not None else None,
            datetime.combine(self.last + timedelta(days=1), time(), zone) if self.last is not None else None,
        )


def _invalid(field: str, message: str, text: str) -> InvalidInput:
    return InvalidInput("invalid_input", text, details=[{"field": field, "message": message}])


def _day(value: str, field: str, label: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        message = f"'{value}' is not a date (YYYY-MM-DD)"
        raise _invalid(field, message, f"The {label} date {message}.") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        message = f"must be between {FIRST_YEAR} and {LAST_YEAR}"
        raise _invalid(field, message, f"The {label} date {message}.")
    return day


def _dates(start: str, end: str) -> tuple[date | None, date | None]:
    first, last = _day(start, "from", "start"), _day(end, "to", "end")
    if first is not None and last is not None and last < first:
        raise _invalid("to", "must be on or after the start date", "The end date is before the start date.")
    return first, last


async def _project(session: DbSession, viewer: Viewer, project_id: uuid.UUID | None) -> Project | None:
    """The project filter: one of the account's that the viewer may see (others: NotFound)."""
    if project_id is None:
        return None
    return await projects_service.access_project(session, viewer.actor, project_id)


async def _build(session: DbSession, viewer: Viewer, filters: Filters) -> statements.UsageStatement:
    start, end = filters.span(ZoneInfo(viewer.account.timezone))
    return await statements.build_usage_statement(
        session, viewer.actor, user_id=filters.user_id, group_id=filters.group_id,
        project_id=filters.project_id, start=start, end=end, per_call=filters.per_call,
    )  # fmt: skip


def _presets(viewer: Viewer, filters: Filters) -> list[dict[str, str]]:
    """Links to the usual periods, for the same statement and project."""
    today = utcnow().astimezone(ZoneInfo(viewer.account.timezone)).date()
    base = filters.params(dates=False)
    links = [{"label": "This cycle", "id": "cycle", "href": "/usage?" + urlencode(base)}]
    for days, label in PRESETS:
        span = {"from": (today - timedelta(days=int(days) - 1)).isoformat(), "to": today.isoformat()}
        links.append({"label": label, "id": f"last-{days}", "href": "/usage?" + urlencode(base | span)})
    return links


@router.get("")
async def usage_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    scope: Text = "",
    user_id: Text = "",
    group_id: Text = "",
    project_id: Text = "",
    start: Annotated[str, Query(alias="from", max_length=30)] = "",
    end: Annotated[str, Query(alias="to", max_length=30)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    lines: Literal["day", "call"] = "day",
) -> Response:
    admin = viewer.can(Permission.credits_manage)
    who = who_of(scope, user_id, group_id)
    filters = Filters(
        user_id=who.user_id,
        group_id=who.group_id,
        project_id=id_of(project_id, "project") if project_id else None,
        per_call=lines == "call",
    )
    project = await _project(session, viewer, filters.project_id)
    error = None
    try:
        first, last = _dates(start, end)
        filters = replace(filters, first=first, last=last)
    except InvalidInput as exc:  # a bad date: say so, keep what was typed, show the current cycle
        error = exc.message
    try:
        s = await _build(session, viewer, filters)
    except InvalidInput as exc:  # too many calls for a line each: say so, show one line per day
        if not filters.per_call:
            raise
        error, filters = exc.message, replace(filters, per_call=False)
        s = await _build(session, viewer, filters)

    zone = ZoneInfo(viewer.account.timezone)
    shown_from = s.start.astimezone(zone).date().isoformat()
    shown_to = (s.end - timedelta(microseconds=1)).astimezone(zone).date().isoformat()
    form = {"from": start if error else (start or shown_from), "to": end if error else (end or shown_to)}

    picked = await picker(session, viewer, admin=admin, user_id=s.user_id, group_id=s.group_id)
    projects = [p for p, _count in await projects_service.list_projects(session, viewer.actor)]
    if project is not None and project not in projects:
        projects.append(project)

    every = list(s.lines)
    last_page = max(1, -(-len(every) // PER_PAGE))
    page = min(page, last_page)  # past the last page: the last page
    shown = every[(page - 1) * PER_PAGE : page * PER_PAGE]
    brought_forward = every[(page - 1) * PER_PAGE - 1].balance if page > 1 else s.opening_balance
    # The members' own statements are theirs whatever the link said: keep it in the links.
    canonical = filters if admin else replace(filters, user_id=s.user_id, group_id=None)
    query = urlencode(canonical.params())
    context: dict[str, Any] = {
        "admin": admin,
        "s": s,
        "who_key": canonical.key,
        "title": picked.title(viewer),
        "project": project,
        "projects": projects,
        "groups": picked.groups,
        "members": picked.members,
        "more_members": picked.more_members,
        "max_members": MAX_MEMBERS_LISTED,
        "form": form,
        "error": error,
        "page": Page(items=shown, total=len(every), page=page, per_page=PER_PAGE),
        "lines": shown,
        "brought_forward": brought_forward,
        "net": s.credits_in + s.credits_out,
        # The table's days are the statement's (the organisation's days), its opening and closing
        # rows' too.
        "day_zone": ZoneInfo(s.zone),
        "last_day": (s.end - timedelta(microseconds=1)).astimezone(ZoneInfo(s.zone)).date(),
        "query": query,
        "presets": _presets(viewer, canonical),
        # A PDF holds MAX_PDF_LINES lines: a longer statement is offered as CSV and XLSX only.
        "downloads": [
            (fmt.upper(), f"/usage/statement.{fmt}" + (f"?{query}" if query else ""))
            for fmt in MEDIA
            if fmt != "pdf" or len(every) <= statements.MAX_PDF_LINES
        ],
        # An access policy may deny exports: no downloads then.
        "export_allowed": await feature_allowed(session, viewer.actor, "export.reports"),
        "kinds": KIND_LABELS,
        "per_call": filters.per_call,
    }
    return render(request, "usage/statement.html", context, status_code=400 if error else 200)


@router.get("/statement.{fmt}")
async def usage_download(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    fmt: Literal["csv", "xlsx", "pdf"],
    scope: Text = "",
    user_id: Text = "",
    group_id: Text = "",
    project_id: Text = "",
    start: Annotated[str, Query(alias="from", max_length=30)] = "",
    end: Annotated[str, Query(alias="to", max_length=30)] = "",
    lines: Literal["day", "call"] = "day",
) -> Response:
    """The page's statement (every line) as a CSV, XLSX or PDF download, written as the API writes it."""
    await require_feature(session, viewer.actor, "export.reports")
    who = who_of(scope, user_id, group_id)
    first, last = _dates(start, end)
    project = id_of(project_id, "project") if project_id else None
    filters = Filters(who.user_id, who.group_id, project, first, last, lines == "call")
    await _project(session, viewer, filters.project_id)
    s = await _build(session, viewer, filters)
    content = await statements.statement_file(s, fmt, account=viewer.account.name, generated_at=utcnow())
    zone = ZoneInfo(viewer.account.timezone)
    period = (
        f"{s.start.astimezone(zone):%Y%m%d}-{(s.end - timedelta(microseconds=1)).astimezone(zone):%Y%m%d}"
    )
    filename = f"cockpit-usage-statement-{s.scope}-{period}.{fmt}"
    response = Response(
        content,
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
    finish(request, response)
    return response
