"""Console sign-in and sign-out: cookies, session lifetime, CSRF, redirects and the audit trail."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.app import create_app
from cockpit.audit.models import AuditEntry
from cockpit.auth.models import ApiToken, LoginFailure, LoginSession
from cockpit.kit.time import utcnow
from cockpit.users.models import User, UserRole, UserStatus
from tests.builders import PASSWORD, csrf_for, csrf_from, make_account, make_user
from tests.conftest import make_settings

SESSION = "cockpit_session"
CLIENT_IP = "203.0.113.7"
INVALID = "Incorrect e-mail or password."


# ---- helpers ----


async def login(client: AsyncClient, email: str, password: str = PASSWORD, next: str = "/") -> Response:
    page = await client.get("/login")
    if page.status_code == 303:  # already signed in: the form from any page of this browser
        page = await client.get("/")
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_from(page), "next": next}
    )


def session_cookie_header(response: Response) -> str | None:
    """The Set-Cookie header that sets the session cookie (None when the response sets none)."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{SESSION}=") and not header.startswith(f'{SESSION}=""'):
            return header
    return None


def cookie_attributes(header: str) -> set[str]:
    return {part.strip().split("=", 1)[0].lower() for part in header.split(";")[1:]}


def error_message(response: Response) -> str:
    match = re.search(r'<div class="banner banner-error" role="alert">(.*?)</div>', response.text, re.S)
    assert match, "page shows no error banner"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def nav_html(response: Response) -> str:
    match = re.search(r'<nav class="nav"[^>]*>(.*?)</nav>', response.text, re.S)
    assert match, "page has no navigation"
    return match.group(1)


@asynccontextmanager
async def browser(app: Any, secret: str | None = None) -> AsyncIterator[AsyncClient]:
    """Another browser on the same app, optionally presenting a given session cookie."""
    transport = ASGITransport(app=app, client=(CLIENT_IP, 50001))
    cookies = {SESSION: secret} if secret else None
    async with AsyncClient(transport=transport, base_url="http://testserver", cookies=cookies) as http:
        yield http


async def session_works(app: Any, secret: str) -> bool:
    async with browser(app, secret) as other:
        response = await other.get("/")
    if response.status_code == 200:
        return True
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    return False


async def fresh(db: AsyncSession, stmt: Any) -> list[Any]:
    """Rows as committed now (ends the snapshot, refreshes objects already loaded)."""
    await db.commit()
    return list((await db.scalars(stmt.execution_options(populate_existing=True))).all())


async def write(db: AsyncSession, stmt: Any) -> None:
    await db.commit()
    await db.execute(stmt)
    await db.commit()


async def count(db: AsyncSession, model: Any) -> int:
    await db.commit()
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def signed_in(client: AsyncClient, db: AsyncSession, role: UserRole = UserRole.member) -> User:
    account, _ = await make_account(db)
    user = await make_user(db, account, role=role)
    response = await login(client, user.email)
    assert response.status_code == 303
    return user


# ---- sign-in ----


async def test_login_redirects_and_sets_an_httponly_lax_session_cookie(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)

    response = await login(client, owner.email)

    assert response.status_code == 303
    assert response.headers["location"] == "/"
    header = session_cookie_header(response)
    assert header is not None
    attributes = cookie_attributes(header)
    assert "httponly" in attributes
    assert re.search(r"samesite=lax", header, re.I)
    assert "secure" not in attributes  # http base URL: a Secure cookie would never be sent back
    dashboard = await client.get("/")
    assert dashboard.status_code == 200
    assert owner.email in dashboard.text


async def test_session_cookie_is_secure_when_the_base_url_is_https(
    db: AsyncSession, database_url: str, tmp_path: Path
):
    _, owner = await make_account(db)
    settings = make_settings(database_url, tmp_path, base_url="https://cockpit.example.com")
    app = create_app(settings)
    try:
        transport = ASGITransport(app=app, client=(CLIENT_IP, 50002))
        async with AsyncClient(transport=transport, base_url="https://cockpit.example.com") as http:
            response = await login(http, owner.email)
            assert response.status_code == 303
            header = session_cookie_header(response)
            assert header is not None
            attributes = cookie_attributes(header)
            assert "secure" in attributes
            assert "httponly" in attributes
            assert re.search(r"samesite=lax", header, re.I)
            assert (await http.get("/")).status_code == 200
    finally:
        await app.state.engine.dispose()


async def test_wrong_password_and_unknown_email_look_the_same(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)

    wrong_password = await login(client, owner.email, "not-the-password-1")
    unknown_email = await login(client, "nobody-at-all@example.com", PASSWORD)

    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert error_message(response) == INVALID
        assert session_cookie_header(response) is None
    assert SESSION not in client.cookies
    assert await count(db, LoginSession) == 0
    assert (await client.get("/")).status_code == 303


async def test_email_is_matched_case_insensitively(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)

    response = await login(client, "  " + owner.email.upper() + " ")

    assert response.status_code == 303
    assert session_cookie_header(response) is not None


