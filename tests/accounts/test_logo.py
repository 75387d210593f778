"""The organisation's logo: set by owners and admins, shown in every member's sidebar, audited."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.tenancy.models import Account, AccountLogo
from cockpit.users.models import UserRole
from tests.builders import bearer, console_login, csrf_for, make_account, make_token, make_user
from tests.profile.test_avatar import jpeg, png

pytestmark = pytest.mark.usefixtures("cheap_passwords")


def _sidebar_top(html: str) -> str:
    return html.split('<nav class="nav"', 1)[0]


async def test_an_admin_uploads_the_logo_every_member_sees_it(db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account)
    logo = jpeg(200, 100)
    await console_login(client, admin.email)

    uploaded = await client.post(
        "/account/logo",
        data={"csrf_token": await csrf_for(client, "/account")},
        files={"file": ("logo.html", logo, "text/html")},
    )
    assert uploaded.status_code == 303

    client.cookies.clear()  # sign in as someone else
    await console_login(client, member.email)
    home = await client.get("/")
    assert 'src="/account/logo?v=' in _sidebar_top(home.text)
    served = await client.get("/account/logo")
    assert served.status_code == 200
    assert served.content == logo
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["cache-control"].startswith("private")
    entries = await db.scalars(
        select(AuditEntry).where(
            AuditEntry.account_id == account.id, AuditEntry.action == "account.logo_changed"
        )
    )
    assert [(e.after or {}).get("logo") for e in entries] == ["added"]


async def test_a_member_may_not_change_the_logo(db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account)
    await console_login(client, member.email)

    page = await client.post(
        "/account/logo",
        data={"csrf_token": await csrf_for(client, "/account")},
        files={"file": ("logo.png", png(), "image/png")},
    )
    headers = bearer(await make_token(db, member))
    api = await client.put("/api/v1/account/logo", content=png(), headers=headers)
    removal = await client.delete("/api/v1/account/logo", headers=headers)

    assert (page.status_code, api.status_code, removal.status_code) == (403, 403, 403)
    assert await db.get(AccountLogo, account.id) is None
    assert (
        "/account/logo"
        not in (await client.get("/account")).text.split('id="logo"')[1].split("</section>")[0]
    )


async def test_another_accounts_logo_is_never_served(db: AsyncSession, client: AsyncClient) -> None:
    _, owner = await make_account(db)
    other_account, _ = await make_account(db)
    stranger = await make_user(db, other_account)
    await client.put("/api/v1/account/logo", content=png(), headers=bearer(await make_token(db, owner)))

    await console_login(client, stranger.email)

    assert (await client.get("/account/logo")).status_code == 404
    assert "/account/logo" not in _sidebar_top((await client.get("/")).text)


async def test_the_api_sets_and_removes_the_logo_and_refuses_bad_files(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner = await make_account(db)
    headers = bearer(await make_token(db, owner))

    bad = await client.put("/api/v1/account/logo", content=b"<svg onload=alert(1)>", headers=headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_image"
    assert await db.get(AccountLogo, account.id) is None

    put = await client.put("/api/v1/account/logo", content=png(8, 8), headers=headers)
    assert put.status_code == 200
    assert put.json()["logo_updated_at"] is not None
    got = await client.get("/api/v1/account/logo", headers=headers)
    assert (got.status_code, got.content) == (200, png(8, 8))

    gone = await client.delete("/api/v1/account/logo", headers=headers)
    assert gone.json()["logo_updated_at"] is None
    assert (await client.get("/api/v1/account/logo", headers=headers)).status_code == 404
    refreshed = await db.get(Account, account.id, populate_existing=True)
    assert refreshed is not None
    assert refreshed.logo_updated_at is None
    entries = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account.id, AuditEntry.action == "account.logo_changed")
        .order_by(AuditEntry.seq)
    )
    assert [(e.after or {}).get("logo") for e in entries] == ["added", "removed"]
