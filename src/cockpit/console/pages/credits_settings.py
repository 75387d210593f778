"""Credits & Allocations, Settings tab (administrators): credits per cycle, the cycle cadence, the
credit factor, the credits a new user receives, the budget alerts' thresholds, and "Reset cycle now".

Each section is its own small form; the limit, a new cadence and a reset are confirmed in the
browser first. A refused change is shown in its section with what was typed, and changes nothing."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.formatting import datetime_text
from cockpit.console.pages.credits_requests import parse_credits, readable
from cockpit.console.web import Viewer, discard_changes, page_requires, redirect, render
from cockpit.credits import figures as credit_figures
from cockpit.credits import settings as credits
from cockpit.credits.amounts import grouped
from cockpit.credits.models import Cadence
from cockpit.credits.thresholds import parse_thresholds
from cockpit.kit.errors import CockpitError
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/credits")

ManageViewer = Annotated[Viewer, Depends(page_requires(Permission.credits_manage))]

RESULTS_ID = "credits-settings"
CADENCES: dict[str, str] = {
    Cadence.month.value: "Calendar month",
    Cadence.days_15.value: "15 days",
    Cadence.week.value: "1 week",
    Cadence.day.value: "1 day",
    Cadence.hours_12.value: "12 hours",
    Cadence.hour.value: "1 hour",
}
LABELS = {
    "credits_per_cycle": "Credits per cycle",
    "credit_factor": "The credit factor",
    "signup_credits": "Credits per new user",
    "budget_thresholds": "The budget thresholds",
}
Amount = Annotated[str, Form(max_length=100)]


def _local(viewer: Viewer, moment: datetime) -> str:
    try:
        zone = ZoneInfo(viewer.timezone or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return datetime_text(moment, zone, viewer.locale)


async def _page(
    request: Request, session: DbSession, viewer: Viewer, *, status_code: int = 200, **extra: Any
) -> Response:
    account, cycle = await credits.credit_settings(session, viewer.actor)
    figures = await credit_figures.account_figures(session, account, cycle)
    context: dict[str, Any] = {
        "admin": True,
        "account": account,
        "cycle": cycle,
        "figures": figures,
        "cadences": CADENCES,
        "cadence_label": CADENCES.get(account.cycle_cadence, account.cycle_cadence),
        "now": utcnow(),
        "results_id": RESULTS_ID,
        "errors": {},
        "form": {},
        **extra,
    }
    partial = request.headers.get("hx-target") == RESULTS_ID
    template = "credits/_settings_body.html" if partial else "credits/settings.html"
    return render(request, template, context, status_code=status_code)


@router.get("/settings")
async def settings_page(request: Request, session: DbSession, viewer: ManageViewer) -> Response:
    return await _page(request, session, viewer)


async def _refused(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    exc: CockpitError,
    section: str,
    form: dict[str, str],
) -> Response:
    if exc.status in (401, 403, 404):
        raise exc
    await discard_changes(session, viewer)
    return await _page(
        request, session, viewer, status_code=exc.status, errors={section: readable(exc, LABELS)}, form=form
    )


def _done(request: Request, message: str) -> Response:
    return redirect(request, "/credits/settings", message=message)


@router.post("/settings/limit")
async def change_limit(
    request: Request, session: DbSession, viewer: ManageViewer, credits_per_cycle: Amount = ""
) -> Response:
    try:
        value = parse_credits(credits_per_cycle, field="credits_per_cycle", label=LABELS["credits_per_cycle"])
        before = (await credits.credit_settings(session, viewer.actor))[0].credits_per_cycle
        account, cycle = await credits.change_settings(session, viewer.actor, credits_per_cycle=value)
    except CockpitError as exc:
        return await _refused(
            request, session, viewer, exc, "limit", {"credits_per_cycle": credits_per_cycle}
        )
    if value == before:
        return _done(request, f"Credits per cycle unchanged ({grouped(value)}).")
    available = (await credit_figures.account_figures(session, account, cycle)).available
    return _done(
        request,
        f"Account credit limit set to {grouped(account.credits_per_cycle)} credits per cycle, from "
        f"{grouped(before)}; {grouped(available)} credits are available this cycle.",
    )


@router.post("/settings/cadence")
async def change_cadence(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    cycle_cadence: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    try:
        before = (await credits.credit_settings(session, viewer.actor))[0].cycle_cadence
        account, cycle = await credits.change_settings(session, viewer.actor, cycle_cadence=cycle_cadence)
    except CockpitError as exc:
        return await _refused(request, session, viewer, exc, "cadence", {"cycle_cadence": cycle_cadence})
    label = CADENCES.get(account.cycle_cadence, account.cycle_cadence)
    if account.cycle_cadence == before:
        return _done(request, f"Cycle cadence unchanged ({label}).")
    return _done(
        request,
        f"Cycle cadence set to {label}: cycle {cycle.seq} started now and ends "
        f"{_local(viewer, cycle.ends_at)}.",
    )


@router.post("/settings/factor")
async def change_factor(
    request: Request, session: DbSession, viewer: ManageViewer, credit_factor: Amount = ""
) -> Response:
    try:
        value = parse_credits(credit_factor, field="credit_factor", label=LABELS["credit_factor"])
        account, _ = await credits.change_settings(session, viewer.actor, credit_factor=value)
    except CockpitError as exc:
        return await _refused(request, session, viewer, exc, "factor", {"credit_factor": credit_factor})
    if account.credit_factor == 0:
        return _done(request, "Credit factor set to 0: credit tracking is off.")
    return _done(request, f"Credit factor set to {grouped(account.credit_factor)} credits per $1 of cost.")


@router.post("/settings/signup")
async def change_signup_credits(
    request: Request, session: DbSession, viewer: ManageViewer, signup_credits: Amount = ""
) -> Response:
    try:
        value = parse_credits(signup_credits, field="signup_credits", label=LABELS["signup_credits"])
        account, _ = await credits.change_settings(session, viewer.actor, signup_credits=value)
    except CockpitError as exc:
        return await _refused(request, session, viewer, exc, "signup", {"signup_credits": signup_credits})
    if account.signup_credits == Decimal(0):
        return _done(request, "New users receive no signup credits.")
    return _done(request, f"New users now receive {grouped(account.signup_credits)} credits when they join.")


@router.post("/settings/thresholds")
async def change_thresholds(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    budget_thresholds: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        values = parse_thresholds(budget_thresholds)
        account, _ = await credits.change_settings(session, viewer.actor, budget_thresholds=values)
    except CockpitError as exc:
        form = {"budget_thresholds": budget_thresholds}
        return await _refused(request, session, viewer, exc, "thresholds", form)
    if not account.budget_thresholds:
        return _done(request, "Budget alerts are off: no threshold is announced.")
    shown = ", ".join(f"{pct}%" for pct in account.budget_thresholds)
    return _done(
        request, f"Budget alerts at {shown} of the account's, each group's and each member's credits."
    )


@router.post("/settings/reset")
async def reset_cycle(request: Request, session: DbSession, viewer: ManageViewer) -> Response:
    try:
        cycle = await credits.reset_cycle(session, viewer.actor)
    except CockpitError as exc:
        return await _refused(request, session, viewer, exc, "reset", {})
    return _done(
        request,
        f"Cycle {cycle.seq} started now: used credits count from zero; it ends "
        f"{_local(viewer, cycle.ends_at)}.",
    )
