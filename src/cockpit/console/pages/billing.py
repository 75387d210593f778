"""ACCOUNT → Billing (issue 17): the plan and its limits, this cycle's credits, top-up packs bought
through Stripe Checkout, the customer portal, invoices; without Stripe, owners add credits by hand.
The pages call the same service as the REST API (``cockpit.billing.service``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from cockpit.authz.permissions import Permission
from cockpit.billing import service
from cockpit.console.formatting import parse_decimal
from cockpit.console.web import AdminViewer, Viewer, discard_changes, redirect, render
from cockpit.kit.errors import CockpitError, InvalidInput
from cockpit.kit.web import AppSettings, DbSession

router = APIRouter(prefix="/billing")


async def _page(
    request: Request, session: DbSession, viewer: Viewer, settings: AppSettings, *, status_code: int = 200,
    error: str | None = None, form: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    overview = await service.billing_overview(session, viewer.actor, settings)
    return render(
        request, "billing/index.html",
        {"o": overview, "owner": viewer.can(Permission.owners_manage), "error": error, "form": form or {}},
        status_code=status_code,
    )  # fmt: skip


@router.get("")
async def billing_page(
    request: Request, session: DbSession, viewer: AdminViewer, settings: AppSettings
) -> Response:
    return await _page(request, session, viewer, settings)


@router.post("/checkout")
async def buy_pack(
    request: Request,
    session: DbSession,
    viewer: AdminViewer,
    settings: AppSettings,
    pack: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """To Stripe Checkout for a top-up pack (owners)."""
    try:
        if not pack.isdigit():
            raise InvalidInput("invalid_pack", "Choose a top-up pack.")
        url = await service.checkout(session, viewer.actor, settings, int(pack))
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _page(request, session, viewer, settings, status_code=exc.status, error=exc.message)
    await session.commit()
    return RedirectResponse(url, status_code=303)


@router.post("/portal")
async def open_portal(
    request: Request, session: DbSession, viewer: AdminViewer, settings: AppSettings
) -> Response:
    """To the Stripe customer portal: payment methods, invoices, plan changes (owners)."""
    try:
        url = await service.portal(session, viewer.actor, settings)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _page(request, session, viewer, settings, status_code=exc.status, error=exc.message)
    await session.commit()
    return RedirectResponse(url, status_code=303)


@router.post("/top-ups")
async def add_credits(
    request: Request,
    session: DbSession,
    viewer: AdminViewer,
    settings: AppSettings,
    credits: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Owners add credits to this cycle by hand, with a reason (audited; a ledger entry)."""
    try:
        amount = parse_decimal(credits)
        if amount is None:
            raise InvalidInput("invalid_credits", "Credits must be a number, such as 500 or 500.5.")
        await service.add_credits_by_hand(session, viewer.actor, amount, reason)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _page(
            request, session, viewer, settings, status_code=exc.status, error=exc.message,
            form={"credits": credits[:40], "reason": reason[:500]},
        )  # fmt: skip
    return redirect(request, "/billing", message="Credits added to this cycle.")
