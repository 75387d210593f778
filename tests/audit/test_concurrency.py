"""Many concurrent writers to one account: every request succeeds, every audit entry is there and the
chain verifies (PostgreSQL used to deadlock: a row referencing ``accounts`` takes a KEY SHARE lock on
the account row, and the audit append then asked FOR UPDATE on that same row)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.audit.service import verify_all
from tests.builders import bearer, console_login, make_account, make_token, make_user

CONCURRENT = 50


async def _actions(db: AsyncSession, account_id: uuid.UUID) -> Counter[str]:
    await db.commit()
    rows = await db.scalars(select(AuditEntry.action).where(AuditEntry.account_id == account_id))
    counted = Counter(rows)
    await db.commit()
    return counted


async def _verified(db: AsyncSession, account_id: uuid.UUID) -> int:
    await db.commit()
    db.expire_all()
    [report] = await verify_all(db, account_id)
    await db.commit()
    assert report.problem is None, report.problem
    return report.entries


async def test_concurrent_sign_ins_of_one_account(app: Any, db: AsyncSession, cheap_passwords: None) -> None:
    account, _owner = await make_account(db, name="Sign-in Co")
    emails = [(await make_user(db, account)).email for _ in range(5)]
    before = await _verified(db, account.id)

    async def sign_in(i: int) -> int:
        transport = ASGITransport(app=app, client=(f"203.0.113.{i % 250}", 50000))
        async with AsyncClient(transport=transport, base_url="http://testserver") as browser:
            return (await console_login(browser, emails[i % len(emails)])).status_code

    statuses = await asyncio.gather(*(sign_in(i) for i in range(CONCURRENT)))

    assert statuses == [303] * CONCURRENT
    assert (await _actions(db, account.id))["auth.login"] == CONCURRENT
    assert await _verified(db, account.id) == before + CONCURRENT


CREATIONS: dict[str, tuple[str, Any, str]] = {
    "groups": ("/api/v1/groups", lambda i: {"name": f"Group {i}"}, "group.created"),
    "projects": ("/api/v1/projects", lambda i: {"name": f"Project {i}"}, "project.created"),
    "tokens": (
        "/api/v1/tokens",
        lambda i: {"name": f"token {i}", "scopes": ["gateway"]},
        "api_token.created",
    ),
    "invitations": (
        "/api/v1/invitations",
        lambda i: {"email": f"invitee-{i}-{uuid.uuid4().hex[:6]}@example.com"},
        "invitation.created",
    ),
}


@pytest.mark.parametrize("kind", list(CREATIONS))
async def test_concurrent_creations_in_one_account(client: AsyncClient, db: AsyncSession, kind: str) -> None:
    path, body, action = CREATIONS[kind]
    account, owner = await make_account(db, name=f"Busy {kind}")
    headers = bearer(await make_token(db, owner))
    before, already = await _verified(db, account.id), (await _actions(db, account.id))[action]

    responses = await asyncio.gather(
        *(client.post(path, json=body(i), headers=headers) for i in range(CONCURRENT))
    )

    assert [r.status_code for r in responses] == [201] * CONCURRENT, [
        r.text for r in responses if r.status_code != 201
    ][:3]
    assert (await _actions(db, account.id))[action] == already + CONCURRENT
    assert await _verified(db, account.id) == before + CONCURRENT
