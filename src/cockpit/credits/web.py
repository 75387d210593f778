"""The statement's CSV download, shared by the API and the console."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import Request
from fastapi.responses import StreamingResponse

from cockpit.authz.actor import Actor
from cockpit.credits import statement as statements
from cockpit.kit.db import READ_ONLY


def statement_csv_response(
    request: Request,
    actor: Actor,
    filename: str,
    *,
    user_id: uuid.UUID | None,
    group_id: uuid.UUID | None,
    start: datetime | None,
    end: datetime | None,
) -> StreamingResponse:
    """Every line of a statement as a CSV download, streamed from a session of its own (the request's
    has closed by the time the body is sent). Access was checked by the caller."""
    factory = request.app.state.sessionmaker

    async def body() -> AsyncIterator[str]:
        async with factory() as session:
            await session.connection(execution_options=READ_ONLY)
            _header, lines = await statements.statement_lines(
                session, actor, user_id=user_id, group_id=group_id, start=start, end=end
            )
            async for chunk in statements.csv_chunks(lines):
                yield chunk

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
