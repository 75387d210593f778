"""API tokens: issued once in clear, stored as SHA-256, scoped, expiring, revocable."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.auth import repository
from cockpit.auth.models import ApiToken
from cockpit.authz.actor import Actor, ActorKind, TokenScope
from cockpit.authz.permissions import Permission
from cockpit.kit.errors import Conflict, InvalidInput, NotFound
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.time import utcnow
from cockpit.kit.validation import require_text
from cockpit.policies.service import require_feature
from cockpit.projects import service as projects
from cockpit.users import service as users
from cockpit.users.models import User, UserStatus

TOKEN_PREFIX = "ck_"  # noqa: S105 - a prefix, not a secret
# Last-used time is written at most this often, so authenticating stays a read.
TOUCH_INTERVAL = timedelta(seconds=60)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _check_scopes(scopes: list[str] | list[TokenScope]) -> list[TokenScope]:
    allowed = ", ".join(s.value for s in TokenScope)
    if not scopes:
        raise InvalidInput(
            "invalid_scopes",
            f"Choose at least one scope ({allowed}).",
            details=[{"field": "scopes", "message": "at least one scope"}],
        )
    result: list[TokenScope] = []
    for scope in scopes:
        try:
            value = TokenScope(scope)
        except ValueError as exc:
            raise InvalidInput(
                "invalid_scopes",
                f"Unknown scope '{scope}'; scopes are {allowed}.",
                details=[{"field": "scopes", "message": f"unknown scope {scope}"}],
            ) from exc
        if value not in result:
            result.append(value)
    return sorted(result)


async def issue_token(
    session: AsyncSession,
    actor: Actor,
    user: User,
    *,
    name: str,
    scopes: list[str] | list[TokenScope],
    expires_at: datetime | None = None,
    project_id: uuid.UUID | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; the clear value is returned once and never stored.

    A project token attributes its usage to the project; its user must belong to the project
    (account admins may create one for any project).
    """
    await require_feature(session, actor, "api_tokens.create")
    name = require_text(name, field="name", label="The token name", max_length=100)
    checked = _check_scopes(scopes)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput(
                "invalid_expiry",
                "The expiry needs a time zone (e.g. 2027-01-31T00:00:00Z).",
                details=[{"field": "expires_at", "message": "time zone required"}],
            )
        if expires_at <= utcnow():
            raise InvalidInput(
                "invalid_expiry",
                "The expiry must be in the future.",
                details=[{"field": "expires_at", "message": "must be in the future"}],
            )
    if user.status is not UserStatus.active:
        raise Conflict("user_deactivated", "Tokens cannot be issued to a deactivated user.")
    project_name = None
    if project_id is not None:
        project_name = (await projects.project_for_token(session, user, project_id)).name
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        id=uuid.uuid4(),
        account_id=user.account_id,
        user_id=user.id,
        name=name,
        token_hash=hash_token(raw),
        prefix=raw[:10],
        scopes=[s.value for s in checked],
        expires_at=expires_at,
        project_id=project_id,
        user=user,
    )
    session.add(token)
    await session.flush()
    await audit.record(
        session,
        actor,
        "api_token.created",
        target=Target("api_token", token.id, name),
        after={
            "name": name,
            "owner": user.email,
            "scopes": token.scopes,
            "prefix": token.prefix,
            "expires_at": expires_at,
            "project": project_name,
        },
    )
    return token, raw


async def create_personal_token(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str,
    scopes: list[str] | list[TokenScope],
    expires_at: datetime | None = None,
    project_id: uuid.UUID | None = None,
) -> tuple[ApiToken, str]:
    actor.require(Permission.tokens_own)
    user = await users.get_user(session, actor.account_id, actor.user_id) if actor.user_id else None
    if user is None:
        raise NotFound("user_not_found", "No such user.")
    return await issue_token(
        session, actor, user, name=name, scopes=scopes, expires_at=expires_at, project_id=project_id
    )


async def list_tokens(
    session: AsyncSession, actor: Actor, *, user_id: uuid.UUID | None = None
) -> list[ApiToken]:
    """One's own tokens; with ``user_id``, another user's (needs tokens:manage)."""
    actor.require(Permission.tokens_own)
    if user_id is None or user_id == actor.user_id:
        if actor.user_id is None:
            return []
        return await repository.tokens_of_user(session, actor.account_id, actor.user_id)
    actor.require(Permission.tokens_manage)
    if await users.get_user(session, actor.account_id, user_id) is None:
        raise NotFound("user_not_found", "No such user.")
    return await repository.tokens_of_user(session, actor.account_id, user_id)


