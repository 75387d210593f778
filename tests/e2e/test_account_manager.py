"""Issue 17 in a browser, part 1: the account manager at the bottom of the sidebar (its menu per role,
by mouse and keyboard, and signing out from it) and the person's own profile (name, time zone and
date format, password change, active sessions). Billing, usage and the model catalogue are in
test_account_manager_billing.py. The e-mail change, avatar picture and organisation logo are not
tested here."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.console.formatting import datetime_text
from cockpit.users.models import User, UserRole
from tests.builders import PASSWORD, make_account, make_user
from tests.e2e.test_console import sign_in

NEW_PASSWORD = "a-brand-new-passw0rd"
ALL_ENTRIES = ["Dashboard", "Profile", "Usage", "Billing", "Models", "API tokens", "Sign out"]


class ConsoleErrors:
    """Every console error and uncaught exception of a page. A page answered on purpose with an
    error status (a refused form, a 403) makes Chromium log "Failed to load resource: ... status of
    N": those statuses are named in ``expected_statuses``; anything else is a problem."""

    def __init__(self, page: Page, *, expected_statuses: tuple[int, ...] = ()) -> None:
        self.found: list[str] = []
        self._expected = tuple(f"status of {status}" for status in expected_statuses)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not any(s in message.text for s in self._expected):
            self.found.append(f"{message.text} ({message.location.get('url')})")


async def signed_in_context_page(browser: Browser, base: str, email: str) -> Page:
    """Another browser (its own cookies) signed in as ``email``; close its context when done."""
    context = await browser.new_context(viewport={"width": 1366, "height": 850})
    other = await context.new_page()
    await sign_in(other, base, email)
    await expect(other).to_have_url(f"{base}/")
    return other


def login_url(base: str, path: str) -> re.Pattern[str]:
    return re.compile(
        rf"^{re.escape(base)}/login\?next=({re.escape(path)}|{re.escape(path.replace('/', '%2F'))})$"
    )


async def _person(db: AsyncSession, role: str) -> User:
    account, owner = await make_account(db, name="Menu Manners Ltd")
    return owner if role == "owner" else await make_user(db, account, role=UserRole(role))


PAGES = {  # entry: (path, heading)
    "Dashboard": ("/", "Dashboard"),
    "Profile": ("/profile", "Your profile"),
    "Usage": ("/usage", "Usage"),
    "Billing": ("/billing", "Billing"),
    "Models": ("/models/catalogue", "Model catalogue"),
    "API tokens": ("/tokens", "API tokens"),
}


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
async def test_the_account_menu_lists_what_the_role_may_see_and_each_entry_opens_its_page(
    page: Page, live_server: str, db: AsyncSession, role: str
) -> None:
    user = await _person(db, role)
    errors = ConsoleErrors(page)
    await sign_in(page, live_server, user.email)
    await expect(page).to_have_url(f"{live_server}/")
    manager = page.locator("[data-testid=account-manager]")
    trigger = manager.locator("button[aria-haspopup=menu]")
    await expect(trigger.locator(".me-role")).to_have_text(role.capitalize())
    menu = manager.get_by_role("menu", name="Account")
    await expect(menu).to_be_hidden()

    await trigger.click()
    await expect(menu).to_be_visible()
    # Every role: Dashboard, Profile, Usage, Models, API tokens, Sign out; Billing for owners and
    # administrators (account:write) only.
    expected = [e for e in ALL_ENTRIES if role != "member" or e != "Billing"]
    await expect(
        menu.get_by_role("menuitem"), f"the account menu of an {role} should list {expected}"
    ).to_have_text(expected)

    for entry, (path, heading) in PAGES.items():
        if entry not in expected:
            continue
        if not await menu.is_visible():
            await trigger.click()
        await menu.get_by_role("menuitem", name=entry).click()
        await expect(page).to_have_url(f"{live_server}{path}")
        await expect(page.locator("h1.page-title")).to_have_text(heading)
    assert errors.found == []


