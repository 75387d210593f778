"""The person's own profile over the REST API: PATCH /me, the password, the console sessions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.service import LOCALES as ACCOUNT_LOCALES
from cockpit.audit.models import AuditEntry
from cockpit.auth.models import LoginSession
from cockpit.auth.profile import PROFILE_LOCALES
from cockpit.console.formatting import LOCALES as CONSOLE_LOCALES
from cockpit.users.models import User, UserRole
from tests.builders import PASSWORD, bearer, console_login, make_account, make_token, make_user

pytestmark = pytest.mark.usefixtures("cheap_passwords")

NEW_PASSWORD = "another-long-secret-42"


async def _actions(db: AsyncSession, account_id: uuid.UUID) -> list[AuditEntry]:
    rows = await db.scalars(select(AuditEntry).where(AuditEntry.account_id == account_id))
    return list(rows)


async def _user(db: AsyncSession, user_id: uuid.UUID) -> User:
    user = await db.get(User, user_id, populate_existing=True)
    assert user is not None
    return user


async def _signed_in_browser(app: Any, email: str) -> AsyncClient:
    http = AsyncClient(
        transport=ASGITransport(app=app, client=("198.51.100.9", 50002)), base_url="http://testserver"
    )
    response = await console_login(http, email)
    assert response.status_code == 303
    return http


def test_the_profile_locales_are_the_consoles() -> None:
    assert set(PROFILE_LOCALES) == set(CONSOLE_LOCALES) == set(ACCOUNT_LOCALES)


async def test_patch_me_changes_details_and_audits(db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account, role=UserRole.member)
    raw = await make_token(db, member)

    response = await client.patch(
        "/api/v1/me",
        json={
            "name": "  Mia Member ",
            "timezone": "Europe/Paris",
            "locale": "de-DE",
            "avatar_colour": "teal",
        },
        headers=bearer(raw),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["timezone"], body["locale"], body["avatar_colour"]) == (
        "Mia Member", "Europe/Paris", "de-DE", "teal",
    )  # fmt: skip
    me = (await client.get("/api/v1/me", headers=bearer(raw))).json()
    assert me["timezone"] == "Europe/Paris"
    assert me["email"] == member.email
    entries = [e for e in await _actions(db, account.id) if e.action == "user.profile_updated"]
    assert len(entries) == 1
    assert entries[0].after == {
        "name": "Mia Member",
        "timezone": "Europe/Paris",
        "locale": "de-DE",
        "avatar_colour": "teal",
    }

    # Only the fields sent change; null resets a preference to the organisation's.
    response = await client.patch("/api/v1/me", json={"timezone": None}, headers=bearer(raw))
    assert response.json()["timezone"] is None
    assert response.json()["locale"] == "de-DE"


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": None},
        {"name": "x" * 201},
        {"name": "evil\u202ename"},
        {"name": "line\nbreak"},
        {"timezone": "Mars/Olympus"},
        {"timezone": "../../etc/passwd"},
        {"locale": "xx-XX"},
        {"avatar_colour": "#fff; background: url(x)"},
        {"email": "other@example.com"},
        {"role": "owner"},
        {"name": "Fine", "timezone": "Nowhere/Else"},
    ],
)
async def test_patch_me_refuses_hostile_input_and_changes_nothing(
    db: AsyncSession, client: AsyncClient, body: dict[str, Any]
) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account)
    raw = await make_token(db, member)

    response = await client.patch("/api/v1/me", json=body, headers=bearer(raw))

    assert response.status_code == 422
    user = await _user(db, member.id)
    assert (user.name, user.role, user.email, user.timezone) == (
        "Test User",
        UserRole.member,
        member.email,
        None,
    )
    assert not [e for e in await _actions(db, account.id) if e.action == "user.profile_updated"]


async def test_password_change_needs_the_current_password(db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account)
    raw = await make_token(db, member)
    before = (await _user(db, member.id)).password_hash

    wrong = await client.post(
        "/api/v1/me/password", json={"current_password": "not-it-123456", "new_password": NEW_PASSWORD},
        headers=bearer(raw),
    )  # fmt: skip
    weak = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=bearer(raw),
    )

    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "wrong_current_password"
    assert weak.status_code == 422
    assert weak.json()["error"]["code"] == "weak_password"
    assert (await _user(db, member.id)).password_hash == before


async def test_password_change_signs_out_every_console_session(
    app: Any, db: AsyncSession, client: AsyncClient
) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account)
    raw = await make_token(db, member)
    laptop = await _signed_in_browser(app, member.email)
    try:
        response = await client.post(
            "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(raw),
        )  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json() == {"other_sessions_signed_out": 1}
        assert (await laptop.get("/profile")).status_code == 303  # back to the sign-in page
    finally:
        await laptop.aclose()
    entries = [e for e in await _actions(db, account.id) if e.action == "user.password_changed"]
    assert len(entries) == 1
    assert entries[0].after == {"other_sessions_signed_out": 1}
    assert (await console_login(client, member.email, NEW_PASSWORD)).status_code == 303


async def test_sessions_are_listed_and_signed_out_one_by_one(
    app: Any, db: AsyncSession, client: AsyncClient
) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account)
    other = await make_user(db, account)
    raw = await make_token(db, member)
    laptop = await _signed_in_browser(app, member.email)
    phone = await _signed_in_browser(app, member.email)
    stranger = await _signed_in_browser(app, other.email)
    try:
        listed = (await client.get("/api/v1/me/sessions", headers=bearer(raw))).json()["items"]
        assert len(listed) == 2
        assert {s["ip"] for s in listed} == {"198.51.100.9"}
        assert not any(s["current"] for s in listed)  # a token is no console session
        assert {"created_at", "last_seen_at", "user_agent"} <= set(listed[0])

        theirs = await db.scalar(select(LoginSession.id).where(LoginSession.user_id == other.id))
        refused = await client.delete(f"/api/v1/me/sessions/{theirs}", headers=bearer(raw))
        assert refused.status_code == 404
        assert (await stranger.get("/profile")).status_code == 200

        target = listed[0]["id"]
        gone = await client.delete(f"/api/v1/me/sessions/{target}", headers=bearer(raw))
        assert gone.status_code == 200
        assert (await client.delete(f"/api/v1/me/sessions/{target}", headers=bearer(raw))).status_code == 404
        remaining = (await client.get("/api/v1/me/sessions", headers=bearer(raw))).json()["items"]
        assert [s["id"] for s in remaining] != [target]
        assert len(remaining) == 1
        statuses = sorted(
            [(await laptop.get("/profile")).status_code, (await phone.get("/profile")).status_code]
        )
        assert statuses == [200, 303]
    finally:
        for http in (laptop, phone, stranger):
            await http.aclose()
    assert [e for e in await _actions(db, account.id) if e.action == "auth.session_signed_out"]
