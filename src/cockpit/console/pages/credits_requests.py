"""Credits & Allocations, Requests tab: credit requests filtered by status (administrators see the
account's, members their own), filing a request, and approving or denying a pending one."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.formatting import parse_decimal
from cockpit.console.web import SignedIn, Viewer, discard_changes, page_requires, path_id, redirect, render
from cockpit.credits import requests as credit_requests
from cockpit.credits.amounts import grouped, plain
from cockpit.credits.models import RequestStatus
from cockpit.kit.errors import CockpitError, InvalidInput
from cockpit.kit.pagination import PageParams
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession
from cockpit.policies.service import feature_allowed

router = APIRouter(prefix="/credits")

ManageViewer = Annotated[Viewer, Depends(page_requires(Permission.credits_manage))]

PER_PAGE = 25
RESULTS_ID = "credits-requests"
STATUSES: dict[str, str] = {
    RequestStatus.pending.value: "Pending",
    RequestStatus.approved.value: "Approved",
    RequestStatus.denied.value: "Denied",
    RequestStatus.auto_approved.value: "Auto-approved",
}
# Badge tones: granted is green, refused red, waiting amber.
TONES: dict[str, str] = {
    RequestStatus.pending.value: "warning",
    RequestStatus.approved.value: "success",
    RequestStatus.denied.value: "danger",
    RequestStatus.auto_approved.value: "success",
}
Page = Annotated[int, Query(ge=1, le=1_000_000)]
StatusText = Annotated[str, Query(max_length=40)]
LABELS = {"amount": "The amount", "reason": "The reason", "note": "The note"}


def parse_credits(value: str, *, field: str, label: str) -> Decimal:
    """A typed number of credits ("1500", "1,500.25") as an exact Decimal; InvalidInput otherwise.

    Range and precision are the service's to check; this only turns the text into a number."""
    number = parse_decimal(value)
    message = "must be a number of credits, such as 1500 or 1500.25"
    if number is None:
        raise InvalidInput(
            "invalid_amount", f"{label} {message}.", details=[{"field": field, "message": message}]
        )
    return number


def readable(exc: CockpitError, labels: dict[str, str]) -> str:
    """The service's message, with a technical field name ("The credits_per_cycle must ...")
    replaced by the label people see on the form."""
    if isinstance(exc, InvalidInput) and exc.details and exc.code == "invalid_amount":
        detail = exc.details[0]
        label = labels.get(str(detail.get("field")))
        if label:
            return f"{label} {detail.get('message')}."
    return exc.message


def _request_id(value: str) -> uuid.UUID:
    return path_id(value, "credit_request_not_found", "No such credit request.")


def _return_query(status: str, page: int, selected: str = "") -> str:
    values = {"status": status if status in STATUSES else "", "page": str(page) if page > 1 else ""}
    if selected:
        values["selected"] = selected
    return urlencode({k: v for k, v in values.items() if v})


async def _page(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    *,
    status: str = "",
    page: int = 1,
    selected: str = "",
    status_code: int = 200,
    **extra: Any,
) -> Response:
    error = None
    if status and status not in STATUSES:
        error, status = f"Unknown status “{status[:40]}”: showing requests of every status.", ""
    found = await credit_requests.list_requests(
        session,
        viewer.actor,
        PageParams(page=page, per_page=PER_PAGE),
        status=RequestStatus(status) if status else None,
    )
    # "No requests at all" and "none with this status" are different empty states.
    any_requests = bool(found.total) or (
        bool(status)
        and bool((await credit_requests.list_requests(session, viewer.actor, PageParams(per_page=1))).total)
    )
    context: dict[str, Any] = {
        "admin": viewer.can(Permission.credits_manage),
        "page": found,
        "status": status,
        "statuses": STATUSES,
        "tones": TONES,
        "selected": selected,
        "any_requests": any_requests,
        "filter_error": error,
        "query": urlencode({"status": status} if status else {}),
        "return_query": _return_query(status, page),
        "now": utcnow(),
        "results_id": RESULTS_ID,
        # An access policy may deny asking for credits: no "Request credits" then.
        "can_request": await feature_allowed(session, viewer.actor, "credit_requests.create"),
        **extra,
    }
    partial = request.headers.get("hx-target") == RESULTS_ID
    template = "credits/_req_results.html" if partial else "credits/requests.html"
    return render(request, template, context, status_code=status_code)


