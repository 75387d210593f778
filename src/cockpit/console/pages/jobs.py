"""OPERATIONS → Jobs (the periodic schedules and the account's recent jobs) and OPERATIONS → Events
(every execution of a job, with its error) (issue 16; docs/jobs.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.web import Viewer, local_datetime, page_requires, path_id, redirect, render
from cockpit.jobs import runs, schedules, service
from cockpit.jobs.models import RunStatus
from cockpit.jobs.registry import registry
from cockpit.kit.errors import InvalidInput
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import DbSession

router = APIRouter()

JobsViewer = Annotated[Viewer, Depends(page_requires(Permission.jobs_manage))]
Text = Annotated[str, Query(max_length=100)]
RUN_STATUSES = [s.value for s in RunStatus]


def duration_text(ms: int | None) -> str:
    """A duration as people read it: 840 ms, 12.4 s, 3 min 5 s."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:,} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes:,} min {seconds} s"


# ---- Jobs ----


@router.get("/jobs")
async def jobs_page(request: Request, session: DbSession, viewer: JobsViewer) -> Response:
    views, operator = await schedules.list_schedules(session, viewer.actor, request.app.state.settings)
    recent = await service.search_jobs(
        session, viewer.actor, params=PageParams(page=1, per_page=25), include_system=operator
    )
    return render(
        request,
        "jobs/index.html",
        {"schedules": views, "operator": operator, "jobs": recent, "duration": duration_text},
    )


@router.post("/jobs/{kind}/enable")
async def enable_schedule(request: Request, session: DbSession, viewer: JobsViewer, kind: str) -> Response:
    await schedules.set_schedule_enabled(session, viewer.actor, kind, enabled=True)
    return redirect(request, "/jobs", message=f"“{kind}” is enabled: it runs from its next period.")


@router.post("/jobs/{kind}/disable")
async def disable_schedule(request: Request, session: DbSession, viewer: JobsViewer, kind: str) -> Response:
    await schedules.set_schedule_enabled(session, viewer.actor, kind, enabled=False)
    return redirect(request, "/jobs", message=f"“{kind}” is disabled: workers no longer queue it.")


@router.post("/jobs/{kind}/run")
async def run_schedule(request: Request, session: DbSession, viewer: JobsViewer, kind: str) -> Response:
    _job, queued = await schedules.run_schedule_now(session, viewer.actor, kind)
    message = f"“{kind}” was queued and runs in a moment." if queued else f"“{kind}” is already queued."
    return redirect(request, "/events?kind=" + kind, message=message, kind="success" if queued else "info")


# ---- Events ----


@router.get("/events")
async def events_page(
    request: Request,
    session: DbSession,
    viewer: JobsViewer,
    kind: Text = "",
    status: Text = "",
    since: Text = "",
    until: Text = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    form = {"kind": kind, "status": status, "since": since, "until": until}
    error = None
    try:
        if status and status not in RUN_STATUSES:
            raise InvalidInput("invalid_input", "Unknown status.")
        filters = runs.RunFilters(
            kind=kind or None,
            status=RunStatus(status) if status else None,
            since=local_datetime(since, viewer, "since"),
            until=local_datetime(until, viewer, "until"),
        )
    except InvalidInput as exc:
        error, filters = exc.message, runs.RunFilters()
    results = await runs.search_runs(session, viewer.actor, filters, PageParams(page=page, per_page=50))
    context: dict[str, Any] = {
        "page": results,
        "form": form,
        "error": error,
        "kinds": sorted(registry.kinds),
        "statuses": RUN_STATUSES,
        "retryable": runs.RETRYABLE,
        "duration": duration_text,
    }
    partial = request.headers.get("hx-target") == "events-results"
    return render(request, "jobs/_events.html" if partial else "jobs/events.html", context)


@router.get("/events/{run_id}")
async def event_page(request: Request, session: DbSession, viewer: JobsViewer, run_id: str) -> Response:
    run = await runs.access_run(session, viewer.actor, path_id(run_id, "job_run_not_found", "No such run."))
    job = await runs.run_job(session, run)
    context = {"run": run, "job": job, "retryable": runs.RETRYABLE, "duration": duration_text}
    return render(request, "jobs/event.html", context)


@router.post("/events/{run_id}/retry")
async def retry_event(request: Request, session: DbSession, viewer: JobsViewer, run_id: str) -> Response:
    run = path_id(run_id, "job_run_not_found", "No such run.")
    job = await runs.retry_run(session, viewer.actor, run)
    return redirect(request, f"/events?kind={job.kind}", message=f"“{job.kind}” was queued to run again.")
