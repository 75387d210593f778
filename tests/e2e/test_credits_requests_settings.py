"""Credits & Allocations in a browser: filter the requests and approve one; change the credits per
cycle through the "Apply change" confirmation; "Reset cycle now", cancelled and then confirmed."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from playwright.async_api import Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, CreditRequest, GroupBudget, RequestStatus
from cockpit.groups.repository import default_group
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import make_account, make_user
from tests.e2e.test_console import sign_in


async def _org(db: AsyncSession) -> tuple[Account, User, User]:
    account, owner = await make_account(db, name="Credits in a Browser")
    account.credit_factor = Decimal(1)
    account.credits_per_cycle = Decimal(120000)
    group = await default_group(db, account.id)
    db.add(
        GroupBudget(
            group_id=group.id, account_id=account.id, monthly=Decimal(50000), extra=Decimal(0),
            auto_approve_limit=Decimal(0),
        )
    )  # fmt: skip
    await db.commit()
    member = await make_user(db, account, email="mia@example.com")
    member.name = "Mia Member"
    await db.commit()
    return account, owner, member


async def _request(
    db: AsyncSession, account: Account, user: User, amount: str, status: RequestStatus, reason: str
) -> uuid.UUID:
    cycle = await current_cycle(db, account)
    decided = status is not RequestStatus.pending
    request = CreditRequest(
        id=uuid.uuid4(), account_id=account.id, user_id=user.id, group_id=user.group_id, cycle_id=cycle.id,
        amount_requested=Decimal(amount), reason=reason, status=status, note="",
        amount_approved=Decimal(amount) if status is RequestStatus.approved else None,
        decided_at=utcnow() if decided else None,
    )  # fmt: skip
    db.add(request)
    await db.commit()
    return request.id


async def _stored_request(db: AsyncSession, request_id: uuid.UUID) -> CreditRequest:
    await db.commit()
    found = await db.scalar(
        select(CreditRequest).where(CreditRequest.id == request_id).execution_options(populate_existing=True)
    )
    assert found is not None
    return found


async def _limit(db: AsyncSession, account_id: uuid.UUID) -> Decimal:
    await db.commit()
    found = await db.scalar(
        select(Account).where(Account.id == account_id).execution_options(populate_existing=True)
    )
    assert found is not None
    return found.credits_per_cycle


async def _cycle_seq(db: AsyncSession, account_id: uuid.UUID) -> int:
    await db.commit()
    seq = await db.scalar(
        select(CreditCycle.seq).where(CreditCycle.account_id == account_id, CreditCycle.closed_at.is_(None))
    )
    return int(seq or 0)


async def test_filter_requests_by_status_and_approve_one(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    account, owner, member = await _org(db)
    pending = await _request(db, account, member, "150", RequestStatus.pending, "Fine-tuning run")
    await _request(db, account, member, "90", RequestStatus.denied, "Old experiment")
    await _request(db, account, member, "40", RequestStatus.approved, "Evals")

    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/credits")
    await page.locator("#tab-requests").click()
    await expect(page).to_have_url(f"{live_server}/credits/requests")
    await page.wait_for_load_state()  # the page's scripts handle what follows
    rows = page.locator("#credit-requests-table tbody tr")
    await expect(rows).to_have_count(3)

    # The status filter swaps the table in place and gives the view its own address.
    await page.locator("#req-status").select_option("pending")
    await expect(rows).to_have_count(1)
    await expect(page).to_have_url(re.compile(r"[?&]status=pending"))
    row = rows.first
    await expect(row).to_contain_text("Mia Member")
    await expect(row).to_contain_text("mia@example.com")
    await expect(row.locator(".badge-warning")).to_have_text("Pending")

    # Selecting the row highlights it and reveals Approve / Deny.
    approve = row.get_by_role("button", name="Approve")
    await expect(approve).to_be_hidden()
    await row.click()
    await expect(row).to_have_class(re.compile(r"\bis-selected\b"))
    await expect(approve).to_be_visible()
    await expect(row.get_by_role("button", name="Deny")).to_be_visible()

    # Approve opens a form with the requested amount; approve less than asked.
    await approve.click()
    dialog = page.locator("#approve-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Mia Member")
    amount = dialog.locator("#approve-amount")
    await expect(amount).to_have_value("150")
    await amount.fill("120")
    await dialog.locator("#approve-submit").click()

    await expect(page.locator(".banner-success")).to_contain_text(
        "Approved 120 credits for Mia Member (of the 150 requested)"
    )
    await expect(page.locator("#req-status")).to_have_value("pending")
    await expect(page.locator(".empty-title")).to_have_text("No pending requests")
    stored = await _stored_request(db, pending)
    assert (stored.status, stored.amount_approved) == (RequestStatus.approved, Decimal(120))

    await page.locator("#req-status").select_option("approved")
    await expect(rows).to_have_count(2)
    await expect(page.locator(f"#req-{pending} .badge-success")).to_have_text("Approved")


async def test_change_credits_per_cycle_through_apply_change(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    account, owner, _ = await _org(db)

    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/credits")
    await page.locator("#tab-settings").click()
    await expect(page).to_have_url(f"{live_server}/credits/settings")
    # Alpine binds the field when the page has loaded: a value typed before then is overwritten.
    await page.wait_for_load_state()

    field = page.get_by_label("Credits per cycle")
    await expect(field).to_have_value("120,000")  # the exact value, with separators
    await field.fill("150000")
    await page.locator("#limit-save").click()
    dialog = page.locator("#limit-confirm")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("heading")).to_have_text("Apply new account credit limit?")
    await expect(dialog).to_contain_text("from 120,000 to 150000")
    await expect(dialog).to_contain_text("takes effect immediately for the current cycle")

    # Cancel first: nothing is sent.
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    assert await _limit(db, account.id) == Decimal(120000)

    await page.locator("#limit-save").click()
    await dialog.get_by_role("button", name="Apply change").click()
    await expect(page.locator(".banner-success")).to_contain_text(
        "Account credit limit set to 150,000 credits per cycle, from 120,000"
    )
    await expect(page.get_by_label("Credits per cycle")).to_have_value("150,000")
    assert await _limit(db, account.id) == Decimal(150000)
    await page.wait_for_load_state()  # the page the form posted to (see above)

    # A limit below the group budgets is refused with the shortfall; the typed value stays.
    await page.get_by_label("Credits per cycle").fill("45000")
    await page.locator("#limit-save").click()
    await dialog.get_by_role("button", name="Apply change").click()
    await expect(page.locator("#settings-limit .banner-error")).to_contain_text("short by 5,000")
    await expect(page.get_by_label("Credits per cycle")).to_have_value("45000")


async def test_reset_cycle_now_cancel_then_confirm(page: Page, live_server: str, db: AsyncSession) -> None:
    account, owner, _ = await _org(db)
    first = await _cycle_seq(db, account.id)
    first = first or 1

    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/credits/settings")
    await expect(page.locator("#current-cycle")).to_contain_text(f"Cycle {first}:")

    reset = page.get_by_role("button", name="Reset cycle now").first
    await reset.click()
    dialog = page.locator("#reset-confirm")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("starts a fresh cycle")
    await expect(dialog).to_contain_text("Credits used in the current cycle reset to zero")
    await expect(dialog).to_contain_text("This cannot be undone.")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(page).to_have_url(f"{live_server}/credits/settings")
    await expect(page.locator(".banner-success")).to_have_count(0)
    assert await _cycle_seq(db, account.id) == first

    await reset.click()
    await dialog.get_by_role("button", name="Reset cycle now").click()
    await expect(page.locator(".banner-success")).to_contain_text(f"Cycle {first + 1} started now")
    await expect(page.locator("#current-cycle")).to_contain_text(f"Cycle {first + 1}:")
    assert await _cycle_seq(db, account.id) == first + 1
