"""Issue 17's endpoints under hostile input: every refusal is a clear 4xx in the API's error shape
and changes nothing (lone surrogates, NUL, deep nesting, huge bodies, odd numbers, other accounts)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.billing import service as billing
from cockpit.credits.models import EntryKind, LedgerEntry
from cockpit.kit.errors import InvalidInput
from cockpit.users.models import User
from tests.builders import bearer, console_login, csrf_for, make_account, make_token
from tests.profile.test_avatar import png

pytestmark = pytest.mark.usefixtures("cheap_passwords")

SURROGATE = b'"x\\ud800y"'  # a lone surrogate, as JSON escapes it


def _error(body: object) -> dict[str, object]:
    assert isinstance(body, dict)
    error = body.get("error")
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str)
    assert isinstance(error.get("message"), str)
    return error


async def _owner(db: AsyncSession) -> tuple[uuid.UUID, uuid.UUID, dict[str, str]]:
    account, owner = await make_account(db)
    ids = (account.id, owner.id)
    headers = bearer(await make_token(db, owner))
    await db.commit()
    return ids[0], ids[1], {**headers, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": ' + SURROGATE + b"}",
        b'{"name": "a\\u0000b"}',
        b'{"name": "' + b"n" * 100_000 + b'"}',
        b'{"timezone": "Europe/Paris\\u0000"}',
        b'{"timezone": "../../etc/passwd"}',
        b'{"locale": ' + SURROGATE + b"}",
        b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"email": "new@example.com"}',  # no current password
        b'{"email": ' + SURROGATE + b', "current_password": "x"}',
    ],
)
async def test_profile_changes_refused_cleanly(client: AsyncClient, db: AsyncSession, body: bytes) -> None:
    _account_id, user_id, headers = await _owner(db)
    before = await db.get(User, user_id)
    assert before is not None
    state = (before.name, before.email, before.timezone, before.locale, before.pending_email)
    response = await client.patch("/api/v1/me", content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    _error(response.json())
    after = await db.get(User, user_id, populate_existing=True)
    assert after is not None
    assert (after.name, after.email, after.timezone, after.locale, after.pending_email) == state


@pytest.mark.parametrize(
    "credits",
    ["NaN", "Infinity", "-Infinity", "1e400", "1e-7", "0", "-1", "1000000001", "١٢", "5 0", "0x10", True],
)
async def test_odd_top_up_amounts_add_nothing(client: AsyncClient, db: AsyncSession, credits: object) -> None:
    account_id, _user_id, headers = await _owner(db)
    response = await client.post(
        "/api/v1/credits/top-ups", json={"credits": credits, "reason": "probe"}, headers=headers
    )
    assert response.status_code in (400, 422), response.text
    _error(response.json())
    added = await db.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.extra_granted)
    )
    assert added == 0


async def test_a_top_up_reason_with_a_nul_or_surrogate_is_refused(
    client: AsyncClient, db: AsyncSession
) -> None:
    _account_id, _user_id, headers = await _owner(db)
    for reason in (b'"a\\u0000b"', SURROGATE):
        body = b'{"credits": "5", "reason": ' + reason + b"}"
        response = await client.post("/api/v1/credits/top-ups", content=body, headers=headers)
        assert response.status_code == 400, response.text
        _error(response.json())


async def test_the_statement_refuses_bad_filters(client: AsyncClient, db: AsyncSession) -> None:
    _account_id, _user_id, headers = await _owner(db)
    other_account, other_owner = await make_account(db, name="Other")
    other_user = other_owner.id
    await db.commit()
    cases = [
        ({"from": "yesterday"}, 422),
        ({"from": "2026-12-01T00:00:00"}, 422),  # no time zone
        ({"user_id": str(other_user)}, 404),  # another account's member
        ({"user_id": "not-a-uuid"}, 422),
        ({"project_id": str(uuid.uuid4())}, 404),
        ({"format": "exe"}, 422),
    ]
    for params, status in cases:
        response = await client.get("/api/v1/usage/statement", params=params, headers=headers)
        assert response.status_code == status, (params, response.text)
        _error(response.json())
    assert other_account.id != _account_id


async def test_an_unsigned_huge_webhook_is_refused_before_it_is_read(client: AsyncClient) -> None:
    # Not connected (no Stripe secret): refused; the body is never parsed, whatever its size.
    response = await client.post(
        "/api/v1/billing/webhook",
        content=b"{" * 2_000_000,
        headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"},
    )
    assert response.status_code in (400, 409, 413), response.text
    _error(response.json())


async def test_an_avatar_too_large_is_refused(client: AsyncClient, db: AsyncSession) -> None:
    _account_id, user_id, headers = await _owner(db)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 3_000_000
    response = await client.put(
        "/api/v1/me/avatar", content=png, headers={**headers, "Content-Type": "image/png"}
    )
    assert response.status_code == 413, response.text
    _error(response.json())
    user = await db.get(User, user_id, populate_existing=True)
    assert user is not None
    assert user.avatar_updated_at is None


async def test_a_nul_in_a_multipart_form_field_is_refused(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    account_id, email = account.id, owner.email
    await db.commit()
    await console_login(client, email)
    token = await csrf_for(client, "/billing")
    fields = {"csrf_token": (None, token), "credits": (None, "5"), "reason": (None, "a\x00b")}
    response = await client.post("/billing/top-ups", files=fields)
    assert response.status_code == 400, response.text
    assert "reason" in response.text
    # A file's bytes may hold NULs (a PNG's always do): an avatar upload is not refused for them.
    picture = png()
    assert b"\x00" in picture
    uploaded = await client.post(
        "/profile/avatar", files={"csrf_token": (None, token), "file": ("a.png", picture, "image/png")}
    )
    assert uploaded.status_code == 303, uploaded.text
    added = await db.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.extra_granted)
    )
    assert added == 0


async def test_the_service_refuses_an_unstorable_reason(db: AsyncSession) -> None:
    account, _owner = await make_account(db)
    await db.commit()
    for reason in ("a\x00b", "x\ud800y"):
        with pytest.raises(InvalidInput) as refused:
            await billing.add_credits_by_hand(db, Actor.system(account.id), Decimal(5), reason)
        assert refused.value.code == "invalid_text"
