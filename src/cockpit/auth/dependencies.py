"""Who is calling the REST API: bearer tokens with the ``admin`` scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from cockpit.auth import tokens
from cockpit.authz.actor import Actor, TokenScope
from cockpit.authz.permissions import Permission
from cockpit.kit.errors import NotAuthenticated, NotPermitted
from cockpit.kit.web import DbSession, client_ip, user_agent


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def api_actor(request: Request, session: DbSession) -> Actor:
    raw = bearer_token(request)
    if raw is None:
        raise NotAuthenticated(
            "missing_token", "Send an API token in the header 'Authorization: Bearer <token>'."
        )
    actor = await tokens.authenticate_token(
        session, raw, ip=client_ip(request), user_agent=user_agent(request)
    )
    if actor is None:
        raise NotAuthenticated("invalid_token", "The API token is invalid, expired or revoked.")
    if TokenScope.admin not in actor.scopes:
        raise NotPermitted(
            "token_scope_missing", "This token lacks the 'admin' scope that the management API needs."
        )
    return actor


ApiActor = Annotated[Actor, Depends(api_actor)]


def require(permission: Permission) -> Callable[[Actor], Awaitable[Actor]]:
    """Route-level check: ``Annotated[Actor, Depends(require(Permission.audit_read))]``."""

    async def dependency(actor: ApiActor) -> Actor:
        actor.require(permission)
        return actor

    return dependency
