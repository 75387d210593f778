"""Groups: the list with a "New group" dialog, and one group's page (edit, members, moves, delete)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.named import DescriptionForm, NameForm, create_refused, typed
from cockpit.console.web import Viewer, discard_changes, page_requires, path_id, redirect, render
from cockpit.groups import service as groups
from cockpit.groups.models import Group
from cockpit.kit.errors import CockpitError, InvalidInput
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import DbSession
from cockpit.membership import service as membership
from cockpit.users import service as users
from cockpit.users.models import User
from cockpit.users.queries import UserFilters

router = APIRouter(prefix="/groups")

ReadViewer = Annotated[Viewer, Depends(page_requires(Permission.users_read))]
WriteViewer = Annotated[Viewer, Depends(page_requires(Permission.users_write))]

PER_PAGE = 25
# "Add people" lists this many users from other groups; the search box narrows them down.
CANDIDATES_SHOWN = 12
CANDIDATES_SCANNED = 200
MEMBERS_ID = "group-members"
CANDIDATES_ID = "group-candidates"
Text = Annotated[str, Query(max_length=200)]


def _group_id(value: str) -> uuid.UUID:
    return path_id(value, "group_not_found", "No such group.")


def _user_ids(values: list[str] | None) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(v) for v in values or []]
    except ValueError as exc:
        raise InvalidInput("invalid_input", "Unknown user.") from exc


def _people(count: int) -> str:
    return f"{count} member" if count == 1 else f"{count} members"


# ---- the list ----


async def _index(
    request: Request, session: DbSession, viewer: Viewer, *, status_code: int = 200, **extra: Any
) -> Response:
    rows = await users.groups_with_sizes(session, viewer.actor)
    return render(
        request,
        "groups/index.html",
        {
            "groups": rows,
            "people": sum(count for _, count in rows),
            "default_name": next((g.name for g, _ in rows if g.is_default), "Default"),
            **extra,
        },
        status_code=status_code,
    )


@router.get("")
async def groups_page(request: Request, session: DbSession, viewer: ReadViewer) -> Response:
    return await _index(request, session, viewer)


@router.post("")
async def create_group(
    request: Request,
    session: DbSession,
    viewer: WriteViewer,
    name: NameForm = "",
    description: DescriptionForm = "",
) -> Response:
    try:
        group = await groups.create_group(session, viewer.actor, name=name, description=description)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _index(
            request, session, viewer, **create_refused(exc, name, description, description_shown=1000)
        )
    return redirect(request, f"/groups/{group.id}", message=f"Group “{group.name}” created.")


# ---- one group ----


async def _candidates(
    session: DbSession, viewer: Viewer, group: Group, q: str, names: dict[uuid.UUID, str]
) -> tuple[list[tuple[User, str]], bool]:
    """Users of other groups for "Add people", with the name of the group they are in now."""
    found = await users.search_users(
        session, viewer.actor, UserFilters(q=q.strip() or None), PageParams(per_page=CANDIDATES_SCANNED)
    )
    others = [u for u in found.items if u.group_id != group.id]
    more = len(others) > CANDIDATES_SHOWN or found.total > CANDIDATES_SCANNED
    return [(u, names.get(u.group_id, "—")) for u in others[:CANDIDATES_SHOWN]], more


async def _detail(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    group: Group,
    *,
    q: str = "",
    page: int = 1,
    add_q: str = "",
    status_code: int = 200,
    **extra: Any,
) -> Response:
    members = await users.search_users(
        session,
        viewer.actor,
        UserFilters(group_id=group.id, q=q.strip() or None),
        PageParams(page=page, per_page=PER_PAGE),
    )
    all_groups = await users.groups_with_sizes(session, viewer.actor)
    names = {g.id: g.name for g, _ in all_groups}
    candidates, more = await _candidates(session, viewer, group, add_q, names)
    context = {
        "group": group,
        "members": members,
        "member_count": await users.group_size(session, viewer.actor.account_id, group.id),
        "default_name": next((g.name for g, _ in all_groups if g.is_default), "Default"),
        "targets": [(g, count) for g, count in all_groups if g.id != group.id],
        "q": q,
        "query": urlencode({"q": q}),
        "add_q": add_q,
        "candidates": candidates,
        "more_candidates": more,
        "can_write": viewer.can(Permission.users_write),
        "members_id": MEMBERS_ID,
        "candidates_id": CANDIDATES_ID,
        **extra,
    }
    target = request.headers.get("hx-target")
    if target == MEMBERS_ID:
        return render(request, "groups/_members.html", context, status_code=status_code)
    if target == CANDIDATES_ID:
        return render(request, "groups/_candidates.html", context, status_code=status_code)
    return render(request, "groups/detail.html", context, status_code=status_code)


@router.get("/{group_id}")
async def group_page(
    request: Request,
    session: DbSession,
    viewer: ReadViewer,
    group_id: str,
    q: Text = "",
    add_q: Text = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    group = await groups.access_group(session, viewer.actor, _group_id(group_id))
    return await _detail(request, session, viewer, group, q=q, page=page, add_q=add_q)


@router.post("/{group_id}")
async def edit_group(
    request: Request,
    session: DbSession,
    viewer: WriteViewer,
    group_id: str,
    name: NameForm = "",
    description: DescriptionForm = "",
) -> Response:
    gid = (await groups.access_group(session, viewer.actor, _group_id(group_id))).id
    try:
        # The Default group's form sends its name unchanged (the service refuses to rename it).
        group = await groups.edit_group(session, viewer.actor, gid, name=name, description=description)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        group = await groups.access_group(session, viewer.actor, gid)
        form = typed(name, description, description_shown=1000)
        return await _detail(
            request, session, viewer, group, status_code=exc.status, edit_error=exc.message, edit_form=form
        )
    return redirect(request, f"/groups/{group.id}", message=f"Group “{group.name}” saved.")


@router.post("/{group_id}/members")
async def add_members(
    request: Request,
    session: DbSession,
    viewer: WriteViewer,
    group_id: str,
    user_ids: Annotated[list[str] | None, Form()] = None,
    return_to: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Move the chosen users into this group: the bulk move of another group's page and "Add people"."""
    target = await groups.access_group(session, viewer.actor, _group_id(group_id))
    target_id, target_name = target.id, target.name
    # Back to the page the form was on (a group id, never a free URL).
    back = f"/groups/{_group_id(return_to) if return_to else target_id}"
    try:
        moved = await users.add_members(session, viewer.actor, target_id, _user_ids(user_ids))
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, back, message=exc.message, kind="error")
    who = moved[0].display_name if len(moved) == 1 else f"{len(moved)} people"
    return redirect(request, back, message=f"Moved {who} to {target_name}.")


@router.post("/{group_id}/delete")
async def delete_group(request: Request, session: DbSession, viewer: WriteViewer, group_id: str) -> Response:
    group = await groups.access_group(session, viewer.actor, _group_id(group_id))
    gid, name = group.id, group.name
    try:
        moved = await membership.delete_group(session, viewer.actor, gid)
        default = await groups.default_group(session, viewer.actor.account_id)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, f"/groups/{gid}", message=exc.message, kind="error")
    if moved:
        message = f"Group {name} deleted; {_people(moved)} moved to {default.name}."
    else:
        message = f"Group {name} deleted; it had no members."
    return redirect(request, "/groups", message=message)
