"""Explicit builders for arranging test data (each commits, like a finished request would)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.service import create_account
from cockpit.auth.passwords import hash_password
from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.groups.repository import default_group
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole, UserStatus

PASSWORD = "correct-horse-battery-9"


async def make_account(
    session: AsyncSession, *, name: str = "Acme", email: str | None = None
) -> tuple[Account, User]:
    email = email or f"owner-{uuid.uuid4().hex[:8]}@example.com"
    account, owner = await create_account(session, name=name, owner_email=email, owner_password=PASSWORD)
    await session.commit()
    return account, owner


async def make_user(
    session: AsyncSession,
    account: Account,
    *,
    role: UserRole = UserRole.member,
    email: str | None = None,
    status: UserStatus = UserStatus.active,
) -> User:
    group = await default_group(session, account.id)
    user = User(
        account_id=account.id, email=email or f"user-{uuid.uuid4().hex[:8]}@example.com", name="Test User",
        role=role, status=status, password_hash=hash_password(PASSWORD), group_id=group.id,
    )  # fmt: skip
    session.add(user)
    await session.commit()
    return user


async def make_token(
    session: AsyncSession,
    user: User,
    *,
    scopes: tuple[str, ...] = ("admin",),
    expires_at: datetime | None = None,
    name: str = "test token",
) -> str:
    _, raw = await issue_token(
        session,
        Actor.system(user.account_id, "tests"),
        user,
        name=name,
        scopes=list(scopes),
        expires_at=expires_at,
    )
    await session.commit()
    return raw


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(response: Response) -> str:
    match = _CSRF.search(response.text)
    assert match, "page has no CSRF token"
    return match.group(1)


async def console_login(client: AsyncClient, email: str, password: str = PASSWORD) -> Response:
    page = await client.get("/login")
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_from(page), "next": "/"}
    )


async def csrf_for(client: AsyncClient, path: str = "/") -> str:
    return csrf_from(await client.get(path))
