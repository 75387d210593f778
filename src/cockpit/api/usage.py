from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from cockpit.auth.dependencies import ApiActor
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.periods import check_period
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession
from cockpit.policies.service import require_feature
from cockpit.tenancy.service import account_by_id
from cockpit.usage import service
from cockpit.usage import statement as statements
from cockpit.usage.models import CallStatus
from cockpit.usage.queries import RequestFilters
from cockpit.usage.schemas import RequestDetail, RequestOut, RequestPage
from cockpit.usage.statement_schemas import UsageStatementOut

router = APIRouter(prefix="/usage", tags=["usage"])


def request_filters(
    since: Annotated[datetime | None, Query(description="Inclusive, ISO 8601 with time zone")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive, ISO 8601 with time zone")] = None,
    model: Annotated[str | None, Query(max_length=200, description="Model name as called")] = None,
    user_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    agent_id: Annotated[str | None, Query(max_length=100)] = None,
    api_token_id: uuid.UUID | None = None,
    status: CallStatus | None = None,
) -> RequestFilters:
    check_period(since, until)
    return RequestFilters(
        since=since,
        until=until,
        model=model or None,
        user_id=user_id,
        project_id=project_id,
        agent_id=agent_id or None,
        api_token_id=api_token_id,
        status=status,
    )


@router.get("/requests", response_model=RequestPage)
async def list_requests(
    session: DbSession,
    actor: ApiActor,
    filters: Annotated[RequestFilters, Depends(request_filters)],
    params: Annotated[PageParams, Depends(page_params)],
) -> RequestPage:
    """Gateway calls, newest first: the whole account for administrators, one's own calls otherwise."""
    page = await service.search_requests(session, actor, filters, params)
    return RequestPage(items=[RequestOut.of(row) for row in page.items], meta=PageMeta.of(page))


@router.get("/requests/{request_id}", response_model=RequestDetail)
async def get_request(request_id: uuid.UUID, session: DbSession, actor: ApiActor) -> RequestDetail:
    """One call with its stored input and output (null when content storage is off or expired)."""
    return RequestDetail.of(await service.access_request(session, actor, request_id))


# ---- the usage statement (issue 17) ----

STATEMENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


@router.get("/statement", response_model=UsageStatementOut)
async def usage_statement(
    session: DbSession,
    actor: ApiActor,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    start: Annotated[
        datetime | None, Query(alias="from", description="Inclusive, ISO 8601 with time zone")
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="Exclusive, ISO 8601 with time zone")
    ] = None,
    lines: Annotated[
        Literal["day", "call"], Query(description="One line per day, model and integration, or per call")
    ] = "day",
    format: Literal["json", "csv", "xlsx", "pdf"] = "json",
) -> UsageStatementOut | Response:
    """One line per day per model (and per integration for tool calls) with calls, tokens, unit prices,
    credits and USD; credits in (allocations, extra credits, top-ups) as lines; opening, running and
    closing balances and totals. Members get their own; administrators the account's, a group's
    (`group_id`) or a member's (`user_id`); `project_id` narrows to one project's usage. Default
    range: the current credit cycle. `lines=call` gives each call a line of its own (with `at` and
    `request_id`; at most 20,000 calls, else 422 `too_many_lines`). `format=csv|xlsx|pdf` downloads
    it (a PDF holds at most 2,000 lines: 422 `too_many_lines`)."""
    found = await statements.build_usage_statement(
        session, actor, user_id=user_id, group_id=group_id, project_id=project_id, start=start, end=end,
        per_call=lines == "call",
    )  # fmt: skip
    if format == "json":
        return UsageStatementOut.of(found)
    await require_feature(session, actor, "export.reports")
    now = utcnow()
    account = await account_by_id(session, actor.account_id)
    content = await statements.statement_file(
        found, format, account=account.name if account else "", generated_at=now
    )
    filename = f"cockpit-usage-statement-{found.scope}-{now:%Y%m%d-%H%M%S}.{format}"
    return Response(
        content,
        media_type=STATEMENT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
