"""The CSV download, shared by the API and the console."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse

from cockpit.audit import service
from cockpit.audit.queries import AuditFilters
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.db import READ_ONLY
from cockpit.kit.time import utcnow


def csv_response(request: Request, actor: Actor, filters: AuditFilters) -> StreamingResponse:
    actor.require(Permission.audit_read)  # before any byte is sent
    factory = request.app.state.sessionmaker

    async def body() -> AsyncIterator[str]:
        # The body is streamed after the request's own session has closed: use a fresh one.
        async with factory() as session:
            await session.connection(execution_options=READ_ONLY)
            async for chunk in service.export_csv(session, actor, filters):
                yield chunk

    filename = f"cockpit-audit-{utcnow():%Y%m%d-%H%M%S}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
