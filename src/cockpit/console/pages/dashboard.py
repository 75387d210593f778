"""The home Dashboard. Administrators: this cycle's spend and credits, the cost of the last 30 days,
the top models and groups, the error rate and the latest calls. Members: their own credits and
pace, their spend of the last 30 days and their latest calls. Every figure comes from the analytics
and credits services (the same numbers as Cost tracking and the API); no SQL here."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import labels
from cockpit.analytics import service as analytics
from cockpit.analytics.filters import Dimension, Filters, Scope
from cockpit.audit import service as audit
from cockpit.audit.queries import AuditFilters
from cockpit.auth import tokens
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.console import formatting
from cockpit.console.names import audit_names
from cockpit.console.web import SignedIn, Viewer, render
from cockpit.credits import pace
from cockpit.credits import settings as credits
from cockpit.credits.amounts import grouped
from cockpit.kit.money import plain
from cockpit.kit.pagination import PageParams
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession
from cockpit.policies.service import feature_allowed
from cockpit.usage import service as usage
from cockpit.usage.queries import RequestRow
from cockpit.users import service as users_service
from cockpit.users.models import UserStatus

router = APIRouter()

TREND_DAYS = 30
TOP = 5
RECENT_CALLS = 10
COST_TRACKING = "/cost-tracking"


def percent(rate: Decimal | None) -> str:
    """A fraction as a percentage for people: 0.052345 -> "5.23 %"; "—" without requests."""
    if rate is None:
        return "—"
    return f"{(rate * 100).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f} %"


def _zone(viewer: Viewer) -> ZoneInfo:
    try:
        return ZoneInfo(viewer.account.timezone)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _since(start: datetime, now: datetime) -> Filters:
    """[start, now), at least a second long (a cycle that began this instant)."""
    return Filters(start=start, end=max(now, start + timedelta(seconds=1)))


def last_days(now: datetime, zone: ZoneInfo, days: int = TREND_DAYS) -> Filters:
    """The last ``days`` local days, today included: from the local midnight ``days - 1`` days ago."""
    first = now.astimezone(zone).date() - timedelta(days=days - 1)
    return _since(datetime.combine(first, time(), tzinfo=zone), now)


async def trend(
    session: AsyncSession, scope: Scope, now: datetime, zone: ZoneInfo, style: str
) -> dict[str, Any]:
    """The cost of each local day of the last 30 days, for the chart: exact amounts as strings and
    the text people read (the chart never formats money itself)."""
    found = await analytics.timeline(
        session, scope, last_days(now, zone), zone, labels.names, granularity="day"
    )
    days = [
        {
            "label": formatting.date_text(start, zone, style),
            "cost": plain(totals.cost_usd),
            "text": formatting.usd_text(totals.cost_usd),
            "requests": totals.requests,
        }
        for start, totals in zip(found.starts, found.points, strict=True)
    ]
    total = sum((t.cost_usd for t in found.points), Decimal(0))
    return {"days": days, "total": total, "requests": sum(t.requests for t in found.points)}


async def recent_calls(session: AsyncSession, actor: Actor) -> list[dict[str, Any]]:
    """The latest calls the viewer may read, newest first, each with a person's name (never an id)."""
    latest = await usage.latest_requests(session, actor, RECENT_CALLS)
    ids = {row.record.user_id for row in latest if row.record.user_id is not None}
    names = await labels.names(session, actor.account_id, Dimension.user, ids) if ids else {}

    def who(row: RequestRow) -> str | None:
        user_id = row.record.user_id
        if user_id is None:
            return None
        return str(names.get(user_id) or row.user_email or "Deleted user")

    return [{"r": row.record, "who": who(row), "project": row.project_name} for row in latest]


async def top_five(session: AsyncSession, scope: Scope, period: Filters) -> dict[str, Any]:
    """The five models and the five groups that cost the most in the period."""
    return {
        name: await analytics.breakdown(session, scope, period, dim, labels.names, limit=TOP)
        for name, dim in (("top_models", Dimension.model), ("top_groups", Dimension.group))
    }


@router.get("/")
async def dashboard(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    actor = viewer.actor
    now, zone = utcnow(), _zone(viewer)
    admin = actor.can(Permission.usage_read_all)
    scope = await analytics.scope_for(session, actor)
    my_tokens = await tokens.list_tokens(session, actor)
    context: dict[str, Any] = {
        "admin": admin,
        "active_tokens": sum(1 for t in my_tokens if tokens.token_status(t) == "active"),
        "members": await users_service.count_users(session, actor.account_id, status=UserStatus.active),
        "any_calls": await usage.has_calls(session, actor),
        "percent": percent,
        "cost_tracking": COST_TRACKING if admin else None,
        "gateway_url": request.app.state.settings.base_url.rstrip("/") + "/v1",
    }
    cycle_start = now - timedelta(days=TREND_DAYS)
    if actor.can(Permission.credits_own):
        overview = await credits.overview(session, actor)
        cycle_start = overview.cycle.starts_at
        paces = await pace.paces_of(session, actor, overview, PageParams(1, 1), order="risk")
        context.update(o=overview, paces=paces)
        mine = overview.me if overview.tracking_enabled else None
        if mine is not None and mine.warning:
            context.update(
                mine=mine,
                credits=grouped,
                can_request=await feature_allowed(session, actor, "credit_requests.create"),
            )
    this_cycle = _since(cycle_start, now)
    context["cycle_summary"] = await analytics.summary(session, scope, this_cycle)
    if context["any_calls"]:
        context["trend"] = await trend(session, scope, now, zone, viewer.account.locale)
        context["calls"] = await recent_calls(session, actor)
        if admin:
            context.update(await top_five(session, scope, this_cycle))
    if actor.can(Permission.audit_read):
        week = await audit.search(
            session, actor, AuditFilters(since=now - timedelta(days=7)), PageParams(1, 8)
        )
        names = await audit_names(session, actor.account_id, week.items)
        context.update(recent=week.items, changes_this_week=week.total, names=names)
    return render(request, "dashboard/index.html", context)
