"""Full-text search over the caller's conversations (titles and messages).

Registered before the conversations router, so that ``/conversations/search`` is not read as a
conversation's id."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from cockpit.auth.dependencies import ApiActor
from cockpit.conversations import search
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/conversations", tags=["conversations"])


class SnippetPartOut(BaseModel):
    text: str = Field(description="Plain text (never HTML: escape it when showing it)")
    match: bool = Field(description="A word of the search (to be highlighted)")


class SearchHitOut(BaseModel):
    conversation_id: uuid.UUID
    title: str
    agent_id: uuid.UUID | None
    agent: str | None = Field(description="The agent's name (null: a bare model, or a deleted agent)")
    model: str
    archived: bool
    in_title: bool = Field(description="Every word is in the title")
    message_id: uuid.UUID | None = Field(
        description="The best-matching message (null: only the title matched)"
    )
    message_role: str | None
    snippet: str = Field(description="A short plain-text extract of that message (or the title)")
    snippet_parts: list[SnippetPartOut] = Field(description="The snippet in parts, the matches flagged")
    created_at: datetime
    updated_at: datetime = Field(description="The conversation's last activity")


class SearchResults(BaseModel):
    items: list[SearchHitOut]
    meta: PageMeta


def hit_out(hit: search.SearchHit) -> SearchHitOut:
    return SearchHitOut(
        conversation_id=hit.conversation_id,
        title=hit.title,
        agent_id=hit.agent_id,
        agent=hit.agent,
        model=hit.model,
        archived=hit.archived,
        in_title=hit.in_title,
        message_id=hit.message_id,
        message_role=hit.message_role,
        snippet=hit.snippet_text,
        snippet_parts=[SnippetPartOut(text=p.text, match=p.match) for p in hit.snippet],
        created_at=hit.created_at,
        updated_at=hit.updated_at,
    )


@router.get("/search", response_model=SearchResults)
async def search_conversations(
    session: DbSession,
    actor: ApiActor,
    paging: Annotated[PageParams, Depends(page_params)],
    q: Annotated[str, Query(max_length=search.QUERY_MAX, description="The words to find")] = "",
) -> SearchResults:
    """The caller's own conversations whose title or messages contain every word of ``q`` (each
    word also as the start of a longer one, from 3 letters): titles that match first, then the most
    relevant, then the latest activity. Deleted conversations are never found; archived ones are
    flagged. Operators and quotes are read as plain words."""
    page = await search.search_conversations(session, actor, q, page=paging)
    return SearchResults(items=[hit_out(h) for h in page.items], meta=PageMeta.of(page))
