"""Builders for the support ticket tests: an organisation with an owner, an administrator and two
members (each with an API token), and a second organisation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.events.models import PlatformEvent
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import bearer, make_account, make_token, make_user

API = "/api/v1"


@dataclass
class Org:
    account: Account
    owner: User
    owner_headers: dict[str, str]
    admin: User
    admin_headers: dict[str, str]
    member: User
    member_headers: dict[str, str]
    other: User  # another member
    other_headers: dict[str, str]


async def org(db: AsyncSession, *, name: str = "Acme") -> Org:
    account, owner = await make_account(db, name=name)
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account)
    other = await make_user(db, account)
    admin.name, member.name, other.name = "Ada Admin", "Mia Member", "Otto Other"
    await db.commit()
    return Org(
        account, owner, bearer(await make_token(db, owner)), admin, bearer(await make_token(db, admin)),
        member, bearer(await make_token(db, member)), other, bearer(await make_token(db, other)),
    )  # fmt: skip


async def file(
    client: AsyncClient, headers: dict[str, str], subject: str = "Cannot use the model", **extra: Any
) -> Response:
    body = {"subject": subject, "description": "It says access denied.", **extra}
    return await client.post(f"{API}/tickets", json=body, headers=headers)


async def filed(
    client: AsyncClient, headers: dict[str, str], subject: str = "Help", **extra: Any
) -> dict[str, Any]:
    response = await file(client, headers, subject, **extra)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def events_named(db: AsyncSession, account_id: uuid.UUID, name: str) -> list[PlatformEvent]:
    await db.commit()
    rows = await db.scalars(
        select(PlatformEvent)
        .where(PlatformEvent.account_id == account_id, PlatformEvent.name == name)
        .order_by(PlatformEvent.created_at)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def audit_actions(db: AsyncSession, account_id: uuid.UUID) -> list[str]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.account_id == account_id, AuditEntry.action.like("support_ticket.%"))
        .order_by(AuditEntry.seq)
    )
    return list(rows)
