"""FINANCE → Cost tracking (account administrators: the whole account) and Project → Analytics
(the project's members and the account's administrators: that project), one implementation.

Both call the analytics service the API uses (``cockpit.analytics.service``) with the viewer's scope,
and ask for exports of the view through ``cockpit.exports.service`` (the ``export.reports`` policy,
its audit entry, the job queue); the export's progress is polled with htmx until its link appears.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from cockpit.analytics import service
from cockpit.analytics.filters import Scope
from cockpit.analytics.labels import names
from cockpit.analytics.service import Metric
from cockpit.auth import tokens
from cockpit.authz.permissions import Permission
from cockpit.console.pages import analytics_view as shown
from cockpit.console.pages.analytics_filters import (
    DIMENSIONS,
    DIRECT,
    FILTER_FIELDS,
    OPERATIONS,
    PIVOT_COLUMNS,
    PIVOT_VALUES,
    RANGES,
    SERIES,
    SORTS,
    STATUSES,
    View,
    read_view,
    zone_of,
)
from cockpit.console.web import SignedIn, Viewer, discard_changes, page_requires, path_id, redirect, render
from cockpit.exports import service as exports
from cockpit.exports.models import ExportFormat, ExportView
from cockpit.groups import service as groups
from cockpit.kit.errors import CockpitError, InvalidInput
from cockpit.kit.web import DbSession
from cockpit.projects import service as projects
from cockpit.projects.models import Project
from cockpit.usage import service as usage
from cockpit.users import service as users

router = APIRouter()

CostViewer = Annotated[Viewer, Depends(page_requires(Permission.usage_read_all))]
PER_PAGE = 20
PIVOT_PER_PAGE = 25
PICKER_LIMIT = 1000
FORMATS = {ExportFormat.pdf.value: "PDF", ExportFormat.xlsx.value: "Excel", ExportFormat.csv.value: "CSV"}
CALL_FORMATS = {ExportFormat.csv.value: "CSV", ExportFormat.xlsx.value: "Excel"}  # every call, one row each


async def _choices(
    session: DbSession, viewer: Viewer, project: Project | None, view: View, scope: Scope
) -> dict[str, Any]:
    """The filter bar's options: what the viewer may see (a project's members, on its page)."""
    actor = viewer.actor
    admin = viewer.can(Permission.usage_read_all)
    if project is None or admin:
        people = [(str(u.id), u.display_name if u.name else u.email) for u in
                  await users.list_all(session, actor.account_id, limit=PICKER_LIMIT)]  # fmt: skip
    else:
        people = [
            (str(u.id), u.display_name) for _, u in await projects.list_members(session, actor, project.id)
        ]
    agents = await service.agents_in(session, scope, view.filters)
    token_rows = await tokens.token_choices(session, actor)
    options: dict[str, Any] = {
        "groups": [(str(g.id), g.name) for g in await groups.groups_of(session, actor.account_id)]
        if viewer.can(Permission.users_read) else [],
        "projects": [(str(p.id), p.name) for p, _ in await projects.list_projects(session, actor)]
        if project is None else [],
        "people": people,
        "models": await usage.model_names(session, actor),
        "agents": [(DIRECT, "Direct API"), *((a, a) for a in agents)],
        "tokens": [(str(t.id), f"{t.name} ({email})" if admin else t.name) for t, email in token_rows],
    }  # fmt: skip

    def label(kind: str, value: str, fallback: str) -> str:
        return next((name for key, name in options[kind] if key == value), fallback if value else "")

    options["labels"] = {
        "user": label("people", view.form["user"], "Someone else"),
        "agent": label("agents", view.form["agent"], view.form["agent"]),
        "token": label("tokens", view.form["token"], "Another token"),
    }
    return options


async def _page(request: Request, session: DbSession, viewer: Viewer, project: Project | None) -> Response:
    view = await read_view(session, viewer.account, request.query_params, with_project=project is None)
    scope = await service.scope_for(session, viewer.actor, project.id if project else None)
    zone = zone_of(viewer.account)
    base = f"/projects/{project.id}/analytics" if project else "/cost-tracking"
    f = view.filters
    pid = str(project.id) if project else None

    def calls(**extra: str) -> str:
        return shown.calls_url(view, zone, pid, **extra)

    summary = await service.summary(session, scope, f)
    offset = (view.page - 1) * PER_PAGE
    breakdown = await service.breakdown(
        session, scope, f, view.by, names, sort=view.sort, limit=PER_PAGE, offset=offset
    )
    stack_metric = Metric.requests if view.series in ("requests", "requests_per_user") else Metric.cost
    if view.series in ("tokens", "errors"):
        stack_metric = Metric(view.series)
    line = await service.timeline(
        session, scope, f, zone, names, stack_by=view.stack, stack_metric=stack_metric
    )
    top_cost = await service.top_users(session, scope, f, names, metric=Metric.cost)
    top_requests = await service.top_users(session, scope, f, names, metric=Metric.requests)
    table = await service.pivot(
        session, scope, f, names, columns_by=view.pivot, value=view.value, limit=PIVOT_PER_PAGE,
        offset=(view.ppage - 1) * PIVOT_PER_PAGE,
    )  # fmt: skip
    by_assistant = await service.assistants(session, scope, f, names)
    rows, chart = shown.breakdown_rows(breakdown, view, base, calls)
    dims = {k: v for k, v in DIMENSIONS.items() if project is None or k != "project"}
    context: dict[str, Any] = {
        "project": project,
        "base": base,
        "view": view,
        "form": view.form,
        "errors": view.errors,
        "any_calls": summary.current.requests > 0,
        "ever_calls": await usage.has_calls(session, viewer.actor),
        "indicators": shown.indicators(summary),
        "previous": f.previous(),
        "breakdown": breakdown,
        "rows": rows,
        "breakdown_chart": chart,
        "breakdown_pages": -(-breakdown.count // PER_PAGE),
        "timeline": shown.timeline_chart(line, view.series, zone, viewer.locale),
        "top_cost": shown.top_rows(top_cost, calls),
        "top_requests": shown.top_rows(top_requests, calls),
        "pivot": shown.pivot_table(table, calls),
        "pivot_pages": -(-table.count // PIVOT_PER_PAGE),
        "assistants": shown.assistant_rows(by_assistant, calls),
        "calls_url": calls(),
        "ranges": RANGES, "operations": OPERATIONS, "statuses": STATUSES, "dimensions": dims,
        "sorts": SORTS, "series": SERIES, "pivot_columns": PIVOT_COLUMNS, "pivot_values": PIVOT_VALUES,
        "formats": FORMATS, "call_formats": CALL_FORMATS, "filter_fields": FILTER_FIELDS,
        "narrowable": view.by in shown.NARROWS,
        **await _choices(session, viewer, project, view, scope),
    }  # fmt: skip
    return render(request, "analytics/page.html", context)


async def _project(session: DbSession, viewer: Viewer, project_id: str) -> Project:
    """The project, or the 404 page (another account's, or one the viewer is not a member of)."""
    return await projects.access_project(
        session, viewer.actor, path_id(project_id, "project_not_found", "No such project.")
    )


@router.get("/cost-tracking")
async def cost_tracking(request: Request, session: DbSession, viewer: CostViewer) -> Response:
    return await _page(request, session, viewer, None)


@router.get("/projects/{project_id}/analytics")
async def project_analytics(
    request: Request, session: DbSession, viewer: SignedIn, project_id: str
) -> Response:
    return await _page(request, session, viewer, await _project(session, viewer, project_id))


# ---- exports ----


async def _export(request: Request, session: DbSession, viewer: Viewer, project: Project | None) -> Response:
    form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    view = await read_view(session, viewer.account, form, with_project=project is None)
    try:
        every_call = form.get("view") == ExportView.calls.value
        if form.get("format") not in (CALL_FORMATS if every_call else FORMATS):
            choose = "Choose CSV or Excel." if every_call else "Choose PDF, Excel or CSV."
            raise InvalidInput("invalid_input", choose)
        export = await exports.request_export(
            session, viewer.actor, format=ExportFormat(form["format"]),
            view=ExportView.calls if every_call else ExportView.cost,
            filters=view.filters, project_id=project.id if project else None,
        )  # fmt: skip
    except CockpitError as exc:
        await discard_changes(session, viewer)
        if not request.headers.get("hx-request"):
            return redirect(request, view.url(request.url.path.removesuffix("/exports")), message=exc.message,
                            kind="error")  # fmt: skip
        return render(request, "analytics/_export.html", {"export": None, "error": exc.message})
    if not request.headers.get("hx-request"):
        return redirect(request, f"/exports/{export.id}", message="The export is being made.")
    return render(request, "analytics/_export.html", {"export": export, "error": None})


@router.post("/cost-tracking/exports")
async def export_cost_tracking(request: Request, session: DbSession, viewer: CostViewer) -> Response:
    return await _export(request, session, viewer, None)


@router.post("/projects/{project_id}/analytics/exports")
async def export_project(request: Request, session: DbSession, viewer: SignedIn, project_id: str) -> Response:
    return await _export(request, session, viewer, await _project(session, viewer, project_id))


def _export_id(value: str) -> uuid.UUID:
    return path_id(value, "export_not_found", "No such export.")


@router.get("/exports/{export_id}")
async def export_progress(request: Request, session: DbSession, viewer: SignedIn, export_id: str) -> Response:
    """The export's progress: a fragment polled by the page (or a small page of its own)."""
    export = await exports.get_export(session, viewer.actor, _export_id(export_id))
    template = "analytics/_export.html" if request.headers.get("hx-request") else "analytics/export.html"
    return render(request, template, {"export": export, "error": None})


@router.get("/exports/{export_id}/download")
async def export_download(request: Request, session: DbSession, viewer: SignedIn, export_id: str) -> Response:
    export, path = await exports.download(
        session, viewer.actor, request.app.state.settings, _export_id(export_id)
    )
    await session.commit()  # the download's audit entry, before the file is sent
    media = exports.MEDIA.get(path.suffix.lstrip("."), "application/octet-stream")
    return FileResponse(path, media_type=media, filename=export.file_name or path.name)
