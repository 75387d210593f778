"""Asking for an export and fetching it.

An export is allowed where the ``export.reports`` policy allows it; it covers what the requester may
see at the time they ask (their scope is kept with it). It is made by the job queue
(``exports.make``) and its file is kept under the data directory for ``KEEP`` days. People see
their own exports; administrators (``usage:read_all``) every export of the account. Every request
is audited.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics.filters import Filters, Operation, Status
from cockpit.analytics.service import scope_for
from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.exports.models import Export, ExportFormat, ExportStatus, ExportView
from cockpit.jobs import service as jobs
from cockpit.kit.errors import Conflict, InvalidInput, NotFound
from cockpit.kit.time import utcnow
from cockpit.policies.service import require_feature

MAKE = "exports.make"  # the job kind (cockpit/exports/tasks.py)
KEEP = timedelta(days=7)
MAX_PENDING = 3  # queued or running exports per person
SUFFIX = {ExportFormat.pdf: "pdf", ExportFormat.xlsx: "xlsx", ExportFormat.csv: "zip"}
MEDIA = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "zip": "application/zip",
    "csv": "text/csv; charset=utf-8",
}


def filters_to_json(f: Filters) -> dict[str, Any]:
    return {"from": f.start.isoformat(), "to": f.end.isoformat(), **f.described()}


def filters_from_json(values: dict[str, Any]) -> Filters:
    def ident(name: str) -> uuid.UUID | None:
        return uuid.UUID(values[name]) if values.get(name) else None

    return Filters(
        start=datetime.fromisoformat(values["from"]),
        end=datetime.fromisoformat(values["to"]),
        group_id=ident("group_id"),
        project_id=ident("project_id"),
        user_id=ident("user_id"),
        api_token_id=ident("api_token_id"),
        model=values.get("model"),
        agent=values.get("agent"),
        operation=Operation(values["operation"]) if values.get("operation") else None,
        status=Status(values["status"]) if values.get("status") else None,
    )


def path_of(settings: Settings, export: Export, file_name: str | None = None) -> Path:
    """Where an export's file lives: under the data directory, by account and id (never a name)."""
    suffix = Path(file_name or export.file_name or "").suffix or ".bin"
    return settings.data_dir / "exports" / export.account_id.hex / f"{export.id.hex}{suffix}"


async def request_export(
    session: AsyncSession,
    actor: Actor,
    *,
    format: ExportFormat,
    view: ExportView,
    filters: Filters,
    project_id: uuid.UUID | None = None,
) -> Export:
    await require_feature(session, actor, "export.reports")
    scope = await scope_for(session, actor, project_id)
    if view is ExportView.calls and format is ExportFormat.pdf:
        raise InvalidInput(
            "invalid_input",
            "The calls export is CSV or Excel (a PDF of every call is not a report).",
            details=[{"field": "format", "message": "csv or xlsx for the calls"}],
        )
    pending = await session.scalar(
        select(func.count()).where(
            Export.account_id == actor.account_id,
            Export.requested_by == actor.user_id,
            Export.status.in_([ExportStatus.queued.value, ExportStatus.running.value]),
        )
    )
    if actor.user_id is not None and (pending or 0) >= MAX_PENDING:
        raise Conflict(
            "too_many_exports", f"You have {MAX_PENDING} exports in progress: wait for one to finish."
        )
    export = Export(
        id=uuid.uuid4(),
        account_id=actor.account_id,
        requested_by=actor.user_id,
        format=format.value,
        view=view.value,
        filters=filters_to_json(filters),
        scope_project_id=scope.project_id,
        scope_user_id=scope.user_id,
        status=ExportStatus.queued.value,
        progress=0,
        rows=0,
        created_at=utcnow(),
    )
    session.add(export)
    await audit.record(
        session,
        actor,
        "export.requested",
        target=Target("export", export.id, f"{view.value} as {format.value}"),
        after={"format": format.value, "view": view.value, "filters": export.filters},
    )
    await jobs.enqueue(
        session,
        MAKE,
        {"export_id": str(export.id)},
        account_id=actor.account_id,
        dedupe_key=f"{MAKE}:{export.id}",
    )
    return export


async def get_export(session: AsyncSession, actor: Actor, export_id: uuid.UUID) -> Export:
    """One export the actor may see: their own, or any of the account's for administrators (read
    afresh: the worker changes it in its own transactions)."""
    export = await session.scalar(
        select(Export)
        .where(Export.id == export_id, Export.account_id == actor.account_id)
        .execution_options(populate_existing=True)
    )
    if export is None or (export.requested_by != actor.user_id and not actor.can(Permission.usage_read_all)):
        raise NotFound("export_not_found", "No such export.")
    return export


async def download(
    session: AsyncSession, actor: Actor, settings: Settings, export_id: uuid.UUID
) -> tuple[Export, Path]:
    export = await get_export(session, actor, export_id)
    path = path_of(settings, export)
    if export.status != ExportStatus.done.value or not path.is_file():
        raise NotFound("export_not_ready", "This export has no file (not made yet, failed or expired).")
    await audit.record(
        session, actor, "export.downloaded", target=Target("export", export.id, export.file_name)
    )
    return export, path
