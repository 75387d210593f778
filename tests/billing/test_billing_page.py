"""ACCOUNT → Billing in the console: without Stripe, the page says so and an owner adds credits by
hand (a reason required; audited; a ledger entry); administrators see it read-only; members not."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.users.models import UserRole
from tests.builders import console_login, csrf_for, make_account, make_user


async def test_not_connected_owner_adds_credits_by_hand(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db, name="Billing Page Co")
    account_id = account.id
    await console_login(client, owner.email)
    page = await client.get("/billing")
    assert page.status_code == 200
    assert "Billing is not connected to Stripe" in page.text
    assert 'data-testid="add-by-hand"' in page.text
    token = await csrf_for(client, "/billing")
    refused = await client.post(
        "/billing/top-ups", data={"csrf_token": token, "credits": "500", "reason": " "}
    )
    assert refused.status_code == 422
    assert "Say why" in refused.text
    hostile = await client.post(
        "/billing/top-ups", data={"csrf_token": token, "credits": "-5", "reason": "x"}
    )
    assert hostile.status_code == 422
    added = await client.post(
        "/billing/top-ups", data={"csrf_token": token, "credits": "1,500.5", "reason": "Paid by invoice 41"}
    )
    assert added.status_code == 303
    after = await client.get("/billing")
    assert "1,500.5" in after.text
    # Nothing used yet (the account has no credits per cycle): all of it is available.
    available = after.text.split('data-testid="available">', 1)[1].split("</dd>", 1)[0]
    assert ">1,500.50<" in available, available
    actions = list(await db.scalars(select(AuditEntry.action).where(AuditEntry.account_id == account_id)))
    assert actions.count("billing.credits_added") == 1
    checkout = await client.post("/billing/checkout", data={"csrf_token": token, "pack": "0"})
    assert checkout.status_code == 409


async def test_admins_read_members_do_not(client: AsyncClient, db: AsyncSession) -> None:
    account, _owner = await make_account(db, name="Billing Roles Co")
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, role=UserRole.member)
    await console_login(client, admin.email)
    page = await client.get("/billing")
    assert page.status_code == 200
    assert 'data-testid="add-by-hand"' not in page.text
    token = await csrf_for(client, "/account")  # (the billing page has no form for an administrator)
    denied = await client.post("/billing/top-ups", data={"csrf_token": token, "credits": "5", "reason": "x"})
    assert denied.status_code == 403
    client.cookies.clear()  # signed out
    await console_login(client, member.email)
    assert (await client.get("/billing")).status_code == 403