async def test_each_login_gets_a_fresh_session_id_and_the_old_one_stops_working(
    app: Any, client: AsyncClient, db: AsyncSession
):
    _, owner = await make_account(db)

    assert (await login(client, owner.email)).status_code == 303
    first = client.cookies[SESSION]
    assert (await login(client, owner.email)).status_code == 303
    second = client.cookies[SESSION]

    assert first != second
    assert not await session_works(app, first)
    assert await session_works(app, second)


async def test_logout_invalidates_the_session_on_the_server(app: Any, client: AsyncClient, db: AsyncSession):
    user = await signed_in(client, db)
    secret = client.cookies[SESSION]

    response = await client.post("/logout", data={"csrf_token": await csrf_for(client)})

    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert SESSION not in client.cookies
    # Replaying the old cookie value (e.g. copied before sign-out) no longer works.
    async with browser(app, secret) as other:
        replay = await other.get("/tokens")
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/login")
    [row] = await fresh(db, select(LoginSession).where(LoginSession.user_id == user.id))
    assert row.revoked_at is not None
    actions = await fresh(db, select(AuditEntry.action).where(AuditEntry.actor_id == user.id))
    assert "auth.logout" in actions


# ---- session lifetime ----


@pytest.mark.parametrize(("idle_minutes", "still_signed_in"), [(29, True), (31, False)])
async def test_idle_sessions_end_after_thirty_minutes(
    client: AsyncClient, db: AsyncSession, idle_minutes: int, still_signed_in: bool
):
    user = await signed_in(client, db)
    last_seen = utcnow() - timedelta(minutes=idle_minutes)
    await write(
        db, update(LoginSession).where(LoginSession.user_id == user.id).values(last_seen_at=last_seen)
    )

    response = await client.get("/")

    if still_signed_in:
        assert response.status_code == 200
        # Activity keeps the session alive: last-seen moved forward.
        [row] = await fresh(db, select(LoginSession).where(LoginSession.user_id == user.id))
        assert row.last_seen_at > last_seen + timedelta(minutes=idle_minutes - 1)
    else:
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")


async def test_sessions_end_at_their_absolute_lifetime_even_when_active(
    client: AsyncClient, db: AsyncSession
):
    user = await signed_in(client, db)
    assert (await client.get("/")).status_code == 200
    await write(
        db,
        update(LoginSession)
        .where(LoginSession.user_id == user.id)
        .values(expires_at=utcnow() - timedelta(seconds=1), last_seen_at=utcnow()),
    )

    response = await client.get("/")

    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


async def test_a_deactivated_user_cannot_sign_in_and_loses_their_session(
    client: AsyncClient, db: AsyncSession
):
    user = await signed_in(client, db)
    assert (await client.get("/")).status_code == 200

    await write(db, update(User).where(User.id == user.id).values(status=UserStatus.deactivated))

    kicked_out = await client.get("/")
    assert kicked_out.status_code == 303
    assert kicked_out.headers["location"].startswith("/login")
    again = await login(client, user.email)
    wrong = await login(client, user.email, "not-the-password-1")
    # The right password of a deactivated user answers exactly like a wrong one: no password oracle.
    for response in (again, wrong):
        assert response.status_code == 401
        assert error_message(response) == INVALID
        assert session_cookie_header(response) is None
    assert again.text.replace(user.email, "") == wrong.text.replace(user.email, "")
    assert (await client.get("/")).status_code == 303
    # Both are failed sign-ins (they count for the throttle); the audit log tells them apart.
    await db.commit()
    assert (
        await db.scalar(
            select(func.count()).select_from(LoginFailure).where(LoginFailure.email == user.email)
        )
        == 2
    )
    failed = list(
        await db.scalars(
            select(AuditEntry.after)
            .where(AuditEntry.account_id == user.account_id, AuditEntry.action == "auth.login_failed")
            .order_by(AuditEntry.seq)
        )
    )
    assert failed == [{"failures_last_hour": 1, "reason": "user_deactivated"}, {"failures_last_hour": 2}]


# ---- CSRF ----


@pytest.mark.parametrize("token", [None, "forged-token"])
async def test_login_without_a_valid_csrf_token_is_refused(
    client: AsyncClient, db: AsyncSession, token: str | None
):
    _, owner = await make_account(db)
    await client.get("/login")  # the browser has its CSRF cookie
    form = {"email": owner.email, "password": PASSWORD, "next": "/"}
    if token is not None:
        form["csrf_token"] = token

    response = await client.post("/login", data=form)

    assert response.status_code == 403
    assert session_cookie_header(response) is None
    assert await count(db, LoginSession) == 0


async def test_logout_without_a_valid_csrf_token_keeps_the_session(
    app: Any, client: AsyncClient, db: AsyncSession
):
    await signed_in(client, db)
    secret = client.cookies[SESSION]

    missing = await client.post("/logout", data={})
    forged = await client.post("/logout", data={"csrf_token": "x" * 64})

    assert missing.status_code == 403
    assert forged.status_code == 403
    assert await session_works(app, secret)


