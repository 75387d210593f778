"""Users: the searchable list with seat meters, inviting, and one user's page (role, group, seats, access)."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth import tokens
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.console.pages.invitations import (
    ReadViewer,
    WriteViewer,
    invitations_page,
    invite_dialog,
    issued_link,
    pending_count,
)
from cockpit.console.web import Viewer, discard_changes, path_id, redirect, render
from cockpit.groups import service as groups
from cockpit.invitations import service as invitations
from cockpit.kit.errors import CockpitError, InvalidInput, NotFound
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import AppSettings, DbSession
from cockpit.membership import service as membership
from cockpit.users import service as users
from cockpit.users.models import User, UserRole, UserStatus
from cockpit.users.queries import SORT_PATTERN, UserFilters
from cockpit.users.seats import PRODUCTS, SeatProduct, parse_seats, user_seats

router = APIRouter()

PER_PAGE = 50
RESULTS_ID = "users-results"
Text = Annotated[str, Query(max_length=200)]


def _choice(kind: type[StrEnum], value: str, what: str) -> StrEnum | None:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError as exc:
        raise InvalidInput(
            "invalid_filter", f"Unknown {what} '{value[:40]}': the filter was ignored."
        ) from exc


def _filters(form: dict[str, str]) -> tuple[UserFilters, str | None]:
    """The list's filters from the query string; a bad value is dropped and explained, not a 422 page."""
    values: dict[str, Any] = {"q": form["q"].strip() or None, "sort": form["sort"]}
    errors: list[str] = []
    kinds: tuple[tuple[str, type[StrEnum], str], ...] = (
        ("role", UserRole, "role"),
        ("status", UserStatus, "status"),
        ("seat", SeatProduct, "seat"),
    )
    for key, kind, what in kinds:
        try:
            values[key] = _choice(kind, form[key], what)
        except InvalidInput as exc:
            errors.append(exc.message)
    if form["group"]:
        try:
            values["group_id"] = uuid.UUID(form["group"])
        except ValueError:
            errors.append("Unknown group: the filter was ignored.")
    return UserFilters(**values), " ".join(errors) or None


def _next_sort(current: str) -> dict[str, str]:
    """For each sortable column, the sort its header link switches to (same column: other direction)."""
    result: dict[str, str] = {}
    for column in ("email", "name", "role", "status", "created_at", "last_login_at"):
        if current == column:
            result[column] = f"-{column}"
        elif current == f"-{column}":
            result[column] = column
        else:
            # Dates read best newest first; text A→Z.
            result[column] = f"-{column}" if column.endswith("_at") else column
    return result


async def _users_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    settings: Settings,
    form: dict[str, str],
    *,
    page: int = 1,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    partial = request.headers.get("hx-target") == RESULTS_ID and not request.headers.get(
        "hx-history-restore-request"
    )
    filters, error = _filters(form)
    found = await users.search_users(session, viewer.actor, filters, PageParams(page=page, per_page=PER_PAGE))
    group_list = await users.groups_with_sizes(session, viewer.actor)
    context: dict[str, Any] = {
        "page": found,
        "form": form,
        "error": error,
        "query": urlencode(form),
        "query_without_sort": urlencode({k: v for k, v in form.items() if k != "sort"}),
        "next_sort": _next_sort(form["sort"]),
        "group_names": {g.id: g.name for g, _ in group_list},
        "seats_of": user_seats,
        "results_id": RESULTS_ID,
        "filtered": any(form[k] for k in ("q", "role", "status", "group", "seat")),
        **extra,
    }
    if not partial:  # the rest of the page: meters, filters, tabs, the invite dialog
        usage = await membership.seat_usage(session, viewer.actor)
        context |= {
            "groups": group_list,
            "roles": list(UserRole),
            "statuses": list(UserStatus),
            "products": list(PRODUCTS),
            "usage": [usage[p] for p in PRODUCTS],
            "pending": await pending_count(session, viewer),
            "active_tab": "users",
            **await invite_dialog(session, viewer, settings),
        }
    response = render(
        request, "users/_results.html" if partial else "users/index.html", context, status_code=status_code
    )
    # The same URL answers a whole page or the results alone: caches must tell them apart.
    response.headers["Vary"] = "HX-Target"
    return response


def _form(
    q: str = "", role: str = "", status: str = "", group: str = "", seat: str = "", sort: str = ""
) -> dict[str, str]:
    return {
        "q": q,
        "role": role,
        "status": status,
        "group": group,
        "seat": seat,
        "sort": sort if re.fullmatch(SORT_PATTERN, sort) else "email",
    }


