"""Changing one's own sign-in e-mail: a link to the new address (a real SMTP server on 127.0.0.1
captures it), confirmed once while signed in; refusals change nothing."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.auth import email_change
from cockpit.auth.models import LoginSession
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.kit.time import utcnow
from cockpit.users.models import User
from tests.builders import PASSWORD, bearer, console_login, csrf_for, make_account, make_token, make_user
from tests.users.test_mail import SmtpServer, mail_client, smtp  # noqa: F401  (smtp: a fixture)

pytestmark = pytest.mark.usefixtures("cheap_passwords")

LINK = re.compile(r"http://testserver/profile/email/confirm\?token=([0-9a-f]+)")


async def _user(db: AsyncSession, user_id: uuid.UUID) -> User:
    user = await db.get(User, user_id, populate_existing=True)
    assert user is not None
    return user


async def _actions(db: AsyncSession, account_id: uuid.UUID) -> list[AuditEntry]:
    rows = await db.scalars(
        select(AuditEntry).where(AuditEntry.account_id == account_id).order_by(AuditEntry.seq)
    )
    return list(rows)


def _mail_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": 9})


async def _browser(app: Any, email: str) -> AsyncClient:
    http = AsyncClient(
        transport=ASGITransport(app=app, client=("198.51.100.9", 50002)), base_url="http://testserver"
    )
    assert (await console_login(http, email)).status_code == 303
    return http


async def test_the_new_address_is_confirmed_once_by_link(
    app: Any,
    db: AsyncSession,
    database_url: str,
    tmp_path: Path,
    smtp: SmtpServer,  # noqa: F811
) -> None:
    account, _ = await make_account(db)
    person = await make_user(db, account, email="old.address@example.com")
    other_browser = await _browser(app, person.email)

    async with mail_client(database_url, tmp_path, smtp.port) as http:
        assert (await console_login(http, person.email)).status_code == 303
        response = await http.post(
            "/profile/email",
            data={
                "new_email": "  New.Address@Example.COM ",
                "current_password": PASSWORD,
                "csrf_token": await csrf_for(http, "/profile"),
            },
        )
        assert response.status_code == 303
        pending = await _user(db, person.id)
        assert pending.email == "old.address@example.com"  # nothing changes before the confirmation
        assert pending.pending_email == "new.address@example.com"
        assert "new.address@example.com" in (await http.get("/profile")).text

        await http.worker.run_until_idle()
        by_address = {m.rcpt_tos[0]: m for m in smtp.inbox.messages}
        assert set(by_address) == {"new.address@example.com", "old.address@example.com"}
        match = LINK.search(by_address["new.address@example.com"].body)
        assert match is not None
        token = match.group(1)
        assert token not in by_address["old.address@example.com"].body
        assert "new.address@example.com" in by_address["old.address@example.com"].body
        # Only its hash is stored.
        assert pending.pending_email_token_hash == email_change.hash_token(token)

        page = await http.get(f"/profile/email/confirm?token={token}")
        assert page.status_code == 200
        assert "new.address@example.com" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        csrf = await csrf_for(http, "/profile")
        confirmed = await http.post("/profile/email/confirm", data={"token": token, "csrf_token": csrf})
        assert confirmed.status_code == 303

        changed = await _user(db, person.id)
        assert changed.email == "new.address@example.com"
        assert changed.pending_email is None
        assert changed.pending_email_token_hash is None
        # This browser stays signed in; the other session is signed out.
        assert (await http.get("/profile")).status_code == 200
        assert (await other_browser.get("/profile")).status_code == 303
        live = await db.scalars(
            select(LoginSession).where(LoginSession.user_id == person.id, LoginSession.revoked_at.is_(None))
        )
        assert len(list(live)) == 1

        # The link works once.
        again = await http.post("/profile/email/confirm", data={"token": token, "csrf_token": csrf})
        assert again.status_code == 422
        assert "not valid" in again.text
        assert (await _user(db, person.id)).email == "new.address@example.com"

        await http.worker.run_until_idle()
        changed_notice = [m for m in smtp.inbox.messages if "was changed" in str(m.message["Subject"])]
        assert [m.rcpt_tos for m in changed_notice] == [["old.address@example.com"]]
    await other_browser.aclose()

    entries = await _actions(db, account.id)
    changed_entry = next(e for e in entries if e.action == "user.email_changed")
    assert changed_entry.before == {"email": "old.address@example.com"}
    assert changed_entry.after == {"email": "new.address@example.com", "other_sessions_signed_out": 1}
    assert all(token not in str(e.after) for e in entries)
    # The new address signs in; the old one no longer does.
    fresh = AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver")
    assert (await console_login(fresh, "new.address@example.com")).status_code == 303
    await fresh.aclose()
    stale = AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver")
    assert (await console_login(stale, "old.address@example.com")).status_code != 303
    await stale.aclose()


async def test_the_api_starts_and_confirms_a_change_without_showing_the_token(
    db: AsyncSession,
    database_url: str,
    tmp_path: Path,
    smtp: SmtpServer,  # noqa: F811
) -> None:
    account, _ = await make_account(db)
    person = await make_user(db, account)
    raw = await make_token(db, person)

    async with mail_client(database_url, tmp_path, smtp.port) as http:
        started = await http.patch(
            "/api/v1/me",
            json={"email": "API.New@example.com", "current_password": PASSWORD, "name": "Api Person"},
            headers=bearer(raw),
        )
        assert started.status_code == 200, started.text
        assert started.json()["pending_email"] == "api.new@example.com"
        assert started.json()["email"] == person.email
        assert started.json()["name"] == "Api Person"
        me = await http.get("/api/v1/me", headers=bearer(raw))
        assert me.json()["pending_email"] == "api.new@example.com"

        await http.worker.run_until_idle()
        link = next(m for m in smtp.inbox.messages if m.rcpt_tos == ["api.new@example.com"])
        match = LINK.search(link.body)
        assert match is not None
        token = match.group(1)
        assert token not in started.text
        assert token not in me.text

        wrong = await http.post("/api/v1/me/email/confirm", json={"token": "0" * 64}, headers=bearer(raw))
        assert wrong.status_code == 422
        assert wrong.json()["error"]["code"] == "invalid_email_token"
        done = await http.post("/api/v1/me/email/confirm", json={"token": token}, headers=bearer(raw))
        assert done.status_code == 200
        assert done.json()["email"] == "api.new@example.com"
        assert done.json()["pending_email"] is None
    assert (await _user(db, person.id)).email == "api.new@example.com"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "not an address", "current_password": PASSWORD}, 422, "invalid_email"),
        ({"email": "a\u0000b@example.com", "current_password": PASSWORD}, 400, "invalid_text"),
        ({"email": "LONE-SURROGATE", "current_password": PASSWORD}, 400, "invalid_text"),
        (
            {"email": "fine@example.com", "current_password": "wrong-password-123"},
            403,
            "wrong_current_password",
        ),
        ({"email": "fine@example.com"}, 422, "current_password_required"),
    ],
)
async def test_bad_requests_change_nothing(
    db: AsyncSession, client: AsyncClient, body: dict[str, str], status: int, code: str
) -> None:
    account, _ = await make_account(db)
    person = await make_user(db, account)
    raw = await make_token(db, person)

    text = json.dumps({**body, "name": "Should Not Stick"}).replace("LONE-SURROGATE", "a\\ud800b@example.com")
    headers = {**bearer(raw), "Content-Type": "application/json"}

    response = await client.patch("/api/v1/me", content=text.encode(), headers=headers)

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    after = await _user(db, person.id)
    assert (after.email, after.pending_email, after.name) == (person.email, None, "Test User")


async def test_an_address_of_another_person_is_refused_whatever_its_case(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, _ = await make_account(db)
    other_account, _ = await make_account(db)
    person = await make_user(db, account)
    await make_user(db, other_account, email="taken@example.com")
    await console_login(client, person.email)

    response = await client.post(
        "/profile/email",
        data={
            "new_email": "TAKEN@Example.com",
            "current_password": PASSWORD,
            "csrf_token": await csrf_for(client, "/profile"),
        },
    )

    assert response.status_code == 409
    assert "already used by another person" in response.text
    after = await _user(db, person.id)
    assert (after.email, after.pending_email) == (person.email, None)


async def test_without_a_mail_server_the_change_is_refused(db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    person = await make_user(db, account)
    raw = await make_token(db, person)

    response = await client.patch(
        "/api/v1/me", json={"email": "new@example.com", "current_password": PASSWORD}, headers=bearer(raw)
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "mail_not_configured"
    assert (await _user(db, person.id)).pending_email is None


async def test_expired_and_other_peoples_links_are_refused(
    db: AsyncSession, client: AsyncClient, settings: Settings
) -> None:
    account, _ = await make_account(db)
    alice = await make_user(db, account, email="alice@example.com")
    bob = await make_user(db, account, email="bob@example.com")
    mail = _mail_settings(settings)
    _, alice_token = await email_change.start_email_change(
        db, Actor.for_user(alice), mail, new_email="alice.new@example.com", current_password=PASSWORD
    )
    _, bob_token = await email_change.start_email_change(
        db, Actor.for_user(bob), mail, new_email="bob.new@example.com", current_password=PASSWORD
    )
    await db.commit()
    bob_raw = await make_token(db, bob)

    # Alice's link is not Bob's: refused, and neither person changes.
    other = await client.post(
        "/api/v1/me/email/confirm", json={"token": alice_token}, headers=bearer(bob_raw)
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "invalid_email_token"
    assert (await _user(db, alice.id)).email == "alice@example.com"
    assert (await _user(db, bob.id)).email == "bob@example.com"

    # Signed in as Alice, Bob's link shows an error page, not his address.
    await console_login(client, alice.email)
    page = await client.get(f"/profile/email/confirm?token={bob_token}")
    assert page.status_code == 422
    assert "bob.new@example.com" not in page.text

    # An expired link is refused with its own message.
    bob_row = await _user(db, bob.id)
    bob_row.pending_email_expires_at = utcnow() - timedelta(minutes=1)
    await db.commit()
    expired = await client.post(
        "/api/v1/me/email/confirm", json={"token": bob_token}, headers=bearer(bob_raw)
    )
    assert expired.status_code == 422
    assert expired.json()["error"]["code"] == "expired_email_token"
    assert (await _user(db, bob.id)).email == "bob@example.com"
    me = await client.get("/api/v1/me", headers=bearer(bob_raw))
    assert me.json()["pending_email"] is None


async def test_asking_again_replaces_the_earlier_link(db: AsyncSession, settings: Settings) -> None:
    account, _ = await make_account(db)
    person = await make_user(db, account)
    actor, mail = Actor.for_user(person), _mail_settings(settings)
    _, first = await email_change.start_email_change(
        db, actor, mail, new_email="first@example.com", current_password=PASSWORD
    )
    _, second = await email_change.start_email_change(
        db, actor, mail, new_email="second@example.com", current_password=PASSWORD
    )

    with pytest.raises(email_change.InvalidInput):
        email_change.check_token(person, first)
    assert email_change.check_token(person, second) == "second@example.com"


async def test_signed_out_the_link_asks_to_sign_in_first(db: AsyncSession, client: AsyncClient) -> None:
    token = "ab" * 32

    page = await client.get(f"/profile/email/confirm?token={token}")

    assert page.status_code == 200
    assert 'action="/login"' in page.text
    assert f'name="next" value="/profile/email/confirm?token={token}"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"


async def test_a_pending_change_can_be_cancelled(
    db: AsyncSession, client: AsyncClient, settings: Settings
) -> None:
    account, _ = await make_account(db)
    person = await make_user(db, account)
    _, token = await email_change.start_email_change(
        db,
        Actor.for_user(person),
        _mail_settings(settings),
        new_email="x@example.com",
        current_password=PASSWORD,
    )
    await db.commit()
    await console_login(client, person.email)

    response = await client.post(
        "/profile/email/cancel", data={"csrf_token": await csrf_for(client, "/profile")}
    )

    assert response.status_code == 303
    after = await _user(db, person.id)
    assert after.pending_email is None
    with pytest.raises(email_change.InvalidInput):
        email_change.check_token(after, token)
    assert "user.email_change_cancelled" in [e.action for e in await _actions(db, account.id)]
