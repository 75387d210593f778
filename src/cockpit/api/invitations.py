from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.invitations import service
from cockpit.invitations.schemas import (
    AcceptedUser,
    InvitationAccept,
    InvitationCreate,
    InvitationOut,
    InvitationPage,
    InvitationWithLink,
)
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.web import AppSettings, DbSession

router = APIRouter(prefix="/invitations", tags=["invitations"])

InviteReader = Annotated[Actor, Depends(require(Permission.users_read))]
InviteWriter = Annotated[Actor, Depends(require(Permission.users_write))]


@router.post("", response_model=InvitationWithLink, status_code=status.HTTP_201_CREATED)
async def create_invitation(
    body: InvitationCreate, session: DbSession, actor: InviteWriter, settings: AppSettings
) -> InvitationWithLink:
    """Invite someone: they get an e-mail with a one-time link (also returned as ``accept_url``)."""
    invitation, url = await service.invite(
        session,
        actor,
        settings,
        email=body.email,
        name=body.name,
        role=body.role,
        group_id=body.group_id,
        seats=[s.value for s in body.seats],
    )
    return InvitationWithLink(**InvitationOut.of(invitation).model_dump(), accept_url=url)


@router.get("", response_model=InvitationPage)
async def list_invitations(
    session: DbSession,
    actor: InviteReader,
    params: Annotated[PageParams, Depends(page_params)],
    status: Annotated[str | None, Query(description="pending, accepted, revoked or expired")] = None,
) -> InvitationPage:
    page = await service.list_invitations(session, actor, status=status, params=params)
    return InvitationPage(items=[InvitationOut.of(i) for i in page.items], meta=PageMeta.of(page))


@router.post("/accept", response_model=AcceptedUser, status_code=status.HTTP_201_CREATED)
async def accept_invitation(body: InvitationAccept, session: DbSession) -> AcceptedUser:
    """No authentication: the invitation token is the credential. Creates the user."""
    user = await service.accept(session, token=body.token, name=body.name, password=body.password)
    return AcceptedUser(user_id=user.id, email=user.email, account_id=user.account_id)


@router.post("/{invitation_id}/resend", response_model=InvitationWithLink)
async def resend_invitation(
    invitation_id: uuid.UUID, session: DbSession, actor: InviteWriter, settings: AppSettings
) -> InvitationWithLink:
    """A new link with a fresh expiry; the previous link stops working."""
    invitation, url = await service.resend(session, actor, settings, invitation_id)
    return InvitationWithLink(**InvitationOut.of(invitation).model_dump(), accept_url=url)


@router.delete("/{invitation_id}", response_model=InvitationOut)
async def revoke_invitation(
    invitation_id: uuid.UUID, session: DbSession, actor: InviteWriter
) -> InvitationOut:
    return InvitationOut.of(await service.revoke(session, actor, invitation_id))
