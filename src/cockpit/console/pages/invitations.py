"""Invitations: the list with resend and revoke, and the public page where an invitee joins."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth import service as auth_service
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.console.web import (
    SESSION_COOKIE,
    Viewer,
    discard_changes,
    page_requires,
    path_id,
    redirect,
    render,
    set_session_cookie,
)
from cockpit.groups import service as groups
from cockpit.invitations import service as invitations
from cockpit.invitations.models import Invitation
from cockpit.kit.errors import CockpitError, NotFound
from cockpit.kit.mail import mail_configured
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import AppSettings, DbSession, client_ip, user_agent
from cockpit.membership import service as membership
from cockpit.tenancy.service import account_by_id
from cockpit.users.models import UserRole
from cockpit.users.seats import PRODUCTS

router = APIRouter()

ReadViewer = Annotated[Viewer, Depends(page_requires(Permission.users_read))]
WriteViewer = Annotated[Viewer, Depends(page_requires(Permission.users_write))]

PER_PAGE = 50
STATUS_TABS = (*invitations.STATUSES, "all")
# Errors of a link itself: shown as a standalone page, not next to the form.
LINK_ERRORS = ("invitation_invalid", "invitation_used", "invitation_expired")


# ---- shared with the users page: the tabs and the "Invite people" dialog ----


async def pending_count(session: AsyncSession, viewer: Viewer) -> int:
    found = await invitations.list_invitations(
        session, viewer.actor, status="pending", params=PageParams(page=1, per_page=1)
    )
    return found.total


async def invite_dialog(session: AsyncSession, viewer: Viewer, settings: Settings) -> dict[str, Any]:
    """What the invite form needs: groups, roles the viewer may grant, seats with what is free."""
    roles = [r for r in UserRole if r is not UserRole.owner or viewer.can(Permission.owners_manage)]
    usage = await membership.seat_usage(session, viewer.actor)
    return {
        "invite_groups": await groups.list_groups(session, viewer.actor),
        "invite_roles": roles,
        "invite_seats": [usage[p] for p in PRODUCTS],
        "mail_on": mail_configured(settings),
    }


def _status(value: str) -> str:
    return value if value in STATUS_TABS else "pending"


async def invitations_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    settings: Settings,
    *,
    status: str = "pending",
    page: int = 1,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    """The invitations list; ``extra`` carries a just-issued link (shown once) or the invite form's error."""
    status = _status(status)
    found = await invitations.list_invitations(
        session,
        viewer.actor,
        status=None if status == "all" else status,
        params=PageParams(page=page, per_page=PER_PAGE),
    )
    group_names = {g.id: g.name for g in await groups.list_groups(session, viewer.actor)}
    context: dict[str, Any] = {
        "page": found,
        "status": status,
        "tabs": STATUS_TABS,
        "group_names": group_names,
        "status_of": invitations.status_of,
        "pending": await pending_count(session, viewer),
        "active_tab": "invitations",
        **await invite_dialog(session, viewer, settings),
        **extra,
    }
    return render(request, "invitations/index.html", context, status_code=status_code)


# ---- the list, resend and revoke ----


@router.get("/invitations")
async def list_page(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    viewer: ReadViewer,
    status: Annotated[str, Query(max_length=20)] = "pending",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    return await invitations_page(request, session, viewer, settings, status=status, page=page)


def _invitation_id(value: str) -> uuid.UUID:
    return path_id(value, "invitation_not_found", "No such invitation.")


@router.post("/invitations/{invitation_id}/resend")
async def resend_invitation(
    request: Request, session: DbSession, settings: AppSettings, viewer: WriteViewer, invitation_id: str
) -> Response:
    try:
        invitation, url = await invitations.resend(
            session, viewer.actor, settings, _invitation_id(invitation_id)
        )
    except NotFound:
        raise
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, "/invitations", message=exc.message, kind="error")
    # The new link is shown in this response only: never in a redirect or a cookie.
    return await invitations_page(
        request, session, viewer, settings, issued=issued_link(invitation, url, settings, resent=True)
    )


@router.post("/invitations/{invitation_id}/revoke")
async def revoke_invitation(
    request: Request, session: DbSession, viewer: WriteViewer, invitation_id: str
) -> Response:
    try:
        invitation = await invitations.revoke(session, viewer.actor, _invitation_id(invitation_id))
    except NotFound:
        raise
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, "/invitations", message=exc.message, kind="error")
    seats = " Its reserved seats are free again." if invitation.seats else ""
    return redirect(
        request,
        "/invitations",
        message=f"The invitation for {invitation.email} was revoked: its link no longer works.{seats}",
    )


def issued_link(invitation: Invitation, url: str, settings: Settings, *, resent: bool) -> dict[str, Any]:
    return {"invitation": invitation, "url": url, "mailed": mail_configured(settings), "resent": resent}


# ---- the public page behind the link ----


async def _link_error(request: Request, exc: CockpitError) -> Response:
    titles = {
        "invitation_used": "Invitation already used",
        "invitation_expired": "Invitation expired",
    }
    response = render(
        request,
        "invitations/link_error.html",
        {"title": titles.get(exc.code, "Invitation not valid"), "error": exc},
        status_code=exc.status,
    )
    return _private(response)


def _private(response: Response) -> Response:
    # The link's secret is in this page's URL: keep it out of Referer headers.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def _accept_form(
    request: Request,
    session: AsyncSession,
    invitation: Invitation,
    token: str,
    *,
    name: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    account = await account_by_id(session, invitation.account_id)
    assert account is not None
    response = render(
        request,
        "invitations/accept.html",
        {
            "invitation": invitation,
            "organisation": account.name,
            "token": token,
            "name": invitation.name if name is None else name,
            "error": error,
        },
        status_code=status_code,
    )
    return _private(response)


@router.get("/invite/{token}")
async def accept_page(request: Request, session: DbSession, token: str) -> Response:
    try:
        invitation = await invitations.find_open(session, token)
    except CockpitError as exc:
        return await _link_error(request, exc)
    return await _accept_form(request, session, invitation, token)


@router.post("/invite/{token}")
async def accept_invitation(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    token: str,
    name: Annotated[str, Form(max_length=1000)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    password_confirm: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    try:
        invitation = await invitations.find_open(session, token)
    except CockpitError as exc:
        return await _link_error(request, exc)
    if password != password_confirm:
        return await _accept_form(
            request,
            session,
            invitation,
            token,
            name=name[:200],
            error="The two passwords are not the same.",
            status_code=422,
        )
    try:
        user = await invitations.accept(session, token=token, name=name, password=password)
    except CockpitError as exc:
        await session.rollback()
        if exc.code in LINK_ERRORS:
            return await _link_error(request, exc)
        invitation = await invitations.find_open(session, token)
        return await _accept_form(
            request, session, invitation, token, name=name[:200], error=exc.message, status_code=exc.status
        )
    # Signed in at once, as a sign-in would (a fresh session, its "auth.login" audit entry), with
    # whatever session this browser had before replaced.
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        await auth_service.revoke_secret(session, previous)
    _, secret = await auth_service.start_session(
        session, settings, user, ip=client_ip(request), user_agent=user_agent(request)
    )
    account = await account_by_id(session, user.account_id)
    welcome = f"Welcome to {account.name if account else 'Cockpit'}. You are signed in as {user.email}."
    response = redirect(request, "/", message=welcome)
    set_session_cookie(response, request, secret)
    return response
