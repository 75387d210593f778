"""Invite → accept → sign in → deactivate → the deactivated user's next request fails."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.builders import make_account
from tests.e2e.test_console import sign_in

NEW_PASSWORD = "a-brand-new-passw0rd"


async def test_invite_accept_sign_in_then_deactivation_locks_the_user_out(
    page: Page, browser: Browser, live_server: str, db: AsyncSession
) -> None:
    _, owner = await make_account(db, name="Invitational Ltd")
    await sign_in(page, live_server, owner.email)

    # The admin invites someone from the users page.
    await page.goto(f"{live_server}/users")
    await page.get_by_role("button", name="Invite").first.click()
    form = page.locator("#invite-form")
    await expect(form).to_be_visible()
    await form.locator("input[name=email]").fill("new.hire@example.com")
    await form.locator("input[name=name]").fill("New Hire")
    await form.get_by_role("button", name="Send invitation").click()
    link_field = page.locator("[data-testid=invite-link]")
    await expect(link_field).to_be_visible()
    link = await link_field.input_value()
    assert "/invite/" in link

    # The invitee opens the link in their own browser and chooses a password.
    context = await browser.new_context(viewport={"width": 1366, "height": 850})
    invitee = await context.new_page()
    try:
        await invitee.goto(link)
        await expect(invitee.get_by_role("heading", name="Join Invitational Ltd")).to_be_visible()
        await expect(invitee.get_by_label("E-mail")).to_have_value("new.hire@example.com")
        await invitee.locator("input[name=password]").fill(NEW_PASSWORD)
        await invitee.locator("input[name=password_confirm]").fill(NEW_PASSWORD)
        await invitee.get_by_role("button", name="Create my account").click()
        # Signed in at once: the console, not an empty sign-in form.
        await expect(invitee).to_have_url(f"{live_server}/")
        await expect(invitee.locator(".banner-success")).to_contain_text(
            "You are signed in as new.hire@example.com"
        )
        await invitee.goto(f"{live_server}/tokens")
        await expect(invitee.locator("h1")).to_have_text("API tokens")

        # The link works once.
        await invitee.goto(link)
        await expect(invitee.get_by_role("heading", name="Invitation already used")).to_be_visible()

        # The admin deactivates the new user.
        await page.goto(f"{live_server}/users?q=new.hire")
        await page.get_by_role("link", name="New Hire").first.click()
        await page.get_by_role("button", name="Deactivate user").click()
        await page.locator("#confirm-ok").click()
        await expect(page.locator(".banner-success")).to_be_visible()

        # Their very next request is refused: the console sends them to the login page.
        await invitee.goto(f"{live_server}/tokens")
        await expect(invitee).to_have_url(f"{live_server}/login?next=/tokens")
        # And signing in again is refused, as with a wrong password (no hint that the password is right).
        await sign_in(invitee, live_server, "new.hire@example.com", NEW_PASSWORD)
        await expect(invitee.get_by_text("Incorrect e-mail or password.")).to_be_visible()
    finally:
        await context.close()
