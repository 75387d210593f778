"""Invite many people from a CSV: upload, background processing with progress, per-row report."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response

from cockpit.console.web import AdminViewer, discard_changes, render
from cockpit.imports import import_jobs
from cockpit.imports import service as imports
from cockpit.kit.errors import CockpitError, InvalidInput
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/users/import")

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
SAMPLE = (
    "email,name,role,group,seats\n"
    "jane.doe@example.com,Jane Doe,member,Engineering,copilot\n"
    "john.roe@example.com,John Roe,admin,,copilot;console\n"
)


@router.get("")
async def import_page(request: Request, session: DbSession, viewer: AdminViewer) -> Response:
    jobs = await import_jobs.recent_jobs(session, viewer.actor)
    return render(request, "imports/index.html", {"jobs": jobs, "batch": imports.BATCH_SIZE})


@router.get("/sample.csv")
async def sample_csv(viewer: AdminViewer) -> Response:
    return Response(
        SAMPLE,
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="invite-sample.csv"'},
    )


@router.post("")
async def start_import(
    request: Request,
    session: DbSession,
    viewer: AdminViewer,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        if file is None or not file.filename:
            raise InvalidInput("csv_missing", "Choose a CSV file to import.")
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise InvalidInput(
                "csv_too_large", "The file is larger than 20 MB: split it and import the parts."
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput("csv_encoding", "The file is not UTF-8 text. Save it as 'CSV UTF-8'.") from exc
        job, _rows = await import_jobs.create_job(session, viewer.actor, filename=file.filename, content=text)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        jobs = await import_jobs.recent_jobs(session, viewer.actor)
        return render(
            request,
            "imports/index.html",
            {"jobs": jobs, "batch": imports.BATCH_SIZE, "error": exc.message},
            status_code=exc.status,
        )
    # The import was queued with the file (import_jobs.create_job): a worker runs it after commit.
    response = Response(status_code=303, headers={"Location": f"/users/import/{job.id}"})
    if request.headers.get("hx-request"):
        response = Response(status_code=204, headers={"HX-Redirect": f"/users/import/{job.id}"})
    return response


@router.get("/{job_id}")
async def import_status(
    request: Request, session: DbSession, viewer: AdminViewer, job_id: uuid.UUID
) -> Response:
    job = await import_jobs.access_job(session, viewer.actor, job_id)
    partial = request.headers.get("hx-target") == "import-progress"
    template = "imports/_progress.html" if partial else "imports/job.html"
    return render(request, template, {"job": job, "problems": job.report[:1000]})


@router.get("/{job_id}/report.csv")
async def import_report(session: DbSession, viewer: AdminViewer, job_id: uuid.UUID) -> Response:
    job = await import_jobs.access_job(session, viewer.actor, job_id)
    return Response(
        imports.report_csv(job.report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-report-{job.id}.csv"'},
    )
