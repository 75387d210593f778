from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.invitations.models import Invitation
from cockpit.kit.sql import names_in_account
from cockpit.kit.time import utcnow
from cockpit.users.seats import PRODUCTS, SeatProduct


async def get_in_account(
    session: AsyncSession, account_id: uuid.UUID, invitation_id: uuid.UUID
) -> Invitation | None:
    return await session.scalar(
        select(Invitation).where(Invitation.account_id == account_id, Invitation.id == invitation_id)
    )


async def by_token_hash(session: AsyncSession, token_hash: str) -> Invitation | None:
    return await session.scalar(select(Invitation).where(Invitation.token_hash == token_hash))


async def pending_for_email(session: AsyncSession, account_id: uuid.UUID, email: str) -> Invitation | None:
    return await session.scalar(
        select(Invitation).where(
            Invitation.account_id == account_id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
    )


def list_stmt(account_id: uuid.UUID, status: str | None) -> Select[Invitation]:
    stmt = select(Invitation).where(Invitation.account_id == account_id)
    now = utcnow()
    if status == "pending":
        stmt = stmt.where(
            Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None), Invitation.expires_at > now
        )
    elif status == "accepted":
        stmt = stmt.where(Invitation.accepted_at.is_not(None))
    elif status == "revoked":
        stmt = stmt.where(Invitation.revoked_at.is_not(None))
    elif status == "expired":
        stmt = stmt.where(
            Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None), Invitation.expires_at <= now
        )
    return stmt.order_by(Invitation.created_at.desc(), Invitation.email)


async def reserved_seats(session: AsyncSession, account_id: uuid.UUID) -> dict[SeatProduct, int]:
    """How many seats of each product the account's pending (not expired) invitations reserve."""
    columns = [func.count().filter(getattr(Invitation, f"seat_{p.value}").is_(True)) for p in PRODUCTS]
    reserved = (
        await session.execute(
            select(*columns).where(
                Invitation.account_id == account_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
        )
    ).one()
    return {p: int(reserved[i]) for i, p in enumerate(PRODUCTS)}


async def move_group(
    session: AsyncSession, account_id: uuid.UUID, source: uuid.UUID, destination: uuid.UUID
) -> None:
    await session.execute(
        update(Invitation)
        .where(Invitation.account_id == account_id, Invitation.group_id == source)
        .values(group_id=destination)
    )


async def emails(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    return await names_in_account(session, Invitation, Invitation.email, account_id, ids)
