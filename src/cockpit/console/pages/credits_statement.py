"""Credits & Allocations, Statement: a member's, a group's or the account's ledger entries over a
date range, like a bank statement (opening balance, one line per movement with its running balance,
closing balance), with a CSV export of the same lines.

Administrators pick the account, any group or any member; members see their own statement only (the
service decides: another user's statement is refused, another account's user or group is not found).
Dates are whole days in the organisation's time zone, both ends included.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.web import SignedIn, Viewer, finish, render
from cockpit.console.whose import MAX_MEMBERS_LISTED, Who, picker, who_of
from cockpit.credits import statement as statements
from cockpit.credits.models import EntryKind
from cockpit.credits.web import statement_csv_response
from cockpit.kit.errors import InvalidInput
from cockpit.kit.pagination import Page
from cockpit.kit.web import DbSession
from cockpit.policies.service import feature_allowed, require_feature
from cockpit.users import service as users

router = APIRouter(prefix="/credits")

PER_PAGE = 100

KIND_LABELS = {
    EntryKind.allocation_set: ("Allocation", "accent"),
    EntryKind.extra_granted: ("Extra credits", "info"),
    EntryKind.signup_grant: ("Signup credits", "info"),
    EntryKind.request_approved: ("Request approved", "success"),
    EntryKind.usage_debit: ("Usage", "neutral"),
    EntryKind.hold: ("Hold", "warning"),
    EntryKind.release: ("Release", "warning"),
    EntryKind.cycle_reset: ("Cycle start", "accent"),
    EntryKind.cycle_allocation: ("Monthly allocation", "accent"),
}

Text = Annotated[str, Query(max_length=100)]


def _day(value: str, field: str, label: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        message = f"'{value}' is not a date (YYYY-MM-DD)"
        raise InvalidInput(
            "invalid_input", f"The {label} date {message}.", details=[{"field": field, "message": message}]
        ) from None


def _range(viewer: Viewer, start: str, end: str) -> tuple[datetime | None, datetime | None]:
    """The range of the date inputs: from the first day's midnight to the midnight after the last
    day, in the person's time zone."""
    zone = ZoneInfo(viewer.timezone)
    first, last = _day(start, "from", "start"), _day(end, "to", "end")
    if first is not None and last is not None and last < first:
        raise InvalidInput(
            "invalid_input",
            "The end date is before the start date.",
            details=[{"field": "to", "message": "must be on or after the start date"}],
        )
    return (
        datetime.combine(first, time(), zone) if first is not None else None,
        datetime.combine(last + timedelta(days=1), time(), zone) if last is not None else None,
    )


async def _statement(
    session: DbSession, viewer: Viewer, who: Who, start: datetime | None, end: datetime | None, page: int = 1
) -> statements.Statement:
    """One page of the statement (a page past the last one: the last one)."""
    result = await statements.build_statement(
        session, viewer.actor, user_id=who.user_id, group_id=who.group_id, start=start, end=end,
        offset=(page - 1) * PER_PAGE, limit=PER_PAGE,
    )  # fmt: skip
    last = max(1, -(-result.total_lines // PER_PAGE))
    if page > last:
        return await _statement(session, viewer, who, start, end, last)
    return result


@router.get("/statement")
async def statement_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    scope: Text = "",
    user_id: Text = "",
    group_id: Text = "",
    start: Annotated[str, Query(alias="from", max_length=30)] = "",
    end: Annotated[str, Query(alias="to", max_length=30)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    admin = viewer.can(Permission.credits_manage)
    who = who_of(scope, user_id, group_id)
    error = None
    try:
        first, last = _range(viewer, start, end)
        result = await _statement(session, viewer, who, first, last, page)
    except InvalidInput as exc:  # a bad range: say so, keep what was typed, show the current cycle
        error = exc.message
        result = await _statement(session, viewer, who, None, None, page)
    zone = ZoneInfo(viewer.timezone)
    shown_from = result.start.astimezone(zone).date().isoformat()
    shown_to = (result.end - timedelta(microseconds=1)).astimezone(zone).date().isoformat()
    form = {"from": start if error else (start or shown_from), "to": end if error else (end or shown_to)}

    picked = await picker(session, viewer, admin=admin, user_id=result.user_id, group_id=result.group_id)

    shown = list(result.lines)
    page = min(page, max(1, -(-result.total_lines // PER_PAGE)))  # past the last page: the last page
    pages = Page(items=shown, total=result.total_lines, page=page, per_page=PER_PAGE)
    brought_forward = result.brought_forward
    people = (
        await users.users_by_id(
            session, viewer.actor.account_id, {line.entry.user_id for line in shown if line.entry.user_id}
        )
        if result.scope != "user"
        else {}
    )
    credits_in, credits_out = result.credits_in, result.credits_out

    canonical = who.params() | ({"user_id": str(result.user_id)} if result.scope == "user" else {})
    query = urlencode(canonical | {"from": form["from"], "to": form["to"]})
    csv_query = urlencode(canonical | ({} if error else {"from": form["from"], "to": form["to"]}))
    context: dict[str, Any] = {
        "admin": admin,
        "s": result,
        "who": who if admin else Who(user_id=result.user_id),
        "title": picked.title(viewer),
        "subject": picked.subject,
        "groups": picked.groups,
        "members": picked.members,
        "more_members": picked.more_members,
        "max_members": MAX_MEMBERS_LISTED,
        "form": form,
        "error": error,
        "page": pages,
        "lines": shown,
        "brought_forward": brought_forward,
        "people": people,
        "credits_in": credits_in,
        "credits_out": credits_out,
        "query": query,
        "scope_query": urlencode(canonical),
        "csv_url": "/credits/statement.csv" + (f"?{csv_query}" if csv_query else ""),
        # An access policy may deny exports: no "Export CSV" then.
        "export_allowed": await feature_allowed(session, viewer.actor, "export.reports"),
        "kinds": KIND_LABELS,
    }
    return render(request, "credits/statement.html", context)


@router.get("/statement.csv")
async def statement_csv(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    scope: Text = "",
    user_id: Text = "",
    group_id: Text = "",
    start: Annotated[str, Query(alias="from", max_length=30)] = "",
    end: Annotated[str, Query(alias="to", max_length=30)] = "",
) -> Response:
    """The lines of the statement page (every page) as a CSV download, streamed."""
    await require_feature(session, viewer.actor, "export.reports")
    who = who_of(scope, user_id, group_id)
    first, last = _range(viewer, start, end)
    header, _lines = await statements.statement_lines(
        session, viewer.actor, user_id=who.user_id, group_id=who.group_id, start=first, end=last
    )
    zone = ZoneInfo(viewer.timezone)
    period = (
        f"{header.start.astimezone(zone):%Y%m%d}-"
        f"{(header.end - timedelta(microseconds=1)).astimezone(zone):%Y%m%d}"
    )
    response = statement_csv_response(
        request,
        viewer.actor,
        f"cockpit-statement-{header.scope}-{period}.csv",
        user_id=who.user_id,
        group_id=who.group_id,
        start=first,
        end=last,
    )
    finish(request, response)
    return response