@router.get("/requests")
async def requests_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    status: StatusText = "",
    page: Page = 1,
    selected: Annotated[str, Query(max_length=40)] = "",
    new: bool = False,
    amount: Annotated[str, Query(max_length=100)] = "",
    reason: Annotated[str, Query(max_length=1000)] = "",
) -> Response:
    # ?new=1 (the low-credits banner's or a conversation's "Request credits"): the form opens at
    # once, with the amount and reason given (a suggestion: the person changes them before filing).
    prefill = {"amount": amount, "reason": reason} if new and (amount or reason) else None
    return await _page(
        request, session, viewer, status=status, page=page, selected=selected, file_open=new,
        file_form=prefill,
    )  # fmt: skip


@router.post("/requests")
async def file_request(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    amount: Annotated[str, Form(max_length=100)] = "",
    reason: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    try:
        filed = await credit_requests.file_request(
            session,
            viewer.actor,
            amount=parse_credits(amount, field="amount", label="The amount"),
            reason=reason,
        )
    except CockpitError as exc:
        if exc.code == "feature_not_allowed":  # a stale page: say why on the requests page
            await discard_changes(session, viewer)
            message = f"You may not ask for extra credits. {exc.message}"
            return redirect(request, "/credits/requests", message=message, kind="error")
        if exc.status in (401, 403):
            raise
        await discard_changes(session, viewer)
        return await _page(
            request,
            session,
            viewer,
            status_code=exc.status,
            file_error=readable(exc, LABELS),
            file_form={"amount": amount[:100], "reason": reason[:1000]},
        )
    asked = grouped(filed.amount_requested)
    if filed.status is RequestStatus.auto_approved:
        message = (
            f"Your request for {asked} credits was approved automatically: "
            "they were added to your extra credits for this cycle."
        )
    else:
        message = f"Your request for {asked} credits was sent and is pending until an administrator decides."
    return redirect(request, f"/credits/requests?selected={filed.id}", message=message)


async def _decide(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    request_id: str,
    *,
    kind: str,
    amount: str,
    note: str,
    status: str,
    page: int,
) -> Response:
    rid = _request_id(request_id)
    # 404 for another account's (or an unknown) request before anything else.
    row = await credit_requests.access_request(session, viewer.actor, rid)
    who, email, requested = row.user.display_name, row.user.email, row.request.amount_requested
    try:
        if kind == "approve":
            granted = (
                None if not amount.strip() else parse_credits(amount, field="amount", label="The amount")
            )
            decided = await credit_requests.approve_request(session, viewer.actor, rid, amount=granted)
            approved = decided.request.amount_approved or Decimal(0)
            message = f"Approved {grouped(approved)} credits for {who}"
            if approved < decided.request.amount_requested:
                message += f" (of the {grouped(decided.request.amount_requested)} requested)"
            message += ": they were added to their extra credits for this cycle."
        else:
            await credit_requests.deny_request(session, viewer.actor, rid, note=note)
            message = f"Denied {who}'s request for {grouped(requested)} credits."
    except CockpitError as exc:
        if exc.status in (401, 403, 404):
            raise
        await discard_changes(session, viewer)
        decision = {
            "kind": kind, "id": str(rid), "amount": amount[:100], "note": note[:1000],
            "who": who, "email": email, "requested": plain(requested), "requested_shown": grouped(requested),
        }  # fmt: skip
        return await _page(
            request,
            session,
            viewer,
            status=status,
            page=page,
            selected=str(rid),
            status_code=exc.status,
            decision=decision,
            decision_error=readable(exc, LABELS),
        )
    return redirect(request, f"/credits/requests?{_return_query(status, page, str(rid))}", message=message)


@router.post("/requests/{request_id}/approve")
async def approve_request(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    request_id: str,
    amount: Annotated[str, Form(max_length=100)] = "",
    status: Annotated[str, Form(max_length=40)] = "",
    page: Annotated[int, Form(ge=1, le=1_000_000)] = 1,
) -> Response:
    return await _decide(
        request, session, viewer, request_id, kind="approve", amount=amount, note="", status=status, page=page
    )


@router.post("/requests/{request_id}/deny")
async def deny_request(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    request_id: str,
    note: Annotated[str, Form(max_length=5000)] = "",
    status: Annotated[str, Form(max_length=40)] = "",
    page: Annotated[int, Form(ge=1, le=1_000_000)] = 1,
) -> Response:
    return await _decide(
        request, session, viewer, request_id, kind="deny", amount="", note=note, status=status, page=page
    )
