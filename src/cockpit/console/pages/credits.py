"""Credits & Allocations, Overview tab: the cycle, the account's credits, every group's budget and
everyone's pace (administrators), or one's own allowance, usage and pace (members)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.web import SignedIn, render
from cockpit.credits import pace
from cockpit.credits import settings as credits
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import DbSession
from cockpit.policies.service import feature_allowed

router = APIRouter(prefix="/credits")
MEMBERS_PER_PAGE = 10


def time_left(seconds: int) -> str:
    """The time until the cycle ends, in the two largest units ("12 days 4 hours left")."""
    if seconds <= 0:
        return "Ending now"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    shown = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts if n][:2]
    return " ".join(shown) + " left" if shown else "Less than a minute left"


def share(part: Decimal, whole: Decimal) -> Decimal:
    """``part`` as a percentage of ``whole`` for a bar's width: 0 to 100, one decimal place."""
    if whole <= 0:
        return Decimal(100) if part > 0 else Decimal(0)
    return min(Decimal(100), max(Decimal(0), part * 100 / whole)).quantize(Decimal("0.1"))


@router.get("")
async def credits_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    members_page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    overview = await credits.overview(session, viewer.actor)
    # Members out of credits or running out soonest come first: they are the ones to act on.
    params = PageParams(page=members_page, per_page=MEMBERS_PER_PAGE)
    paces = await pace.paces_of(session, viewer.actor, overview, params, order="risk")
    context: dict[str, Any] = {
        "o": overview,
        "admin": viewer.can(Permission.credits_manage) and overview.account is not None,
        "has_budgets": any(g.budget > 0 for g in overview.groups or []),
        "time_left": time_left(overview.seconds_left),
        "share": share,
        "mine": overview.me if overview.tracking_enabled else None,
        "can_request": await feature_allowed(session, viewer.actor, "credit_requests.create"),
        "paces": paces,
        "group_paces": {g.figures.group.id: g.pace for g in paces.groups or []},
        "group_names": {g.group.id: g.group.name for g in overview.groups or []},
    }
    target = request.headers.get("hx-target")
    if target == "member-pace" and paces.members is not None:
        return render(request, "credits/_pace_members.html", context | {"members": paces.members})
    partial = target == "credits-overview"
    return render(request, "credits/_overview.html" if partial else "credits/index.html", context)
