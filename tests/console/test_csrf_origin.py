"""Console forms: the CSRF token is bound to the session, a cross-site request is refused, pages are
not cached, and access logs never show an invitation link's token."""

from __future__ import annotations

import logging
from typing import Any

from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import ApiToken
from cockpit.console.web import CSRF_COOKIE
from cockpit.kit.logs import RedactSecrets, redact
from tests.builders import console_login, csrf_for, make_account, make_user


async def tokens_of(db: AsyncSession) -> int:
    await db.rollback()
    return int(await db.scalar(select(func.count()).select_from(ApiToken)) or 0)


async def test_a_csrf_token_from_another_session_is_refused(
    app: Any, client: AsyncClient, db: AsyncSession
) -> None:
    account, attacker = await make_account(db, name="Bound Co")
    victim = await make_user(db, account)
    # The attacker signs in and takes a valid pair (CSRF cookie, token) of their own session ...
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as other:
        await console_login(other, attacker.email)
        token = await csrf_for(other, "/tokens")
        cookie = other.cookies.get(CSRF_COOKIE)
    assert cookie
    # ... and plants the cookie in the victim's browser (cookie tossing) with a form carrying the token.
    await console_login(client, victim.email)
    client.cookies.set(CSRF_COOKIE, cookie)
    before = await tokens_of(db)
    response = await client.post(
        "/tokens", data={"name": "planted", "scopes": "gateway", "csrf_token": token}
    )
    assert response.status_code == 403
    assert "expired or did not come from Cockpit" in response.text
    assert await tokens_of(db) == before
    # The victim's own page still works.
    own = await client.post(
        "/tokens", data={"name": "mine", "scopes": "gateway", "csrf_token": await csrf_for(client, "/tokens")}
    )
    assert own.status_code == 201
    assert await tokens_of(db) == before + 1


async def test_a_cross_origin_post_is_refused_even_with_a_valid_token(
    client: AsyncClient, db: AsyncSession
) -> None:
    _account, owner = await make_account(db, name="Origin Co")
    await console_login(client, owner.email)
    before = await tokens_of(db)
    for headers in (
        {"origin": "https://evil.example"},
        {"origin": "null", "sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "cross-site"},
        {"origin": "file://"},
    ):
        csrf = await csrf_for(client, "/tokens")
        response = await client.post(
            "/tokens", data={"name": "x", "scopes": "gateway", "csrf_token": csrf}, headers=headers
        )
        assert response.status_code == 403, headers
        assert "another site" in response.text
    assert await tokens_of(db) == before
    same = await client.post(
        "/tokens",
        data={"name": "same", "scopes": "gateway", "csrf_token": await csrf_for(client, "/tokens")},
        headers={"origin": "http://testserver", "sec-fetch-site": "same-origin"},
    )
    assert same.status_code == 201
    assert await tokens_of(db) == before + 1


async def test_the_page_showing_a_new_token_is_not_cached(client: AsyncClient, db: AsyncSession) -> None:
    _account, owner = await make_account(db, name="Cache Co")
    await console_login(client, owner.email)
    response = await client.post(
        "/tokens",
        data={"name": "shown once", "scopes": "gateway", "csrf_token": await csrf_for(client, "/tokens")},
    )
    assert response.status_code == 201
    assert "ck_" in response.text
    assert response.headers["cache-control"] == "no-store"
    static = await client.get("/static/css/cockpit.css")
    assert static.headers.get("cache-control") != "no-store"


def test_access_log_lines_never_show_an_invitation_token() -> None:
    secret = "inv_Zt0p-SECRET-value_123"
    assert secret not in redact(f'GET /invite/{secret} HTTP/1.1" 200')
    assert "/invite/[redacted]" in redact(f"/invite/{secret}?next=/")
    assert secret not in redact(f"/api/v1/x?token={secret}&a=1")
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/invite/{secret}", "1.1", 303), None,
    )  # fmt: skip
    assert RedactSecrets().filter(record)
    assert secret not in record.getMessage()