async def test_creating_a_token_without_a_valid_csrf_token_creates_nothing(
    client: AsyncClient, db: AsyncSession
):
    await signed_in(client, db)
    form = {"name": "script", "scopes": ["admin"]}

    missing = await client.post("/tokens", data=form)
    forged = await client.post("/tokens", data={**form, "csrf_token": "forged"})

    assert missing.status_code == 403
    assert forged.status_code == 403
    assert await count(db, ApiToken) == 0
    # The same form with the page's token works.
    ok = await client.post("/tokens", data={**form, "csrf_token": await csrf_for(client, "/tokens")})
    assert ok.status_code == 201
    assert await count(db, ApiToken) == 1


async def test_a_csrf_token_from_another_browser_is_refused(app: Any, client: AsyncClient, db: AsyncSession):
    await signed_in(client, db)
    async with browser(app) as attacker:
        foreign = await csrf_for(attacker, "/login")

    response = await client.post("/tokens", data={"name": "x", "scopes": ["admin"], "csrf_token": foreign})

    assert response.status_code == 403
    assert await count(db, ApiToken) == 0


# ---- redirects after sign-in ----


@pytest.mark.parametrize(
    ("next_value", "expected"),
    [
        ("//evil.com", "/"),
        ("https://evil.com", "/"),
        ("https://evil.com/tokens", "/"),
        ("/\\evil.com", "/"),
        ("evil.com", "/"),
        ("/tokens", "/tokens"),
        ("/audit?action=auth.login", "/audit?action=auth.login"),
    ],
)
async def test_next_only_follows_same_site_paths(
    client: AsyncClient, db: AsyncSession, next_value: str, expected: str
):
    _, owner = await make_account(db)

    response = await login(client, owner.email, next=next_value)

    assert response.status_code == 303
    assert response.headers["location"] == expected


async def test_signed_in_visit_to_login_does_not_follow_a_foreign_next(client: AsyncClient, db: AsyncSession):
    await signed_in(client, db)

    response = await client.get("/login", params={"next": "//evil.com/phish"})

    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_unauthenticated_page_redirects_to_login_and_back(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)

    response = await client.get("/tokens")

    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/tokens"]}
    page = await client.get(response.headers["location"])
    assert 'name="next" value="/tokens"' in page.text
    signed = await client.post(
        "/login",
        data={"email": owner.email, "password": PASSWORD, "csrf_token": csrf_from(page), "next": "/tokens"},
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == "/tokens"
    assert (await client.get("/tokens")).status_code == 200


# ---- permissions in the console ----


async def test_a_member_gets_a_403_page_for_the_audit_log_and_no_nav_link(
    client: AsyncClient, db: AsyncSession
):
    await signed_in(client, db, UserRole.member)

    response = await client.get("/audit")
    dashboard = await client.get("/")

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Not permitted" in response.text
    assert dashboard.status_code == 200
    assert "Audit log" not in nav_html(dashboard)
    assert 'href="/audit"' not in nav_html(dashboard)


async def test_an_admin_sees_the_audit_log_link_and_page(client: AsyncClient, db: AsyncSession):
    await signed_in(client, db, UserRole.admin)

    dashboard = await client.get("/")
    audit = await client.get("/audit")

    assert "Audit log" in nav_html(dashboard)
    assert 'href="/audit"' in nav_html(dashboard)
    assert audit.status_code == 200


# ---- audit trail ----


async def test_failed_and_successful_logins_are_audited(client: AsyncClient, db: AsyncSession):
    account, owner = await make_account(db)
    owner_id, owner_email = owner.id, owner.email

    assert (await login(client, owner_email, "wrong-password-123")).status_code == 401
    assert (await login(client, owner_email)).status_code == 303

    entries = await fresh(
        db,
        select(AuditEntry)
        .where(AuditEntry.account_id == account.id, AuditEntry.action.like("auth.%"))
        .order_by(AuditEntry.seq),
    )
    assert [e.action for e in entries] == ["auth.login_failed", "auth.login"]
    failed, success = entries
    assert failed.target_id == str(owner_id)
    assert failed.actor_id is None
    assert failed.ip == CLIENT_IP
    assert failed.after == {"failures_last_hour": 1}
    assert success.actor_id == owner_id
    assert success.actor_label == owner_email
    assert success.ip == CLIENT_IP
    assert PASSWORD not in str(failed.after) + str(success.after)


async def test_an_unknown_email_writes_no_audit_entry_to_any_account(client: AsyncClient, db: AsyncSession):
    account, _ = await make_account(db)
    before = await count(db, AuditEntry)

    assert (await login(client, f"ghost-{uuid.uuid4().hex[:6]}@example.com")).status_code == 401

    assert await count(db, AuditEntry) == before
    entries = await fresh(db, select(AuditEntry).where(AuditEntry.account_id == account.id))
    assert all(not e.action.startswith("auth.") for e in entries)
