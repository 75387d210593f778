"""Credits & Allocations, Allocations tab (administrators): every group's budget and what it gave its
members; a group expands to its members (searched, paged), and monthly, extra and auto-approve figures
are edited in place.

An edit is one row at a time: the row's changed fields are sent (htmx PUT), the service checks them,
and the answer is the row as saved plus, out of band, a confirmation banner and the group's fresh
figures. A refused edit answers with an error banner only (``HX-Reswap: none``), so the row keeps what
was typed, and nothing is written."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.pages.credits_requests import parse_credits, readable
from cockpit.console.web import Viewer, discard_changes, page_requires, render
from cockpit.credits import allocations
from cockpit.credits import settings as credits
from cockpit.credits.amounts import grouped
from cockpit.credits.figures import GroupFigures, MemberFigures
from cockpit.kit.errors import CockpitError, InvalidInput, NotFound
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/credits")

ManageViewer = Annotated[Viewer, Depends(page_requires(Permission.credits_manage))]

BODY_ID = "credits-allocations"
PER_PAGE = 20
LABELS = {
    "monthly": "The monthly allocation",
    "extra": "The extra credits",
    "auto_approve_limit": "The auto-approve limit",
}
WHAT = {"monthly": "monthly", "extra": "extra", "auto_approve_limit": "auto-approve"}


def _uuid(value: str, code: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound(code, message) from exc


async def _amounts(request: Request, names: tuple[str, ...]) -> dict[str, Decimal]:
    """The typed amounts that were sent (the row sends its changed fields only), as exact Decimals.

    Read from the form directly: a field sent empty is an error to show, not a field left out."""
    form = await request.form()
    values = {}
    for name in names:
        text = form.get(name)
        if isinstance(text, str):
            values[name] = parse_credits(text[:100], field=name, label=LABELS[name])
    if not values:
        raise InvalidInput("nothing_to_save", "Nothing to save: change a figure first.")
    return values


def _changes(before: dict[str, Decimal], after: dict[str, Decimal]) -> str:
    """ "monthly 10,000 → 12,000, extra 0 → 500" (the fields that changed), or "no change"."""
    parts = [
        f"{WHAT[name]} {grouped(before[name])} → {grouped(after[name])}"
        for name in after
        if before[name] != after[name]
    ]
    return ", ".join(parts) if parts else "no change"


def _group_note(g: GroupFigures) -> str:
    return (
        f"{g.group.name} has distributed {grouped(g.distributed)} of its {grouped(g.budget)} credits; "
        f"{grouped(g.available)} available."
    )


def _context(**extra: Any) -> dict[str, Any]:
    return {"admin": True, "body_id": BODY_ID, **extra}


@router.get("/allocations")
async def allocations_page(request: Request, session: DbSession, viewer: ManageViewer) -> Response:
    overview = await credits.overview(session, viewer.actor)
    groups = overview.groups or []
    context = _context(
        o=overview,
        a=overview.account,
        groups=groups,
        has_budgets=any(g.budget > 0 for g in groups),
    )
    partial = request.headers.get("hx-target") == BODY_ID
    return render(request, "credits/_alloc_body.html" if partial else "credits/allocations.html", context)


@router.get("/allocations/groups/{group_id}/members")
async def group_members(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    group_id: str,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    gid = _uuid(group_id, "group_not_found", "No such group.")
    group = await allocations.group_allocation(session, viewer.actor, gid)
    members = await allocations.group_members(
        session, viewer.actor, gid, PageParams(page=page, per_page=PER_PAGE), q=q
    )
    if members.total and page > members.pages:  # past the end (members left): show the last page
        members = await allocations.group_members(
            session, viewer.actor, gid, PageParams(page=members.pages, per_page=PER_PAGE), q=q
        )
    context = _context(g=group, members=members, q=q.strip())
    partial = request.headers.get("hx-target") == f"alloc-mresults-{gid}"
    template = "credits/_alloc_member_results.html" if partial else "credits/_alloc_members.html"
    return render(request, template, context)


async def _refused(
    request: Request, session: DbSession, viewer: Viewer, exc: CockpitError, subject: str
) -> Response:
    """The refusal as a red banner (out of band); the row is left as typed (``HX-Reswap: none``)."""
    if exc.status in (401, 403, 404):
        raise exc
    await discard_changes(session, viewer)
    context = _context(banner={"kind": "error", "message": f"Not saved. {subject}: {readable(exc, LABELS)}"})
    response = render(request, "credits/_alloc_banner.html", context, status_code=exc.status)
    response.headers["HX-Reswap"] = "none"
    return response


@router.put("/allocations/groups/{group_id}")
async def save_group(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    group_id: str,
) -> Response:
    gid = _uuid(group_id, "group_not_found", "No such group.")
    before = await allocations.group_allocation(session, viewer.actor, gid)
    try:
        values = await _amounts(request, ("monthly", "extra", "auto_approve_limit"))
        after = await allocations.set_group_allocation(session, viewer.actor, gid, **values)
    except CockpitError as exc:
        return await _refused(request, session, viewer, exc, before.group.name)
    old = {"monthly": before.monthly, "extra": before.extra, "auto_approve_limit": before.auto_approve_limit}
    new = {"monthly": after.monthly, "extra": after.extra, "auto_approve_limit": after.auto_approve_limit}
    overview = await credits.overview(session, viewer.actor)
    message = (
        f"Allocation saved: {after.group.name} — {_changes(old, {k: new[k] for k in values})}. "
        f"Budget {grouped(after.budget)} credits; {grouped(after.available)} available to distribute."
    )
    context = _context(
        g=after,
        a=overview.account,
        has_budgets=any(g.budget > 0 for g in overview.groups or []),
        banner={"kind": "success", "message": message},
    )
    return render(request, "credits/_alloc_group_saved.html", context)


@router.put("/allocations/members/{user_id}")
async def save_member(
    request: Request,
    session: DbSession,
    viewer: ManageViewer,
    user_id: str,
) -> Response:
    uid = _uuid(user_id, "user_not_found", "No such user.")
    before = await allocations.member_allocation(session, viewer.actor, uid)
    try:
        values = await _amounts(request, ("monthly", "extra"))
        after: MemberFigures = await allocations.set_member_allocation(session, viewer.actor, uid, **values)
    except CockpitError as exc:
        return await _refused(request, session, viewer, exc, before.user.display_name)
    group = await allocations.group_allocation(session, viewer.actor, after.user.group_id)
    old = {"monthly": before.monthly, "extra": before.extra}
    new = {"monthly": after.monthly, "extra": after.extra}
    message = (
        f"Allocation saved: {after.user.display_name} — {_changes(old, {k: new[k] for k in values})}. "
        + _group_note(group)
    )
    context = _context(
        m=after, g=group, open=True, banner={"kind": "success", "message": message}, saved=True
    )
    return render(request, "credits/_alloc_member_saved.html", context)
