from __future__ import annotations

import hmac
import uuid
from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import ApiToken, LoginFailure, LoginSession
from cockpit.kit.sql import names_in_account
from cockpit.kit.time import utcnow
from cockpit.users.models import User


async def session_by_hash(session: AsyncSession, secret_hash: str) -> LoginSession | None:
    return await session.scalar(select(LoginSession).where(LoginSession.secret_hash == secret_hash))


async def token_by_secret(session: AsyncSession, raw: str, token_hash: str) -> ApiToken | None:
    """The token with this clear value: looked up by its public prefix, then compared by hash in
    constant time (the lookup itself never depends on the secret part)."""
    candidates = await session.scalars(select(ApiToken).where(ApiToken.prefix == raw[:10]))
    for token in candidates:
        if hmac.compare_digest(token.token_hash, token_hash):
            return token
    return None


async def token_in_account(
    session: AsyncSession, account_id: uuid.UUID, token_id: uuid.UUID
) -> ApiToken | None:
    return await session.scalar(
        select(ApiToken).where(ApiToken.account_id == account_id, ApiToken.id == token_id)
    )


async def tokens_of_user(session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID) -> list[ApiToken]:
    return list(await session.scalars(tokens_of_user_stmt(account_id, user_id)))


def tokens_of_user_stmt(account_id: uuid.UUID, user_id: uuid.UUID) -> Select[ApiToken]:
    return (
        select(ApiToken)
        .where(ApiToken.account_id == account_id, ApiToken.user_id == user_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id)
    )


async def failures_since(
    session: AsyncSession, *, email: str | None = None, ip: str | None = None, since: datetime
) -> tuple[int, datetime | None]:
    stmt = select(func.count(), func.max(LoginFailure.created_at)).where(LoginFailure.created_at >= since)
    if email is not None:
        stmt = stmt.where(LoginFailure.email == email)
    if ip is not None:
        stmt = stmt.where(LoginFailure.ip == ip)
    count, last = (await session.execute(stmt)).one()
    if isinstance(last, str):  # SQLite returns aggregates of datetimes as text
        last = datetime.fromisoformat(last)
    if last is not None and last.tzinfo is None:  # aggregates bypass the column type
        last = last.replace(tzinfo=UTC)
    return int(count), last


async def purge_failures_before(session: AsyncSession, cutoff: datetime) -> None:
    await session.execute(delete(LoginFailure).where(LoginFailure.created_at < cutoff))


async def tokens_with_owners(
    session: AsyncSession, account_id: uuid.UUID, *, user_id: uuid.UUID | None, limit: int
) -> list[tuple[ApiToken, str]]:
    """The account's tokens (or one user's) with their owner's e-mail, most recently used first."""
    stmt = (
        select(ApiToken, User.email)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.account_id == account_id, User.account_id == account_id)
        .order_by(ApiToken.last_used_at.desc().nulls_last(), ApiToken.name, ApiToken.id)
        .limit(limit)
    )
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return [(token, email) for token, email in (await session.execute(stmt)).all()]


async def revoke_sessions_of(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def token_names(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    return await names_in_account(session, ApiToken, ApiToken.name, account_id, ids)