@pytest.mark.parametrize("role", ["owner", "member"])
async def test_the_account_menu_by_keyboard_then_sign_out_from_it(
    page: Page, live_server: str, db: AsyncSession, role: str
) -> None:
    user = await _person(db, role)
    errors = ConsoleErrors(page)
    await sign_in(page, live_server, user.email)
    await expect(page).to_have_url(f"{live_server}/")
    manager = page.locator("[data-testid=account-manager]")
    trigger = manager.locator("button[aria-haspopup=menu]")
    menu = manager.get_by_role("menu", name="Account")
    items = menu.get_by_role("menuitem")

    # Opened by a click, the focus is on the first entry; the arrows move it (and wrap); Escape
    # closes the menu and gives the focus back to the button.
    await trigger.click()
    await expect(trigger).to_have_attribute("aria-expanded", "true")
    await expect(items.first).to_be_focused()
    await expect(items.first).to_have_text("Dashboard")
    await page.keyboard.press("ArrowDown")
    await expect(menu.get_by_role("menuitem", name="Profile")).to_be_focused()
    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("ArrowUp")
    await expect(menu.get_by_role("menuitem", name="Sign out")).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(items.first).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(menu).to_be_hidden()
    await expect(trigger).to_be_focused()
    await expect(trigger).to_have_attribute("aria-expanded", "false")
    # Arrow up on the button opens the menu at its last entry; Enter follows the focused entry.
    await page.keyboard.press("ArrowUp")
    await expect(menu).to_be_visible()
    await expect(menu.get_by_role("menuitem", name="Sign out")).to_be_focused()
    await page.keyboard.press("ArrowUp")
    await expect(menu.get_by_role("menuitem", name="API tokens")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{live_server}/tokens")
    # A click elsewhere closes it.
    await trigger.click()
    await expect(menu).to_be_visible()
    await page.locator("h1.page-title").click()
    await expect(menu).to_be_hidden()

    # Sign out from the menu: the login page, and the console is closed to this browser.
    await trigger.click()
    await menu.get_by_role("menuitem", name="Sign out").click()
    await expect(page).to_have_url(f"{live_server}/login")
    await expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    await page.goto(f"{live_server}/")
    await expect(page).to_have_url(re.compile(rf"^{re.escape(live_server)}/login(\?next=(/|%2F))?$"))
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await page.goto(f"{live_server}/profile")
    await expect(page).to_have_url(login_url(live_server, "/profile"))
    assert errors.found == []


async def test_profile_name_time_zone_and_date_format(page: Page, live_server: str, db: AsyncSession) -> None:
    account, _owner = await make_account(db, name="Dates Ltd")
    member = await make_user(db, account, email="dana.dates@example.com")
    member.name = "Dana Dates"
    zone, locale = account.timezone, account.locale
    await db.commit()
    errors = ConsoleErrors(page, expected_statuses=(422,))
    await sign_in(page, live_server, member.email)
    await expect(page).to_have_url(f"{live_server}/")

    await page.goto(f"{live_server}/profile")
    signed_in = page.locator("#sessions-table tbody tr").first.locator("td").nth(2).locator("time")
    instant = datetime.fromisoformat(await signed_in.get_attribute("datetime") or "")
    # At first, the organisation's time zone and date format.
    await expect(signed_in).to_have_text(datetime_text(instant, ZoneInfo(zone), locale))

    details = page.locator("#details form")
    # A blank name is refused and nothing is saved.
    await details.locator("input[name=name]").fill("   ")
    await details.get_by_role("button", name="Save details").click()
    await expect(page.locator("#details [role=alert]")).to_have_text("The name needs 1 to 200 characters.")
    await expect(details.locator("input[name=name]")).to_have_value("   ")

    await details.locator("input[name=name]").fill("Dana Deadline")
    await details.locator("select[name=timezone]").select_option("Asia/Kathmandu")  # UTC+05:45
    await details.locator("select[name=locale]").select_option("de-DE")
    await details.get_by_role("button", name="Save details").click()
    await expect(page).to_have_url(f"{live_server}/profile")
    await expect(page.locator(".banner-success")).to_contain_text("Your profile is saved.")
    await expect(details.locator("input[name=name]")).to_have_value("Dana Deadline")
    await expect(details.locator("select[name=timezone]")).to_have_value("Asia/Kathmandu")
    await expect(details.locator("select[name=locale]")).to_have_value("de-DE")

    # Dates are now written in Kathmandu's time, the German way ("06.12.2026, 19:50").
    expected = datetime_text(instant, ZoneInfo("Asia/Kathmandu"), "de-DE")
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4}, \d\d:\d\d", expected)
    assert expected != datetime_text(instant, ZoneInfo(zone), locale)
    await expect(signed_in).to_have_text(expected)
    assert errors.found == []

    # The account manager at the foot of the sidebar is "the person's name and avatar" (issue 17):
    # the saved name shows there on the next page.
    await page.goto(f"{live_server}/tokens")
    await expect(
        page.locator("[data-testid=account-manager] .me-name"),
        "the sidebar's account manager should show the person's (new) name, not their e-mail",
    ).to_have_text("Dana Deadline")


