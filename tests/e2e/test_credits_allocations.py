"""Credits & Allocations, Allocations tab in a browser: expand the Default group, edit a member's
monthly allocation in place ("Unsaved", save, green banner, the group's figures recalculated without a
page reload), and a refused edit that keeps what was typed until Escape."""

from __future__ import annotations

from decimal import Decimal

from playwright.async_api import Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import GroupBudget, MemberAllocation
from cockpit.groups.repository import default_group
from tests.builders import make_account, make_user
from tests.e2e.test_console import sign_in


async def test_edit_a_members_monthly_allocation_in_place(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Allocations in a Browser")
    account.credit_factor = Decimal(1)
    account.credits_per_cycle = Decimal(120000)
    group = await default_group(db, account.id)
    cycle = await current_cycle(db, account)
    db.add(
        GroupBudget(
            group_id=group.id, account_id=account.id, monthly=Decimal(50000), extra=Decimal(0),
            auto_approve_limit=Decimal(0),
        )
    )  # fmt: skip
    member = await make_user(db, account, email="mia@example.com")
    member.name = "Mia Member"
    db.add(
        MemberAllocation(
            user_id=member.id, account_id=account.id, monthly=Decimal(10000), extra=Decimal(0),
            extra_cycle_id=cycle.id, signup_shortfall=Decimal(0),
        )
    )  # fmt: skip
    await db.commit()

    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/credits")
    await page.locator("#tab-allocations").click()
    await expect(page).to_have_url(f"{live_server}/credits/allocations")
    await page.wait_for_load_state()  # the tab's script handles the clicks below
    await page.evaluate("window.__notReloaded = true")

    group_row = page.locator(f"#alloc-g-{group.id}")
    await expect(group_row.locator(".alloc-distributed")).to_have_text("10,000.00")
    await expect(group_row.locator(".alloc-available")).to_have_text("40,000.00")

    # Expand Default: its members, with search and the pagination summary.
    await group_row.get_by_role("button", name="Default", exact=True).click()
    await expect(page.get_by_placeholder("Search members in Default…")).to_be_visible()
    row = page.locator(f"#alloc-m-{member.id}")
    await expect(row).to_contain_text("mia@example.com")
    await expect(page.locator(".alloc-pagination")).to_contain_text("of 2")

    # A refused edit: the red banner says by how much, and the typed value stays until Escape.
    extra = row.locator('[data-field="extra"]')
    await extra.locator(".alloc-value").click()
    await extra.locator("input").fill("45000")
    await row.locator(".alloc-save").click()
    await expect(page.locator("#alloc-error")).to_contain_text(
        "Default would distribute 55,000 credits, which exceeds its budget of 50,000 by 5,000."
    )
    await expect(extra.locator("input")).to_have_value("45000")
    await expect(row.locator(".alloc-unsaved")).to_be_visible()
    await extra.locator("input").press("Escape")
    await expect(row.locator(".alloc-unsaved")).to_be_hidden()
    await expect(extra.locator(".alloc-value")).to_have_text("0.00")

    # Click the monthly figure: an input with the accent border; a change shows "Unsaved" and save.
    monthly = row.locator('[data-field="monthly"]')
    await monthly.locator(".alloc-value").click()
    field = monthly.locator("input")
    await expect(field).to_be_focused()
    await expect(field).to_have_css("border-top-color", "rgb(91, 76, 240)")
    await expect(row.locator(".alloc-save")).to_be_hidden()
    await field.fill("12,500.5")
    # An unsaved edit of the group's row survives the member's save (which refreshes that row).
    group_extra = group_row.locator('[data-field="extra"]')
    await group_extra.locator(".alloc-value").click()
    await group_extra.locator("input").fill("2500")
    await expect(row.locator(".alloc-unsaved")).to_have_text("Unsaved")
    await row.locator(".alloc-save").click()

    await expect(page.locator("#alloc-success")).to_contain_text(
        "Allocation saved: Mia Member — monthly 10,000 → 12,500.5."
    )
    await expect(monthly.locator(".alloc-value")).to_have_text("12,500.50")
    await expect(monthly.locator(".alloc-value")).to_have_attribute(
        "title", "Exact value: 12,500.5 credits. Click to edit."
    )
    await expect(monthly.locator(".alloc-value")).to_be_visible()
    await expect(field).to_be_hidden()
    await expect(row.locator(".alloc-unsaved")).to_be_hidden()
    await expect(group_row.locator(".alloc-distributed")).to_have_text("12,500.50")
    await expect(group_row.locator(".alloc-available")).to_have_text("37,499.50")
    await expect(group_row.locator(".alloc-toggle")).to_have_attribute("aria-expanded", "true")
    assert await page.evaluate("window.__notReloaded === true")
    await expect(group_extra.locator("input")).to_have_value("2500")
    await expect(group_row.locator(".alloc-unsaved")).to_be_visible()
    await group_extra.locator("input").press("Escape")
    await expect(group_row.locator(".alloc-unsaved")).to_be_hidden()

    # The group's own budget, saved with Enter: its available figure follows, the group stays open.
    await group_row.locator('[data-field="monthly"] .alloc-value').click()
    await group_row.locator('[data-field="monthly"] input').fill("60000")
    await group_row.locator('[data-field="monthly"] input').press("Enter")
    await expect(page.locator("#alloc-success")).to_contain_text(
        "Allocation saved: Default — monthly 50,000 → 60,000."
    )
    await expect(group_row.locator(".alloc-available")).to_have_text("47,499.50")
    await expect(group_row.locator(".alloc-toggle")).to_have_attribute("aria-expanded", "true")
    await expect(page.locator(".alloc-gnote")).to_contain_text("available 47,499.50")
    assert await page.evaluate("window.__notReloaded === true")

    await db.commit()
    stored = await db.scalar(select(MemberAllocation.monthly).where(MemberAllocation.user_id == member.id))
    assert stored == Decimal("12500.5")
