"""The Request log in a browser: open it from the navigation, filter by status, open a call."""

from __future__ import annotations

import re
from decimal import Decimal

from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.builders import make_account, make_user
from tests.e2e.test_console import sign_in
from tests.usage.test_requests_api import usage_record


async def test_browse_filter_and_open_a_call(page: Page, live_server: str, db: AsyncSession) -> None:
    account, owner = await make_account(db, name="Request Log Ltd")
    member = await make_user(db, account, email="analyst@example.com")
    ok = usage_record(account.id, minutes_ago=2, user_id=member.id, model="gpt-4o-mini")
    failed = usage_record(
        account.id, minutes_ago=1, user_id=member.id, model="claude-sonnet", status="error",
        http_status=502, error_type="upstream_error", error_message="The provider is unavailable",
        cost_usd=Decimal(0),
    )  # fmt: skip
    db.add_all([ok, failed])
    await db.commit()

    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Request log").click()
    await expect(page).to_have_url(f"{live_server}/requests")
    await page.wait_for_load_state()  # the page's scripts handle what follows
    await expect(page.locator("h1.page-title")).to_have_text("Request log")

    rows = page.locator("#requests-table tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text("claude-sonnet")
    await expect(rows.nth(1)).to_contain_text("gpt-4o-mini")
    await expect(rows.nth(1)).to_contain_text("analyst@example.com")

    # Filtering by status swaps the table in place and gives the view its own address.
    await page.evaluate("window.__sameDocument = true")
    await page.locator("select[name=status]").select_option("success")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("gpt-4o-mini")
    await expect(page).to_have_url(re.compile(r"[?&]status=success"))
    assert await page.evaluate("window.__sameDocument === true")
    await page.locator("select[name=status]").select_option("error")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator(".badge-danger")).to_have_text("error")

    # The detail page of the failed call.
    await rows.first.get_by_role("link").first.click()
    await expect(page).to_have_url(f"{live_server}/requests/{failed.id}")
    await page.wait_for_load_state()  # the page's scripts handle what follows
    await expect(page.locator("h1.page-title")).to_contain_text("claude-sonnet")
    facts = page.locator(".facts").first
    await expect(facts).to_contain_text("HTTP 502")
    await expect(facts).to_contain_text("upstream_error The provider is unavailable")
    await expect(page.locator("#content-note")).to_contain_text("Content storage is off")
    await page.get_by_role("link", name="Request log").first.click()
    await expect(page).to_have_url(f"{live_server}/requests")
    await page.wait_for_load_state()  # the page's scripts handle what follows
