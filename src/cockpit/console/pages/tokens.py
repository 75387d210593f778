from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cockpit.auth import tokens
from cockpit.auth.models import ApiToken
from cockpit.authz.actor import TokenScope
from cockpit.console.web import SignedIn, discard_changes, redirect, render
from cockpit.kit.errors import CockpitError, InvalidInput
from cockpit.kit.web import DbSession
from cockpit.policies.service import feature_allowed
from cockpit.projects import service as projects

router = APIRouter(prefix="/tokens")


def _page(
    request: Request, items: Sequence[ApiToken], *, status_code: int = 200, **extra: object
) -> Response:
    return render(
        request,
        "tokens/index.html",
        {"tokens": items, "scopes": list(TokenScope), "status_of": tokens.token_status, **extra},
        status_code=status_code,
    )


async def _projects(session: DbSession, viewer: SignedIn) -> dict[str, str]:
    return {str(p.id): p.name for p, _ in await projects.list_projects(session, viewer.actor)}


async def _can_create(session: DbSession, viewer: SignedIn) -> bool:
    """Whether to offer "Create a token" (an access policy may deny the feature)."""
    return await feature_allowed(session, viewer.actor, "api_tokens.create")


@router.get("")
async def tokens_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    return _page(
        request,
        list(await tokens.list_tokens(session, viewer.actor)),
        projects=await _projects(session, viewer),
        can_create=await _can_create(session, viewer),
    )


def _expiry(value: str) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput("invalid_expiry", "The expiry date is not a valid date.") from exc
    # A token "expiring on" a day works through the end of that day (UTC).
    return datetime.combine(day, time.max, tzinfo=UTC)


@router.post("")
async def create_token(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    name: Annotated[str, Form(max_length=1000)] = "",
    scopes: Annotated[list[str] | None, Form()] = None,
    expires_on: Annotated[str, Form(max_length=20)] = "",
    project_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    try:
        try:
            project = uuid.UUID(project_id) if project_id else None
        except ValueError as exc:
            raise InvalidInput("unknown_project", "Unknown project.") from exc
        token, raw = await tokens.create_personal_token(
            session,
            viewer.actor,
            name=name,
            scopes=scopes or [],
            expires_at=_expiry(expires_on),
            project_id=project,
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        items = list(await tokens.list_tokens(session, viewer.actor))
        form = {
            "name": name[:100],
            "scopes": scopes or [],
            "expires_on": expires_on,
            "project_id": project_id,
        }
        return _page(
            request,
            items,
            error=exc.message,
            form=form,
            status_code=exc.status,
            projects=await _projects(session, viewer),
            can_create=await _can_create(session, viewer),
        )
    # Shown once, in this response only: never put the token in a redirect or a cookie.
    items = list(await tokens.list_tokens(session, viewer.actor))
    return _page(
        request,
        items,
        created=token,
        created_secret=raw,
        status_code=201,
        projects=await _projects(session, viewer),
        can_create=True,
    )


@router.post("/{token_id}/revoke")
async def revoke_token(
    request: Request, session: DbSession, viewer: SignedIn, token_id: uuid.UUID
) -> Response:
    token = await tokens.revoke_token(session, viewer.actor, token_id)
    return redirect(request, "/tokens", message=f"Token “{token.name}” was revoked.")
