"""Projects: the list (everyone sees theirs, admins all), one project's page with its members."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.named import DescriptionForm, NameForm, create_refused
from cockpit.console.web import SignedIn, Viewer, discard_changes, page_requires, path_id, redirect, render
from cockpit.kit.errors import CockpitError, InvalidInput, NotFound
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import DbSession
from cockpit.membership import service as membership
from cockpit.projects import service as projects
from cockpit.projects.models import Project, ProjectMember, ProjectRole
from cockpit.users import service as users
from cockpit.users.models import User, UserStatus
from cockpit.users.queries import UserFilters

router = APIRouter(prefix="/projects")

ManagerViewer = Annotated[Viewer, Depends(page_requires(Permission.projects_manage))]

ROLE_LABELS = {ProjectRole.project_admin: "Project admin", ProjectRole.project_member: "Project member"}
# The "Add member" select lists at most this many people; beyond that, type an e-mail.
PICKER_LIMIT = 500


def _project_id(value: str) -> uuid.UUID:
    return path_id(value, "project_not_found", "No such project.")


def _member_id(value: str) -> uuid.UUID:
    return path_id(value, "project_member_not_found", "This user is not a member of the project.")


def _role(value: str) -> ProjectRole:
    try:
        return ProjectRole(value)
    except ValueError as exc:
        raise InvalidInput("invalid_role", "Choose a project role.") from exc


def _can_manage(viewer: Viewer, members: list[tuple[ProjectMember, User]]) -> bool:
    """Mirrors access_project(manage=True), to show the forms only to those the service lets through."""
    if viewer.can(Permission.projects_manage):
        return True
    return any(m.user_id == viewer.actor.user_id and m.role is ProjectRole.project_admin for m, _ in members)


# ---- the list ----


async def _index(
    request: Request, session: DbSession, viewer: Viewer, *, status_code: int = 200, **extra: Any
) -> Response:
    rows = await projects.list_projects(session, viewer.actor)
    return render(
        request,
        "projects/index.html",
        {"projects": rows, "can_create": viewer.can(Permission.projects_manage), **extra},
        status_code=status_code,
    )


@router.get("")
async def projects_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    return await _index(request, session, viewer)


@router.post("")
async def create_project(
    request: Request,
    session: DbSession,
    viewer: ManagerViewer,
    name: NameForm = "",
    description: DescriptionForm = "",
) -> Response:
    try:
        project = await projects.create_project(session, viewer.actor, name=name, description=description)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _index(
            request, session, viewer, **create_refused(exc, name, description, description_shown=2000)
        )
    return redirect(request, f"/projects/{project.id}", message=f"Project “{project.name}” created.")


# ---- one project ----


async def _candidates(session: DbSession, viewer: Viewer, member_ids: set[uuid.UUID]) -> list[User] | None:
    """People to pick from for "Add member"; None when the viewer may not list the account's users."""
    if not viewer.can(Permission.users_read):
        return None
    found = await users.search_users(
        session, viewer.actor, UserFilters(status=UserStatus.active), PageParams(per_page=PICKER_LIMIT)
    )
    if found.total > PICKER_LIMIT:
        return None  # too many for a select: the e-mail field scales
    return [u for u in found.items if u.id not in member_ids]


@router.get("/{project_id}")
async def project_page(request: Request, session: DbSession, viewer: SignedIn, project_id: str) -> Response:
    project = await projects.access_project(session, viewer.actor, _project_id(project_id))
    members = await projects.list_members(session, viewer.actor, project.id)
    can_manage = _can_manage(viewer, members)
    context = {
        "project": project,
        "members": members,
        "can_manage": can_manage,
        "can_delete": viewer.can(Permission.projects_manage),
        "my_role": next((m.role for m, _ in members if m.user_id == viewer.actor.user_id), None),
        "admins": sum(1 for m, _ in members if m.role is ProjectRole.project_admin),
        "roles": list(ProjectRole),
        "role_labels": ROLE_LABELS,
        "candidates": (
            await _candidates(session, viewer, {m.user_id for m, _ in members}) if can_manage else None
        ),
    }
    return render(request, "projects/detail.html", context)


async def _access(session: DbSession, viewer: Viewer, project_id: str) -> Project:
    """The project, or the 404 page: forms of projects one may not see fail like their pages."""
    return await projects.access_project(session, viewer.actor, _project_id(project_id))


