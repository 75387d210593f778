from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cockpit.audit import service as audit
from cockpit.audit.queries import AuditFilters
from cockpit.audit.web import csv_response
from cockpit.console.names import audit_names
from cockpit.console.web import AuditViewer, Viewer, local_datetime, render
from cockpit.kit.errors import InvalidInput
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import DbSession
from cockpit.policies.service import feature_allowed, require_feature
from cockpit.users import service as users_service

router = APIRouter(prefix="/audit")


def _filters(viewer: Viewer, q: str, action: str, actor: str, since: str, until: str) -> AuditFilters:
    actor_id = None
    if actor:
        try:
            actor_id = uuid.UUID(actor)
        except ValueError as exc:
            raise InvalidInput("invalid_input", "Unknown actor.") from exc
    return AuditFilters(
        q=q.strip() or None,
        action=action or None,
        actor_id=actor_id,
        since=local_datetime(since, viewer, "since"),
        until=local_datetime(until, viewer, "until"),
    )


Text = Annotated[str, Query(max_length=200)]


@router.get("")
async def audit_page(
    request: Request,
    session: DbSession,
    viewer: AuditViewer,
    q: Text = "",
    action: Text = "",
    actor: Text = "",
    since: Text = "",
    until: Text = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    form = {"q": q, "action": action, "actor": actor, "since": since, "until": until}
    error = None
    try:
        filters = _filters(viewer, q, action, actor, since, until)
    except InvalidInput as exc:
        error, filters = exc.message, AuditFilters()
    results = await audit.search(session, viewer.actor, filters, PageParams(page=page, per_page=50))
    context = {
        "page": results,
        "names": await audit_names(session, viewer.actor.account_id, results.items),
        "form": form,
        "error": error,
        "actions": await audit.actions(session, viewer.actor),
        "actors": await users_service.list_all(session, viewer.actor.account_id),
        # An access policy may deny exports: no "Export CSV" then.
        "export_allowed": await feature_allowed(session, viewer.actor, "export.reports"),
    }
    partial = request.headers.get("hx-target") == "audit-results"
    context["partial"] = partial
    return render(request, "audit/_results.html" if partial else "audit/index.html", context)


@router.get("/export.csv")
async def audit_export(
    request: Request,
    session: DbSession,
    viewer: AuditViewer,
    q: Text = "",
    action: Text = "",
    actor: Text = "",
    since: Text = "",
    until: Text = "",
) -> Response:
    await require_feature(session, viewer.actor, "export.reports")
    return csv_response(request, viewer.actor, _filters(viewer, q, action, actor, since, until))


@router.get("/{entry_id}")
async def audit_entry(
    request: Request, session: DbSession, viewer: AuditViewer, entry_id: uuid.UUID
) -> Response:
    entry = await audit.get_entry(session, viewer.actor, entry_id)
    names = await audit_names(session, viewer.actor.account_id, [entry])
    return render(request, "audit/entry.html", {"entry": entry, "names": names})
