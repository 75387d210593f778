"""Seat limits per product, edited from the users page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cockpit.console.web import AdminViewer, discard_changes, redirect
from cockpit.kit.errors import CockpitError, InvalidInput
from cockpit.kit.web import DbSession
from cockpit.membership import service as membership
from cockpit.users.seats import PRODUCTS

router = APIRouter()

Limit = Annotated[str, Form(max_length=12)]


@router.post("/users/seats")
async def set_seat_limits(
    request: Request, session: DbSession, viewer: AdminViewer, copilot: Limit = "", console: Limit = "",
    compute: Limit = "",
) -> Response:  # fmt: skip
    values = {"copilot": copilot, "console": console, "compute": compute}
    try:
        limits = {}
        for product in PRODUCTS:
            text = values[product.value].strip()
            if not text.isdigit() or int(text) > 1_000_000:
                raise InvalidInput(
                    "invalid_limit", f"The {product.value} limit must be a whole number from 0 to 1,000,000."
                )
            limits[product] = int(text)
        await membership.set_seat_limits(session, viewer.actor, limits)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, "/users", message=exc.message, kind="error")
    return redirect(request, "/users", message="Seat limits saved.")