async def page_tokens(
    session: AsyncSession, actor: Actor, params: PageParams, *, user_id: uuid.UUID | None = None
) -> Page[ApiToken]:
    """``list_tokens``, a page at a time."""
    actor.require(Permission.tokens_own)
    whose = user_id if user_id is not None else actor.user_id
    if whose is None:
        return Page(items=[], total=0, page=params.page, per_page=params.per_page)
    if whose != actor.user_id:
        actor.require(Permission.tokens_manage)
        if await users.get_user(session, actor.account_id, whose) is None:
            raise NotFound("user_not_found", "No such user.")
    return await paginate(session, repository.tokens_of_user_stmt(actor.account_id, whose), params)


async def access_token(session: AsyncSession, actor: Actor, token_id: uuid.UUID) -> ApiToken:
    """A token of the caller's account that the caller may see: their own, or any with tokens:manage.

    Anything else — another account's token included — is NotFound.
    """
    token = await repository.token_in_account(session, actor.account_id, token_id)
    if token is None or (token.user_id != actor.user_id and not actor.can(Permission.tokens_manage)):
        raise NotFound("token_not_found", "No such API token.")
    return token


async def revoke_token(session: AsyncSession, actor: Actor, token_id: uuid.UUID) -> ApiToken:
    actor.require(Permission.tokens_own)
    token = await access_token(session, actor, token_id)
    if token.revoked_at is not None:
        raise Conflict("token_already_revoked", "This token is already revoked.")
    token.revoked_at = utcnow()
    await audit.record(
        session,
        actor,
        "api_token.revoked",
        target=Target("api_token", token.id, token.name),
        before={"revoked": False},
        after={"revoked": True, "owner": token.user.email},
    )
    return token


def token_status(token: ApiToken) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= utcnow():
        return "expired"
    return "active"


async def authenticate_token(
    session: AsyncSession, raw: str, *, ip: str | None = None, user_agent: str | None = None
) -> Actor | None:
    """The actor for a bearer token, or None when it is unknown, revoked, expired or its user inactive."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = await repository.token_by_secret(session, raw, hash_token(raw))
    if token is None or token_status(token) != "active" or token.user.status is not UserStatus.active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_INTERVAL:
        token.last_used_at = now
    return Actor.for_user(
        token.user,
        kind=ActorKind.token,
        token_id=token.id,
        ip=ip,
        user_agent=user_agent,
        scopes=frozenset(TokenScope(s) for s in token.scopes),
    )


async def token_choices(
    session: AsyncSession, actor: Actor, *, limit: int = 500
) -> list[tuple[ApiToken, str]]:
    """The tokens the caller may filter the request log by, with their owners' e-mails: the account's
    (for whoever reads every call), else their own; most recently used first."""
    if actor.can(Permission.usage_read_all):
        return await repository.tokens_with_owners(session, actor.account_id, user_id=None, limit=limit)
    if actor.user_id is None:
        return []
    return await repository.tokens_with_owners(session, actor.account_id, user_id=actor.user_id, limit=limit)


async def revoke_project_tokens(session: AsyncSession, account_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """A deleted project's tokens stop working (their usage stays attributed in the records)."""
    await session.execute(
        update(ApiToken)
        # The account too: the gateway's directory then forgets that account's callers, not everyone's.
        .where(
            ApiToken.account_id == account_id,
            ApiToken.project_id == project_id,
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )


async def names_of(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The names of these API tokens of the account (others' and deleted ids are left out)."""
    return await repository.token_names(session, account_id, ids)


async def mark_used(session: AsyncSession, touches: Sequence[Mapping[str, object]]) -> None:
    """Record when tokens were last used: ``{"token_id": ..., "when": ...}`` each, in one statement.

    The gateway's cache of callers is kept: a timestamp changes nobody's access.
    """
    table = cast(Table, ApiToken.__table__)
    await session.execute(
        update(table).where(table.c.id == bindparam("token_id")).values(last_used_at=bindparam("when")),
        list(touches),
        execution_options={"cockpit_keep_gateway_cache": True},
    )
