"""Helpers of the people REST API tests (tests/users/test_api.py and test_roles_seats_api.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.auth.passwords import hash_password
from cockpit.groups.models import Group
from cockpit.groups.repository import default_group
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole, UserStatus
from tests.builders import PASSWORD, bearer, make_account, make_token

API = "/api/v1"
PASSWORD_HASH = hash_password(PASSWORD)
SESSION = "cockpit_session"


# ---- helpers ----


@dataclass
class Org:
    account: Account
    owner: User
    headers: dict[str, str]  # the owner's admin-scope token

    @property
    def id(self) -> uuid.UUID:
        return self.account.id


async def org(db: AsyncSession, *, name: str = "Acme", email: str | None = None) -> Org:
    account, owner = await make_account(db, name=name, email=email)
    return Org(account, owner, bearer(await make_token(db, owner)))


async def person(
    db: AsyncSession,
    account: Account,
    *,
    email: str | None = None,
    name: str = "Test User",
    role: UserRole = UserRole.member,
    status: UserStatus = UserStatus.active,
    seats: Iterable[str] = (),
    group_id: uuid.UUID | None = None,
) -> User:
    if group_id is None:
        group_id = (await default_group(db, account.id)).id
    user = User(
        account_id=account.id,
        email=email or f"user-{uuid.uuid4().hex[:8]}@example.com",
        name=name,
        role=role,
        status=status,
        password_hash=PASSWORD_HASH,
        group_id=group_id,
        **{f"seat_{seat}": True for seat in seats},
    )
    db.add(user)
    await db.commit()
    return user


async def make_group(db: AsyncSession, account: Account, name: str) -> Group:
    group = Group(account_id=account.id, name=name, name_key=name.lower(), description="")
    db.add(group)
    await db.commit()
    return group


async def token_of(db: AsyncSession, user: User) -> dict[str, str]:
    return bearer(await make_token(db, user))


async def audit_actions(db: AsyncSession, account_id: uuid.UUID) -> list[str]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry.action).where(AuditEntry.account_id == account_id).order_by(AuditEntry.seq)
    )
    result = list(rows)
    await db.commit()
    return result


async def audit_entries(db: AsyncSession, account_id: uuid.UUID, action: str) -> list[AuditEntry]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id, AuditEntry.action == action)
        .order_by(AuditEntry.seq)
        .execution_options(populate_existing=True)
    )
    result = list(rows)
    await db.commit()
    return result


async def active_owners(db: AsyncSession, account_id: uuid.UUID) -> int:
    await db.commit()
    count = await db.scalar(
        select(func.count())
        .select_from(User)
        .where(User.account_id == account_id, User.role == UserRole.owner, User.status == UserStatus.active)
    )
    await db.commit()
    return int(count or 0)


def code(response: Response) -> str:
    return str(response.json()["error"]["code"])


async def get_user(client: AsyncClient, headers: dict[str, str], user_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"{API}/users/{user_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def seat_table(client: AsyncClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = await client.get(f"{API}/seats", headers=headers)
    assert response.status_code == 200, response.text
    return {item["product"]: item for item in response.json()["items"]}


async def set_limits(client: AsyncClient, headers: dict[str, str], **limits: int) -> None:
    response = await client.patch(f"{API}/seats", json=limits, headers=headers)
    assert response.status_code == 200, response.text


async def emails(client: AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = await client.get(f"{API}/users", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["email"] for item in response.json()["items"]]


@asynccontextmanager
async def browser(app: Any) -> AsyncIterator[AsyncClient]:
    """A separate browser (its own cookie jar) on the same app."""
    transport = ASGITransport(app=app, client=("203.0.113.7", 50001))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def console_works(http: AsyncClient) -> bool:
    response = await http.get("/")
    if response.status_code == 200:
        return True
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/login")
    return False
