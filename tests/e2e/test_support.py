"""Support in a browser: a member files a ticket, an administrator (in a browser of their own)
replies, adds an internal note and resolves it, and the member sees the reply (not the note) and the
new status; a hostile subject never runs as script."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.users.models import UserRole
from tests.builders import make_account, make_user
from tests.e2e.test_console import sign_in

HOSTILE_SUBJECT = 'Model access <img src=x onerror="window.__xss = 1">'


async def test_member_files_admin_replies_and_resolves_member_sees_it(
    page: Page, browser: Browser, live_server: str, db: AsyncSession
) -> None:
    account, _owner = await make_account(db, name="Support in a Browser")
    member = await make_user(db, account, email="mia.support@example.com")
    admin = await make_user(db, account, role=UserRole.admin, email="ada.support@example.com")
    member.name, admin.name = "Mia Member", "Ada Admin"
    await db.commit()

    # The member files a ticket from Support → New ticket.
    await sign_in(page, live_server, member.email)
    await page.goto(f"{live_server}/support")
    await expect(page.locator("h1")).to_have_text("Support")
    await page.locator("#new-ticket").click()
    dialog = page.locator("#file-ticket")
    await expect(dialog).to_be_visible()
    await dialog.locator("#ticket-subject").fill(HOSTILE_SUBJECT)
    await dialog.locator("#ticket-category").select_option("access")
    await dialog.locator("#ticket-priority").select_option("high")
    await dialog.locator("#ticket-description").fill("I cannot use claude-sonnet-4 since this morning.")
    await dialog.get_by_role("button", name="File ticket").click()
    await expect(page.locator(".banner-success")).to_contain_text("Ticket #1 was filed.")
    await expect(page.locator("#ticket-title")).to_contain_text(HOSTILE_SUBJECT)
    await expect(page.locator("#ticket-status")).to_have_text("New")
    ticket_url = page.url
    await page.locator("#attach-file").set_input_files(
        files=[{"name": "error.log", "mimeType": "text/plain", "buffer": b"502 upstream error\n"}]
    )
    await page.locator("#attach-submit").click()
    await expect(page.locator(".banner-success")).to_contain_text("Attached error.log.")
    await expect(page.locator("[data-testid=attachment]")).to_have_text("error.log")

    # The administrator, in another browser context, finds it in the queue and answers.
    context = await browser.new_context(viewport={"width": 1366, "height": 850})
    admin_page = await context.new_page()
    try:
        await sign_in(admin_page, live_server, admin.email)
        await admin_page.goto(f"{live_server}/support")
        await admin_page.locator("#support-priority").select_option("high")
        row = admin_page.locator("#tickets-table tbody tr")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("Mia Member")
        await row.locator("a.ticket-link").click()
        await expect(admin_page.locator("#ticket-context")).to_contain_text("Default")
        await expect(admin_page.locator("[data-testid=attachment]")).to_have_text("error.log")

        await admin_page.locator("#reply-internal").check()
        await admin_page.locator("#reply-body").fill("Her group has no access policy for it yet.")
        await admin_page.locator("#reply-submit").click()
        await expect(admin_page.locator(".banner-success")).to_contain_text("Internal note added.")
        await expect(admin_page.locator("[data-testid=internal-note]")).to_have_count(1)

        await admin_page.locator("#reply-body").fill("You can use claude-sonnet-4 again now.")
        await admin_page.locator("#reply-submit").click()
        await expect(admin_page.locator(".banner-success")).to_contain_text("Reply sent.")
        await expect(admin_page.locator("#ticket-status")).to_have_text("Open")

        await admin_page.locator("#ticket-status-select").select_option("resolved")
        await admin_page.locator("#ticket-assignee-select").select_option(str(admin.id))
        await admin_page.locator("#ticket-save").click()
        await expect(admin_page.locator(".banner-success")).to_contain_text("Ticket updated.")
        await expect(admin_page.locator("#ticket-status")).to_have_text("Resolved")
    finally:
        await context.close()

    # The member sees the reply and the new status, never the internal note.
    await page.goto(ticket_url)
    await expect(page.locator("#ticket-status")).to_have_text("Resolved")
    await expect(page.locator("[data-testid=reply]")).to_contain_text(
        "You can use claude-sonnet-4 again now."
    )
    await expect(page.locator("[data-testid=internal-note]")).to_have_count(0)
    await expect(page.get_by_text("no access policy")).to_have_count(0)
    await page.goto(f"{live_server}/support")
    await expect(page.locator("#tickets-table tbody tr")).to_contain_text("Resolved")
    assert await page.evaluate("window.__xss") is None
