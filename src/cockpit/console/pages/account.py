from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cockpit.accounts import service
from cockpit.console.web import AdminViewer, SignedIn, discard_changes, redirect, render
from cockpit.kit.errors import CockpitError
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/account")


@router.get("")
async def account_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    account = await service.get_account(session, viewer.actor)
    return render(
        request, "account/profile.html", {"account": account, "timezones": service.timezone_choices()}
    )


@router.post("")
async def update_account(
    request: Request,
    session: DbSession,
    viewer: AdminViewer,
    name: Annotated[str, Form(max_length=1000)] = "",
    timezone: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        await service.update_profile(session, viewer.actor, name=name, timezone=timezone)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        account = await service.get_account(session, viewer.actor)
        return render(
            request,
            "account/profile.html",
            {
                "account": account,
                "timezones": service.timezone_choices(),
                "error": exc.message,
                "form": {"name": name[:200], "timezone": timezone},
            },
            status_code=exc.status,
        )
    return redirect(request, "/account", message="Organisation profile saved.")
