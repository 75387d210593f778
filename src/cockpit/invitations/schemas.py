from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from cockpit.invitations.models import Invitation
from cockpit.invitations.service import status_of
from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.users.models import UserRole
from cockpit.users.seats import SeatProduct


class InvitationCreate(InputSchema):
    email: str = Field(min_length=3, max_length=254)
    name: str = Field(default="", max_length=200)
    role: UserRole = UserRole.member
    group_id: uuid.UUID | None = None
    seats: list[SeatProduct] = Field(default_factory=list, max_length=3)


class InvitationOut(OutputSchema):
    id: uuid.UUID
    email: str
    name: str
    role: UserRole
    group_id: uuid.UUID
    seats: list[str]
    status: str
    created_at: datetime
    expires_at: datetime
    sent_count: int
    last_sent_at: datetime | None
    accepted_at: datetime | None

    @classmethod
    def of(cls, invitation: Invitation) -> InvitationOut:
        return cls(
            id=invitation.id,
            email=invitation.email,
            name=invitation.name,
            role=invitation.role,
            group_id=invitation.group_id,
            seats=invitation.seats,
            status=status_of(invitation),
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
            sent_count=invitation.sent_count,
            last_sent_at=invitation.last_sent_at,
            accepted_at=invitation.accepted_at,
        )


class InvitationWithLink(InvitationOut):
    accept_url: str = Field(description="The one-time link (also e-mailed when SMTP is configured).")


class InvitationPage(OutputSchema):
    items: list[InvitationOut]
    meta: PageMeta


class InvitationAccept(InputSchema):
    token: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=256)


class AcceptedUser(OutputSchema):
    user_id: uuid.UUID
    email: str
    account_id: uuid.UUID
