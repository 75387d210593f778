from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from cockpit.api.profile import Profile
from cockpit.auth import tokens
from cockpit.auth.dependencies import ApiActor
from cockpit.auth.schemas import Token, TokenCreate, TokenCreated, TokenList
from cockpit.kit.errors import NotFound
from cockpit.kit.pagination import PageMeta, PageParams, catalog_page_params
from cockpit.kit.web import DbSession
from cockpit.users import service as users

router = APIRouter(tags=["identity"])


@router.get("/me", response_model=Profile)
async def get_me(session: DbSession, actor: ApiActor) -> Profile:
    user = await users.get_user(session, actor.account_id, actor.user_id) if actor.user_id else None
    if user is None:
        raise NotFound("user_not_found", "No such user.")
    return Profile.of(user, actor)


@router.get("/tokens", response_model=TokenList, tags=["tokens"])
async def list_tokens(
    session: DbSession,
    actor: ApiActor,
    paging: Annotated[PageParams, Depends(catalog_page_params)],
    user_id: uuid.UUID | None = None,
) -> TokenList:
    """Your API tokens, newest first (admins may pass ``user_id`` to see another user's)."""
    page = await tokens.page_tokens(session, actor, paging, user_id=user_id)
    return TokenList(items=[Token.of(t) for t in page.items], meta=PageMeta.of(page))


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, tags=["tokens"])
async def create_token(body: TokenCreate, session: DbSession, actor: ApiActor) -> TokenCreated:
    """Create a personal token. The response holds the token in clear, once."""
    token, raw = await tokens.create_personal_token(
        session,
        actor,
        name=body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
        project_id=body.project_id,
    )
    return TokenCreated(**Token.of(token).model_dump(), token=raw)


@router.get("/tokens/{token_id}", response_model=Token, tags=["tokens"])
async def get_token(token_id: uuid.UUID, session: DbSession, actor: ApiActor) -> Token:
    return Token.of(await tokens.access_token(session, actor, token_id))


@router.delete("/tokens/{token_id}", response_model=Token, tags=["tokens"])
async def revoke_token(token_id: uuid.UUID, session: DbSession, actor: ApiActor) -> Token:
    """Revoke a token: from now on it is refused everywhere."""
    return Token.of(await tokens.revoke_token(session, actor, token_id))
