"""The Actor: who is making the call, as every service function receives it.

It lives with the permissions (below every domain) so that any domain can take one without depending
on how callers sign in (``auth``) or on the users' table (``users``): ``Actor.for_user`` takes any
object with a user's id, account, e-mail and role.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from cockpit.authz.permissions import Permission, permissions_of
from cockpit.authz.roles import UserRole
from cockpit.kit.errors import NotPermitted


class ActorKind(StrEnum):
    user = "user"  # a console session
    token = "token"  # noqa: S105 - an API token (the kind of actor)
    system = "system"  # the command line, the scheduler
    anonymous = "anonymous"  # e.g. a failed login


class ActingUser(Protocol):
    """What an Actor is made from: a user row (``users.models.User``) has these."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def account_id(self) -> uuid.UUID: ...
    @property
    def email(self) -> str: ...
    @property
    def role(self) -> UserRole: ...


class TokenScope(StrEnum):
    admin = "admin"  # the management REST API
    gateway = "gateway"  # LLM calls through the gateway


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    account_id: uuid.UUID
    label: str
    user_id: uuid.UUID | None = None
    role: UserRole | None = None
    token_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    scopes: frozenset[TokenScope] = field(default_factory=frozenset)
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def for_user(
        cls,
        user: ActingUser,
        *,
        kind: ActorKind = ActorKind.user,
        token_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
        scopes: frozenset[TokenScope] = frozenset(),
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Actor:
        return cls(
            kind=kind,
            account_id=user.account_id,
            label=user.email,
            user_id=user.id,
            role=user.role,
            token_id=token_id,
            session_id=session_id,
            scopes=scopes,
            ip=ip,
            user_agent=user_agent,
        )

    @classmethod
    def system(cls, account_id: uuid.UUID, label: str = "system") -> Actor:
        return cls(kind=ActorKind.system, account_id=account_id, label=label)

    def can(self, permission: Permission) -> bool:
        if self.kind is ActorKind.system:
            return True
        return self.role is not None and permission in permissions_of(self.role)

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise NotPermitted("not_permitted", "You do not have permission to do this.")