async def test_password_change_needs_the_current_password_and_signs_out_the_other_browser(
    page: Page, browser: Browser, live_server: str, db: AsyncSession
) -> None:
    account, _owner = await make_account(db, name="Passwords Ltd")
    member = await make_user(db, account, email="pat.password@example.com")
    old_hash = member.password_hash
    await db.commit()
    errors = ConsoleErrors(page, expected_statuses=(403,))
    await sign_in(page, live_server, member.email)
    await expect(page).to_have_url(f"{live_server}/")
    other = await signed_in_context_page(browser, live_server, member.email)
    try:
        await page.goto(f"{live_server}/profile")
        form = page.locator("#password form")
        await form.locator("input[name=current_password]").fill("not-my-password-1")
        await form.locator("input[name=new_password]").fill(NEW_PASSWORD)
        await form.locator("input[name=confirm_password]").fill(NEW_PASSWORD)
        await form.get_by_role("button", name="Change password").click()
        await expect(page.locator("#password [role=alert]")).to_have_text(
            "The current password is not correct."
        )
        # Nothing changed: the same password, and the other browser is still signed in.
        await db.commit()  # a fresh read
        assert await db.scalar(select(User.password_hash).where(User.id == member.id)) == old_hash
        await other.goto(f"{live_server}/tokens")
        await expect(other).to_have_url(f"{live_server}/tokens")
        await expect(other.locator("h1.page-title")).to_have_text("API tokens")

        await form.locator("input[name=current_password]").fill(PASSWORD)
        await form.locator("input[name=new_password]").fill(NEW_PASSWORD)
        await form.locator("input[name=confirm_password]").fill(NEW_PASSWORD)
        await form.get_by_role("button", name="Change password").click()
        await expect(page).to_have_url(f"{live_server}/profile")
        await expect(page.locator(".banner-success")).to_contain_text(
            "Your password is changed. 1 other session signed out."
        )
        # This browser stays signed in; the other one is signed out on its next page.
        await page.goto(f"{live_server}/tokens")
        await expect(page).to_have_url(f"{live_server}/tokens")
        await other.goto(f"{live_server}/tokens")
        await expect(other).to_have_url(login_url(live_server, "/tokens"))
        # The old password no longer opens the console; the new one does.
        await sign_in(other, live_server, member.email, PASSWORD)
        await expect(other.get_by_text("Incorrect e-mail or password.")).to_be_visible()
        await sign_in(other, live_server, member.email, NEW_PASSWORD)
        await expect(other).to_have_url(f"{live_server}/")
    finally:
        await other.context.close()
    assert errors.found == []


async def test_sign_out_another_session_from_the_sessions_list(
    page: Page, browser: Browser, live_server: str, db: AsyncSession
) -> None:
    account, _owner = await make_account(db, name="Sessions Ltd")
    member = await make_user(db, account, email="sam.sessions@example.com")
    errors = ConsoleErrors(page)
    await sign_in(page, live_server, member.email)
    await expect(page).to_have_url(f"{live_server}/")
    other = await signed_in_context_page(browser, live_server, member.email)
    try:
        await page.goto(f"{live_server}/profile")
        rows = page.locator("#sessions-table tbody tr")
        await expect(rows).to_have_count(2)
        this = rows.filter(has_text="This session")
        await expect(this).to_have_count(1)
        await expect(this.get_by_role("button")).to_have_text("Sign out here")
        elsewhere = rows.filter(has_not_text="This session")
        await elsewhere.get_by_role("button", name="Sign out", exact=True).click()
        await expect(page.locator(".banner-success")).to_contain_text("The session is signed out.")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("This session")

        await other.goto(f"{live_server}/tokens")
        await expect(other).to_have_url(login_url(live_server, "/tokens"))
        await page.goto(f"{live_server}/tokens")  # this one is still signed in
        await expect(page).to_have_url(f"{live_server}/tokens")
    finally:
        await other.context.close()
    assert errors.found == []
