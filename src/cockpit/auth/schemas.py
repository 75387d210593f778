from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from cockpit.auth.models import ApiToken
from cockpit.auth.tokens import token_status
from cockpit.authz.actor import TokenScope
from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.users.models import UserRole


class TokenCreate(InputSchema):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[TokenScope] = Field(min_length=1, max_length=5)
    expires_at: datetime | None = None
    project_id: uuid.UUID | None = Field(
        default=None, description="Attribute this token's usage to a project"
    )


class Token(OutputSchema):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    status: str
    user_id: uuid.UUID
    project_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> Token:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            scopes=token.scopes,
            status=token_status(token),
            user_id=token.user_id,
            project_id=token.project_id,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
        )


class TokenCreated(Token):
    token: str = Field(description="The token itself. It is shown only in this response.")


class TokenList(OutputSchema):
    items: list[Token]
    meta: PageMeta


class Me(OutputSchema):
    id: uuid.UUID
    account_id: uuid.UUID
    email: str
    name: str
    role: UserRole
    permissions: list[str]
    token_scopes: list[str]
