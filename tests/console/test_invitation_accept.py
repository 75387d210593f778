"""The public page where an invitee joins: set a password, and be signed in to the console."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.invitations.models import Invitation
from cockpit.kit.time import utcnow
from cockpit.users.models import User
from tests.builders import console_login
from tests.console.test_users_pages import (
    NEW_PASSWORD,
    invitations_of,
    invite_via_form,
    link_token,
    signed_in_org,
)


@pytest.fixture
async def other_client(app) -> AsyncIterator[AsyncClient]:  # type: ignore[no-untyped-def]
    """The invitee's browser."""
    transport = ASGITransport(app=app, client=("198.51.100.9", 50001))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_accepting_an_invitation_signs_the_person_in(
    db: AsyncSession, client: AsyncClient, other_client: AsyncClient
) -> None:
    org = await signed_in_org(db, client, name="Nimbus Analytics")
    token = link_token(await invite_via_form(client, "new.hire@example.com", name="New Hire"))

    form = await other_client.get(f"/invite/{token}")
    assert form.status_code == 200
    assert "Join Nimbus Analytics" in form.text
    assert 'value="new.hire@example.com" readonly disabled' in form.text
    assert 'value="New Hire"' in form.text
    assert form.headers["referrer-policy"] == "no-referrer"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    post = {"csrf_token": csrf.group(1), "name": "New Hire"}

    mismatch = await other_client.post(
        f"/invite/{token}", data={**post, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD + "x"}
    )
    assert mismatch.status_code == 422
    assert "The two passwords are not the same." in mismatch.text

    weak = await other_client.post(
        f"/invite/{token}", data={**post, "password": "onlyletters", "password_confirm": "onlyletters"}
    )
    assert weak.status_code == 422
    assert "Passwords need 12 to 256 characters" in weak.text

    done = await other_client.post(
        f"/invite/{token}", data={**post, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/"  # the console, not an empty sign-in form
    console = await other_client.get("/")
    assert console.status_code == 200
    assert "Welcome to Nimbus Analytics. You are signed in as new.hire@example.com." in console.text
    assert 'action="/logout"' in console.text
    [invitation] = await invitations_of(db, org.id)
    assert invitation.accepted_at is not None
    logins = await db.scalars(
        select(AuditEntry.target_label).where(
            AuditEntry.account_id == org.id, AuditEntry.action == "auth.login"
        )
    )
    assert "new.hire@example.com" in list(logins)  # recorded like any sign-in
    # The password set is the one that signs in next time.
    other_client.cookies.clear()
    signed_in = await console_login(other_client, "new.hire@example.com", NEW_PASSWORD)
    assert signed_in.status_code == 303


async def test_used_expired_revoked_and_unknown_links_get_a_clear_page(
    db: AsyncSession, client: AsyncClient, other_client: AsyncClient
) -> None:
    org = await signed_in_org(db, client)
    expired = link_token(await invite_via_form(client, "late@example.com"))
    used = link_token(await invite_via_form(client, "used@example.com"))
    await db.execute(
        update(Invitation)
        .where(Invitation.email == "late@example.com")
        .values(expires_at=utcnow() - timedelta(hours=1))
    )
    await db.execute(
        update(Invitation).where(Invitation.email == "used@example.com").values(accepted_at=utcnow())
    )
    await db.commit()

    cases = {
        expired: (409, "This invitation link has expired. Ask your administrator to resend it."),
        used: (409, "This invitation was already used. Sign in with your e-mail and password."),
        "no-such-link": (404, "This invitation link is not valid."),
    }
    for token, (status, message) in cases.items():
        page = await other_client.get(f"/invite/{token}")
        assert page.status_code == status, token
        assert message in page.text
        assert 'href="/login"' in page.text
        assert 'name="password"' not in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', (await other_client.get("/login")).text)
        assert csrf
        refused = await other_client.post(
            f"/invite/{token}",
            data={
                "csrf_token": csrf.group(1),
                "name": "X",
                "password": NEW_PASSWORD,
                "password_confirm": NEW_PASSWORD,
            },
        )
        assert refused.status_code == status
    db.expire_all()
    count = await db.scalar(select(func.count()).select_from(User).where(User.account_id == org.id))
    await db.commit()
    assert count == 1  # nobody joined
