"""``exports.make``: an export's file, made by the job queue.

Idempotent: a finished export is not made again; a run that died midway starts over (its partial file
is written under a temporary name and only renamed when complete). Progress is saved as it goes (the
raw calls: every batch), so that the console can show a progress bar. An export that keeps failing
ends as ``failed`` with its error.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics import labels
from cockpit.analytics.filters import Scope
from cockpit.analytics.service import Labeler
from cockpit.events.service import emit
from cockpit.exports import build
from cockpit.exports.models import Export, ExportFormat, ExportStatus, ExportView
from cockpit.exports.service import KEEP, MAKE, filters_from_json, path_of
from cockpit.jobs.registry import Handler, JobContext, PermanentJobError, registry
from cockpit.kit.db import read_only
from cockpit.kit.time import day_text
from cockpit.reports.csvs import report_csv
from cockpit.reports.pdf import report_pdf
from cockpit.reports.xlsx import report_xlsx
from cockpit.tenancy.models import Account
from cockpit.users.models import User

log = logging.getLogger("cockpit.exports")
TITLES = {ExportView.cost: "Cost tracking", ExportView.calls: "Calls"}
FILTER_LABELS = {
    "group_id": "Group",
    "project_id": "Project",
    "user_id": "User",
    "api_token_id": "API token",
    "model": "Model",
    "agent": "Agent",
    "operation": "Operation",
    "status": "Status",
}


async def _save(ctx: JobContext, export_id: uuid.UUID, **values: object) -> None:
    async with ctx.sessionmaker() as session, session.begin():
        await session.execute(update(Export).where(Export.id == export_id).values(**values))


def _file_name(view: ExportView, fmt: ExportFormat, stamp: str) -> str:
    suffix = "zip" if fmt is ExportFormat.csv and view is ExportView.cost else fmt.value
    return f"cockpit-{view.value}-{stamp}.{suffix}"


def make_task(labeler: Labeler) -> Handler:
    async def make(ctx: JobContext) -> None:
        export_id = uuid.UUID(str(ctx.payload.get("export_id")))
        # Reads only, in read-only transactions: progress is saved meanwhile (on SQLite too).
        async with ctx.sessionmaker() as session, read_only(session):
            export = await session.get(Export, export_id)
            if export is None or export.status == ExportStatus.done.value:
                return  # gone (its account was deleted) or made already
            account = await session.get(Account, export.account_id)
            assert account is not None
            account_name, wanted = account.name, dict(export.filters)
            try:
                zone = ZoneInfo(account.timezone or "UTC")
            except (KeyError, ValueError):
                zone = ZoneInfo("UTC")
            try:
                filters = filters_from_json(wanted)
            except (KeyError, ValueError, TypeError) as exc:
                raise PermanentJobError(f"the export's filters cannot be read: {exc}") from None
            scope = Scope(export.account_id, project_id=export.scope_project_id, user_id=export.scope_user_id)
            fmt, view = ExportFormat(export.format), ExportView(export.view)
            file_name = _file_name(view, fmt, ctx.now().astimezone(zone).strftime("%Y-%m-%d-%H%M"))
            final = path_of(ctx.settings, export, file_name)
        await _save(ctx, export_id, status=ExportStatus.running.value, progress=0)

        async def progress(done: int, total: int) -> None:
            percent = min(99, done * 100 // total) if total else 99
            await _save(ctx, export_id, progress=percent, rows=done)

        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(final.name + ".part")
        async with ctx.sessionmaker() as session, read_only(session):
            if view is ExportView.calls:
                rows = await build.write_calls(
                    session, scope, filters, labeler, path=partial, xlsx=fmt is ExportFormat.xlsx, zone=zone,
                    progress=progress,
                )  # fmt: skip
            else:
                text = [
                    (FILTER_LABELS.get(k, k), str(v))
                    for k, v in wanted.items()
                    if k not in ("from", "to", "scheduled")
                ]
                report = await build.cost_report(
                    session, scope, filters, labeler, title=TITLES[view], account=account_name, zone=zone,
                    filters_text=text, now=ctx.now(),
                )  # fmt: skip
                if fmt is ExportFormat.pdf:
                    data = report_pdf(report)
                elif fmt is ExportFormat.xlsx:
                    data = report_xlsx(report)
                else:
                    _, data = report_csv(report)
                partial.write_bytes(data)
                rows = sum(len(t.rows) for t in report.tables())
        partial.replace(final)
        done = {"status": ExportStatus.done.value, "progress": 100, "rows": rows, "file_name": file_name}
        async with ctx.sessionmaker() as session, session.begin():  # done and announced together
            await session.execute(
                update(Export)
                .where(Export.id == export_id)
                .values(
                    **done,
                    size_bytes=final.stat().st_size,
                    finished_at=ctx.now(),
                    expires_at=ctx.now() + KEEP,
                    error=None,
                )
            )
            await _announce(
                session, ctx, export_id, f"{TITLES[view]}, {_period(wanted, zone)} ({fmt.value.upper()})"
            )

    return make


def _period(filters: dict[str, object], zone: ZoneInfo) -> str:
    start, end = (datetime.fromisoformat(str(filters[k])) for k in ("from", "to"))
    first, last = day_text(start, zone.key), day_text(end - timedelta(microseconds=1), zone.key)
    return first if first == last else f"{first} to {last}"


async def _announce(session: AsyncSession, ctx: JobContext, export_id: uuid.UUID, name: str) -> None:
    """``export.ready`` for the person who asked; ``report.ready`` for the administrators when it is a
    scheduled report (asked for by the system)."""
    export = await session.get(Export, export_id)
    if export is None:
        return
    url = f"{ctx.settings.base_url.rstrip('/')}/exports/{export.id}/download"
    if export.requested_by is None and (export.filters or {}).get("scheduled"):
        period = name.split(", ", 1)[-1].rsplit(" (", 1)[0]
        await emit(
            session, export.account_id, "report.ready",
            {"report_name": name, "period": period, "download_url": url},
            dedupe_key=f"report-ready:{export.id}",
        )  # fmt: skip
        return
    person = await session.get(User, export.requested_by) if export.requested_by else None
    if person is None:
        return
    await emit(
        session,
        export.account_id,
        "export.ready",
        {
            "person_name": person.display_name,
            "person_email": person.email,
            "export_name": name,
            "download_url": url,
        },
        person_id=person.id,
        actor_id=person.id,
        dedupe_key=f"export:{export.id}",
    )


async def _failed(ctx: JobContext, error: str) -> None:
    export_id = uuid.UUID(str(ctx.payload.get("export_id")))
    await _save(ctx, export_id, status=ExportStatus.failed.value, error=error[:500], finished_at=ctx.now())


registry.register(MAKE, make_task(labels.names), max_attempts=3, on_dead=_failed)