@router.post("/{project_id}")
async def edit_project(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    project_id: str,
    name: NameForm = "",
    description: DescriptionForm = "",
) -> Response:
    pid = (await _access(session, viewer, project_id)).id
    url = f"/projects/{pid}"
    try:
        project = await projects.edit_project(session, viewer.actor, pid, name=name, description=description)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, url, message=exc.message, kind="error")
    return redirect(request, url, message=f"Project “{project.name}” saved.")


async def _user_for(session: DbSession, viewer: Viewer, user_id: str, email: str) -> uuid.UUID:
    """The person to add: picked from the list, or typed as an e-mail (for project admins)."""
    if user_id:
        try:
            return uuid.UUID(user_id)
        except ValueError as exc:
            raise InvalidInput("invalid_input", "Choose a person.") from exc
    if not email.strip():
        raise InvalidInput("invalid_input", "Choose a person or enter their e-mail address.")
    user = await users.user_by_email(session, email)
    # E-mail lookup is installation-wide: people of other organisations are "not found" here.
    if user is None or user.account_id != viewer.actor.account_id:
        raise NotFound("user_not_found", f"Nobody in {viewer.account.name} has the e-mail {email.strip()}.")
    return user.id


@router.post("/{project_id}/members")
async def add_member(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    project_id: str,
    user_id: Annotated[str, Form(max_length=40)] = "",
    email: Annotated[str, Form(max_length=300)] = "",
    role: Annotated[str, Form(max_length=40)] = ProjectRole.project_member.value,
    all_assistants: Annotated[bool, Form()] = False,
) -> Response:
    project = await _access(session, viewer, project_id)
    pid, url = project.id, f"/projects/{project.id}"
    try:
        uid = await _user_for(session, viewer, user_id, email)
        existing = {m.user_id: u for m, u in await projects.list_members(session, viewer.actor, pid)}
        if uid in existing:
            raise InvalidInput(
                "already_member",
                f"{existing[uid].display_name} is already a member: change their role in the table.",
            )
        member, user, _ = await projects.set_member(
            session, viewer.actor, pid, uid, role=_role(role), all_assistants=all_assistants
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, url, message=exc.message, kind="error")
    return redirect(request, url, message=f"{user.display_name} added as {ROLE_LABELS[member.role].lower()}.")


@router.post("/{project_id}/members/{user_id}")
async def change_member(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    project_id: str,
    user_id: str,
    role: Annotated[str, Form(max_length=40)] = "",
    all_assistants: Annotated[bool, Form()] = False,
) -> Response:
    project = await _access(session, viewer, project_id)
    pid, url = project.id, f"/projects/{project.id}"
    try:
        member, user = await projects.get_member(session, viewer.actor, pid, _member_id(user_id))
        member, user, _ = await projects.set_member(
            session, viewer.actor, pid, user.id, role=_role(role), all_assistants=all_assistants
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, url, message=exc.message, kind="error")
    access = "all assistants" if member.all_assistants else "only assigned assistants"
    message = f"{user.display_name}: {ROLE_LABELS[member.role].lower()}, {access}."
    return redirect(request, url, message=message)


@router.post("/{project_id}/members/{user_id}/remove")
async def remove_member(
    request: Request, session: DbSession, viewer: SignedIn, project_id: str, user_id: str
) -> Response:
    project = await _access(session, viewer, project_id)
    pid, name, url = project.id, project.name, f"/projects/{project.id}"
    try:
        _, user = await projects.get_member(session, viewer.actor, pid, _member_id(user_id))
        uid, who = user.id, user.display_name
        await projects.remove_member(session, viewer.actor, pid, uid)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, url, message=exc.message, kind="error")
    if uid == viewer.actor.user_id and not viewer.can(Permission.projects_manage):
        url = "/projects"  # they left the project: its page is no longer theirs to see
    return redirect(request, url, message=f"{who} removed from {name}.")


@router.post("/{project_id}/delete")
async def delete_project(
    request: Request, session: DbSession, viewer: ManagerViewer, project_id: str
) -> Response:
    project = await _access(session, viewer, project_id)
    pid, name = project.id, project.name
    try:
        await membership.delete_project(session, viewer.actor, pid)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, f"/projects/{pid}", message=exc.message, kind="error")
    return redirect(request, "/projects", message=f"Project “{name}” deleted.")
