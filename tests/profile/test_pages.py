"""The console's profile page and the account manager in the sidebar."""

from __future__ import annotations

import re
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import LoginSession
from cockpit.users.models import User, UserRole
from tests.builders import PASSWORD, console_login, csrf_for, make_account, make_user

pytestmark = pytest.mark.usefixtures("cheap_passwords")

NEW_PASSWORD = "another-long-secret-42"


def account_menu(html: str) -> str:
    match = re.search(r'<ul class="account-menu"[^>]*>(.*?)</ul>', html, re.S)
    assert match, "page has no account menu"
    return match.group(1)


def menu_links(html: str) -> dict[str, str]:
    links = re.findall(r'<a role="menuitem" href="([^"]+)">.*?</svg>\s*([^<]+)</a>', account_menu(html), re.S)
    return {label.strip(): href for href, label in links}


async def _user(db: AsyncSession, user: User) -> User:
    fresh = await db.get(User, user.id, populate_existing=True)
    assert fresh is not None
    return fresh


@pytest.mark.parametrize("role", [UserRole.owner, UserRole.admin, UserRole.member])
async def test_the_account_menu_shows_the_entries_of_the_role(
    app: Any, db: AsyncSession, client: AsyncClient, role: UserRole
) -> None:
    account, _ = await make_account(db)
    person = await make_user(db, account, role=role)
    await console_login(client, person.email)

    home = await client.get("/")

    expected = {
        "Dashboard": "/",
        "Profile": "/profile",
        "Usage": "/usage",
        "API tokens": "/tokens",
    }
    if role is not UserRole.member:
        expected["Billing"] = "/billing"
    expected["Models"] = "/models/catalogue"
    assert menu_links(home.text) == expected
    assert 'form="sign-out-form"' in account_menu(home.text)
    assert 'aria-haspopup="menu"' in home.text
    assert 'id="sign-out-form"' in home.text


async def test_the_profile_page_saves_details_with_csrf(db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account)
    await console_login(client, member.email)

    page = await client.get("/profile")
    assert page.status_code == 200
    assert 'href="/notifications/preferences"' in page.text
    assert member.email in page.text

    refused = await client.post("/profile", data={"name": "No Token", "csrf_token": "forged"})
    assert refused.status_code == 403
    assert (await _user(db, member)).name == "Test User"

    token = await csrf_for(client, "/profile")
    saved = await client.post(
        "/profile",
        data={
            "name": "Mia",
            "timezone": "Asia/Tokyo",
            "locale": "fr-FR",
            "avatar_colour": "violet",
            "csrf_token": token,
        },
    )
    assert saved.status_code == 303
    user = await _user(db, member)
    assert (user.name, user.timezone, user.locale, user.avatar_colour) == (
        "Mia",
        "Asia/Tokyo",
        "fr-FR",
        "violet",
    )
    home = await client.get("/")
    assert "background: #7c3aed" in home.text  # the avatar in the sidebar

    bad = await client.post(
        "/profile",
        data={"name": "Mallory", "timezone": "Not/AZone", "csrf_token": await csrf_for(client, "/profile")},
    )
    assert bad.status_code == 422
    assert "Unknown time zone" in bad.text
    assert (await _user(db, member)).name == "Mia"


async def test_changing_the_password_keeps_this_session_and_ends_the_others(
    app: Any, db: AsyncSession, client: AsyncClient
) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account)
    await console_login(client, member.email)
    transport = ASGITransport(app=app, client=("198.51.100.9", 50003))
    async with AsyncClient(transport=transport, base_url="http://testserver") as other:
        await console_login(other, member.email)

        wrong = await client.post(
            "/profile/password",
            data={"current_password": "nope-nope-123", "new_password": NEW_PASSWORD,
                  "confirm_password": NEW_PASSWORD, "csrf_token": await csrf_for(client, "/profile")},
        )  # fmt: skip
        assert wrong.status_code == 403
        assert "current password is not correct" in wrong.text
        assert (await other.get("/profile")).status_code == 200

        changed = await client.post(
            "/profile/password",
            data={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                  "confirm_password": NEW_PASSWORD, "csrf_token": await csrf_for(client, "/profile")},
        )  # fmt: skip
        assert changed.status_code == 303
        assert (await client.get("/profile")).status_code == 200
        assert (await other.get("/profile")).status_code == 303


async def test_signing_out_a_session_from_the_page(app: Any, db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account)
    stranger = await make_user(db, account)
    await console_login(client, member.email)
    transport = ASGITransport(app=app, client=("198.51.100.9", 50004))
    async with (
        AsyncClient(transport=transport, base_url="http://testserver") as other,
        AsyncClient(transport=transport, base_url="http://testserver") as third,
    ):
        await console_login(other, member.email)
        await console_login(third, stranger.email)
        people = [member.id, stranger.id]
        rows = (await db.scalars(select(LoginSession).where(LoginSession.user_id.in_(people)))).all()
        mine = {s.id for s in rows if s.user_id == member.id}
        theirs = next(s.id for s in rows if s.user_id == stranger.id)

        page = await client.get("/profile")
        assert page.text.count("/sign-out") == len(mine)
        assert "This session" in page.text

        token = await csrf_for(client, "/profile")
        refused = await client.post(f"/profile/sessions/{theirs}/sign-out", data={"csrf_token": token})
        assert refused.status_code == 404
        assert (await third.get("/profile")).status_code == 200
        assert (await other.get("/profile")).status_code == 200

        current = (await db.scalars(
            select(LoginSession.id).where(LoginSession.user_id == member.id, LoginSession.ip == "203.0.113.7")
        )).one()  # fmt: skip
        (elsewhere,) = mine - {current}
        signed_out = await client.post(f"/profile/sessions/{elsewhere}/sign-out", data={"csrf_token": token})
        assert signed_out.status_code == 303
        assert (await client.get("/profile")).status_code == 200
        assert (await other.get("/profile")).status_code == 303

        myself = await client.post(f"/profile/sessions/{current}/sign-out", data={"csrf_token": token})
        assert myself.status_code == 303
        assert myself.headers["location"] == "/login"
        assert (await client.get("/profile")).status_code == 303
