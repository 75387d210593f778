"""The agent wizard over the API: ``POST /api/v1/agents/draft`` drafts an agent from a description
(a metered model call attributed to the person), ``POST /api/v1/agents/preview`` runs an unsaved
agent configuration on some messages (its model and tool calls metered like any run)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from cockpit.auth.dependencies import ApiActor
from cockpit.gateway.wizard import DraftIn, DraftOut, PreviewIn, draft, preview
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/agents", tags=["agents"])


@router.post("/draft", response_model=DraftOut)
async def draft_route(body: DraftIn, request: Request, session: DbSession, actor: ApiActor) -> DraftOut:
    """The wizard's drafting step: name, description, instructions, starters, icon, a model and the
    suggested tools, drafted by a model call through the gateway (metered, attributed to you)."""
    return await draft(request, session, actor, body.description, body.model)


@router.post("/preview")
async def preview_route(
    body: PreviewIn, request: Request, session: DbSession, actor: ApiActor
) -> dict[str, Any]:
    """Try an agent configuration before saving it: the answer as a ``chat.completion`` with the tool
    steps under ``cockpit.steps``."""
    return await preview(request, session, actor, body)