@router.get("/users")
async def users_list(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    viewer: ReadViewer,
    q: Text = "",
    role: Text = "",
    status: Text = "",
    group: Text = "",
    seat: Text = "",
    sort: Text = "email",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    form = _form(q, role, status, group, seat, sort)
    return await _users_page(request, session, viewer, settings, form, page=page)


# ---- inviting ----


def _group_id(value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidInput("unknown_group", "Unknown group.") from exc


def _role(value: str) -> UserRole:
    try:
        return UserRole(value)
    except ValueError as exc:
        raise InvalidInput("invalid_role", f"Unknown role '{value[:40]}'.") from exc


@router.post("/users/invite")
async def invite_person(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    viewer: WriteViewer,
    email: Annotated[str, Form(max_length=1000)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    role: Annotated[str, Form(max_length=20)] = "member",
    group_id: Annotated[str, Form(max_length=40)] = "",
    seats: Annotated[list[str] | None, Form()] = None,
    origin: Annotated[str, Form(max_length=20)] = "users",
) -> Response:
    try:
        invitation, url = await invitations.invite(
            session,
            viewer.actor,
            settings,
            email=email,
            name=name,
            role=_role(role),
            group_id=_group_id(group_id),
            seats=seats or [],
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        form = {
            "email": email[:254],
            "name": name[:200],
            "role": role,
            "group_id": group_id,
            "seats": seats or [],
        }
        if origin == "invitations":
            return await invitations_page(
                request,
                session,
                viewer,
                settings,
                invite_error=exc.message,
                invite_form=form,
                status_code=exc.status,
            )
        return await _users_page(
            request,
            session,
            viewer,
            settings,
            _form(),
            invite_error=exc.message,
            invite_form=form,
            status_code=exc.status,
        )
    # The accept link is shown in this response only: never in a redirect, a flash or a cookie.
    return await invitations_page(
        request,
        session,
        viewer,
        settings,
        issued=issued_link(invitation, url, settings, resent=False),
        status_code=201,
    )


# ---- one user ----


def _user_id(value: str) -> uuid.UUID:
    return path_id(value, "user_not_found", "No such user.")


def _role_lock(viewer: Viewer, user: User) -> str | None:
    """Why the role select is disabled for this viewer, if it is (the service enforces it anyway)."""
    if user.id == viewer.actor.user_id:
        return "You cannot change your own role."
    if user.role is UserRole.owner and not viewer.can(Permission.owners_manage):
        return "Only an owner can change an owner's role."
    return None


def _access_lock(viewer: Viewer, user: User) -> str | None:
    if user.id == viewer.actor.user_id:
        return "You cannot deactivate yourself."
    if user.role is UserRole.owner and not viewer.can(Permission.owners_manage):
        return "Only an owner can deactivate or reactivate an owner."
    return None


@router.get("/users/{user_id}")
async def user_page(request: Request, session: DbSession, viewer: ReadViewer, user_id: str) -> Response:
    user = await users.access_user(session, viewer.actor, _user_id(user_id))
    group_list = await groups.list_groups(session, viewer.actor)
    usage = await membership.seat_usage(session, viewer.actor)
    context = {
        "user": user,
        "tokens": await tokens.list_tokens(session, viewer.actor, user_id=user.id),
        "token_status": tokens.token_status,
        "groups": group_list,
        "group_name": next((g.name for g in group_list if g.id == user.group_id), "—"),
        "roles": [
            r
            for r in UserRole
            if r is not UserRole.owner or viewer.can(Permission.owners_manage) or user.role is r
        ],
        "seats": user_seats(user),
        "usage": [usage[p] for p in PRODUCTS],
        "is_self": user.id == viewer.actor.user_id,
        "role_lock": _role_lock(viewer, user),
        "access_lock": _access_lock(viewer, user),
    }
    return render(request, "users/detail.html", context)


def _seat_list(seats: list[SeatProduct]) -> str:
    return ", ".join(s.value for s in seats) or "no seats"


@router.post("/users/{user_id}")
async def change_user(
    request: Request,
    session: DbSession,
    viewer: WriteViewer,
    user_id: str,
    change: Annotated[str, Form(max_length=20)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    group_id: Annotated[str, Form(max_length=40)] = "",
    seats: Annotated[list[str] | None, Form()] = None,
) -> Response:
    uid = _user_id(user_id)
    url = f"/users/{uid}"
    try:
        if change == "name":
            user = await membership.change_user(session, viewer.actor, uid, name=name)
            message = f"Name saved: {user.name or 'none'}."
        elif change == "role":
            user = await membership.change_user(session, viewer.actor, uid, role=_role(role))
            message = f"{user.display_name} is now {user.role.value}."
        elif change == "group":
            gid = _group_id(group_id)
            if gid is None:
                raise InvalidInput("unknown_group", "Choose a group.")
            user = await membership.change_user(session, viewer.actor, uid, group_id=gid)
            group = await groups.access_group(session, viewer.actor, user.group_id)
            message = f"{user.display_name} moved to {group.name}."
        elif change == "seats":
            user = await membership.change_user(session, viewer.actor, uid, seats=parse_seats(seats or []))
            message = f"Seats of {user.display_name}: {_seat_list(user_seats(user))}."
        else:
            raise InvalidInput("invalid_input", "Nothing to change.")
    except NotFound:
        raise
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, url, message=exc.message, kind="error")
    return redirect(request, url, message=message)


@router.post("/users/{user_id}/deactivate")
async def deactivate_user(
    request: Request, session: DbSession, viewer: WriteViewer, user_id: str
) -> Response:
    uid = _user_id(user_id)
    url = f"/users/{uid}"
    try:
        user = await membership.deactivate_user(session, viewer.actor, uid)
    except NotFound:
        raise
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, url, message=exc.message, kind="error")
    freed = user_seats(user)
    seats = f" Seats freed: {_seat_list(freed)}." if freed else ""
    return redirect(
        request,
        url,
        message=f"{user.display_name} was deactivated: their sessions and API tokens no longer work.{seats}",
    )


@router.post("/users/{user_id}/reactivate")
async def reactivate_user(
    request: Request, session: DbSession, viewer: WriteViewer, user_id: str
) -> Response:
    uid = _user_id(user_id)
    url = f"/users/{uid}"
    try:
        result = await membership.reactivate_user(session, viewer.actor, uid)
    except NotFound:
        raise
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, url, message=exc.message, kind="error")
    name = result.user.display_name
    if result.seats_lost:
        return redirect(
            request,
            url,
            message=f"{name} is active again, but without a {_seat_list(result.seats_lost)} seat: "
            "none is free. Free one or raise the limit, then assign it here.",
            kind="info",
        )
    return redirect(request, url, message=f"{name} is active again and can sign in.")
