from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cockpit.auth.dependencies import ApiActor
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.periods import check_period
from cockpit.kit.web import DbSession
from cockpit.usage import service
from cockpit.usage.models import CallStatus
from cockpit.usage.queries import RequestFilters
from cockpit.usage.schemas import RequestDetail, RequestOut, RequestPage

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
