"""Issue 17 in a browser, part 3: the person's avatar picture, the organisation's logo and the change
of sign-in e-mail (its link captured by a real SMTP server on 127.0.0.1, sent by the job worker of
the served process), and both pages on a phone-wide screen. The rest of the profile and the account
manager are in test_account_manager.py."""

from __future__ import annotations

import asyncio
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import Browser, Locator, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.kit.time import utcnow
from cockpit.tenancy.models import AccountLogo
from cockpit.users.models import User, UserAvatar, UserRole
from tests.builders import PASSWORD, make_account, make_user
from tests.e2e.conftest import _free_port, _serve
from tests.e2e.test_account_manager import ConsoleErrors, signed_in_context_page
from tests.e2e.test_console import sign_in
from tests.e2e.test_layout import MEASURE
from tests.users.test_mail import Received

MAIL_TIMEOUT = 30.0  # seconds: the worker looks for due jobs every 0.1 s
NOT_AN_IMAGE = "The file is not a PNG, JPEG or WebP image (its content is of another kind)."


def png(width: int, height: int) -> bytes:
    """A real PNG of grey pixels, built by hand (no image library)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def upload(name: str, data: bytes, mime: str = "image/png") -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


async def wait_until_loaded(page: Page, image: Locator, width: int) -> None:
    """The browser fetched and decoded the picture: it is ``width`` pixels wide in itself."""
    handle = await image.element_handle()
    await page.wait_for_function(
        "([img, width]) => img.complete && img.naturalWidth === width", arg=[handle, width]
    )


async def served(page: Page, base: str, src: str) -> tuple[int, str, bytes]:
    """What the server answers this browser (its cookies) for ``src``: status, type, body."""
    response = await page.request.get(f"{base}{src}")
    return response.status, response.headers.get("content-type", ""), await response.body()


async def csrf_of(page: Page) -> str:
    """The person's own CSRF token, from a form of the page they have open."""
    token = await page.locator("form input[name=csrf_token]").first.get_attribute("value")
    assert token
    return token


# ---- the avatar picture ----


async def test_an_avatar_is_uploaded_shown_in_the_sidebar_refused_when_fake_and_removed(
    page: Page, browser: Browser, live_server: str, db: AsyncSession
) -> None:
    account, _owner = await make_account(db, name="Portraits Ltd")
    member = await make_user(db, account, email="ava.avatar@example.com")
    member.name = "Ava Avatar"
    await db.commit()
    _elsewhere, outsider = await make_account(db, name="Elsewhere Ltd")
    errors = ConsoleErrors(page, expected_statuses=(422,))
    await sign_in(page, live_server, member.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/profile")
    me_button = page.locator("[data-testid=account-manager] button[aria-haspopup=menu]")
    section = page.locator("#avatar")
    # At first the initial of the name, no picture.
    await expect(me_button.locator("span.avatar")).to_have_text("A")
    await expect(me_button.locator("img")).to_have_count(0)
    await expect(section.get_by_role("button", name="Remove picture")).to_have_count(0)

    # A text file named .png is refused by its bytes, clearly, and nothing changes.
    await section.locator("input[type=file]").set_input_files(
        files=[upload("holiday.png", b"just some notes, not a picture\n")]
    )
    await section.get_by_role("button", name="Upload picture").click()
    await expect(section.locator("[role=alert]")).to_have_text(NOT_AN_IMAGE)
    await expect(me_button.locator("span.avatar")).to_have_text("A")
    await expect(me_button.locator("img")).to_have_count(0)
    await db.commit()  # a fresh read
    assert await db.get(UserAvatar, member.id) is None
    assert await db.scalar(select(User.avatar_updated_at).where(User.id == member.id)) is None

    # A real 8 by 8 PNG: the sidebar's account manager shows it, and it is served as a PNG.
    picture = png(8, 8)
    await section.locator("input[type=file]").set_input_files(files=[upload("me.png", picture)])
    await section.get_by_role("button", name="Upload picture").click()
    await expect(page).to_have_url(f"{live_server}/profile#avatar")
    await expect(page.locator(".banner-success")).to_contain_text("Your picture is saved.")
    sidebar_picture = me_button.locator("img.avatar-picture")
    await expect(sidebar_picture).to_be_visible()
    await expect(me_button.locator("span.avatar")).to_have_count(0)
    src = await sidebar_picture.get_attribute("src") or ""
    assert re.fullmatch(rf"/profile/avatar/{member.id}\?v=\d+", src), src
    await wait_until_loaded(page, sidebar_picture, 8)
    await wait_until_loaded(page, section.locator("img.avatar-picture"), 8)
    assert await served(page, live_server, src) == (200, "image/png", picture)

    # Someone of another organisation asking for that picture: not found.
    other = await signed_in_context_page(browser, live_server, outsider.email)
    try:
        other_errors = ConsoleErrors(other, expected_statuses=(404,))
        response = await other.goto(f"{live_server}{src}")
        assert response is not None
        assert response.status == 404
        assert picture not in await response.body()
        assert other_errors.found == []
    finally:
        await other.context.close()

    # Removed: the initial again, and the picture is no longer served.
    await section.get_by_role("button", name="Remove picture").click()
    await expect(page.locator(".banner-success")).to_contain_text("Your picture is removed.")
    await expect(me_button.locator("span.avatar")).to_have_text("A")
    await expect(me_button.locator("img")).to_have_count(0)
    await expect(section.locator("img")).to_have_count(0)
    assert (await served(page, live_server, src))[0] == 404
    assert errors.found == []


# ---- the organisation's logo ----


async def test_an_owners_logo_shows_for_the_members_who_may_not_change_it(
    page: Page, browser: Browser, live_server: str, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Lighthouse Ltd")
    member = await make_user(db, account, email="mo.member@example.com")
    errors = ConsoleErrors(page)
    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/account")
    org = page.locator(".sidebar .org-switch")
    section = page.locator("#logo")
    await expect(org.locator(".org-avatar")).to_have_text("L")
    await expect(org.locator("img")).to_have_count(0)

    logo = png(16, 8)
    await section.locator("input[type=file]").set_input_files(files=[upload("logo.png", logo)])
    await section.get_by_role("button", name="Upload logo").click()
    await expect(page).to_have_url(f"{live_server}/account#logo")
    await expect(page.locator(".banner-success")).to_contain_text("The organisation's logo is saved.")
    await expect(org.locator("img.org-logo")).to_be_visible()
    await wait_until_loaded(page, org.locator("img.org-logo"), 16)
    await wait_until_loaded(page, section.locator("img"), 16)

    other = await signed_in_context_page(browser, live_server, member.email)
    try:
        member_errors = ConsoleErrors(other)
        # The member sees the logo in the sidebar of every page, served to them as a PNG.
        other_logo = other.locator(".sidebar .org-switch img.org-logo")
        await expect(other_logo).to_be_visible()
        await wait_until_loaded(other, other_logo, 16)
        src = await other_logo.get_attribute("src") or ""
        assert re.fullmatch(r"/account/logo\?v=\d+", src), src
        assert await served(other, live_server, src) == (200, "image/png", logo)

        # /account: the logo, but no form to change it.
        await other.goto(f"{live_server}/account")
        member_section = other.locator("#logo")
        await expect(member_section.locator("img")).to_be_visible()
        await expect(member_section).to_contain_text("Only account administrators can change the logo.")
        await expect(member_section.locator("form")).to_have_count(0)
        await expect(member_section.locator("input[type=file]")).to_have_count(0)
        # Forged requests with the member's own (valid) CSRF token are refused; nothing changes.
        token = await csrf_of(other)
        forged = await other.request.post(
            f"{live_server}/account/logo",
            multipart={"csrf_token": token, "file": upload("mine.png", png(4, 4))},
        )
        assert forged.status == 403, f"a member's logo upload answered {forged.status}"
        assert "This page is for account administrators." in await forged.text()  # not a CSRF failure
        forged_removal = await other.request.post(
            f"{live_server}/account/logo/remove", form={"csrf_token": token}
        )
        assert forged_removal.status == 403, f"a member's logo removal answered {forged_removal.status}"
        # The token itself is good: a form the member may send, with it, goes through.
        allowed = await other.request.post(
            f"{live_server}/profile/avatar/remove", form={"csrf_token": token}, max_redirects=0
        )
        assert allowed.status == 303
        await db.commit()  # a fresh read
        stored = await db.get(AccountLogo, account.id, populate_existing=True)
        assert stored is not None
        assert stored.data == logo
        assert await served(other, live_server, src) == (200, "image/png", logo)

        # The owner removes it: the initial again, for both.
        await section.get_by_role("button", name="Remove logo").click()
        await expect(page.locator(".banner-success")).to_contain_text("The organisation's logo is removed.")
        await expect(org.locator("img")).to_have_count(0)
        await expect(org.locator(".org-avatar")).to_have_text("L")
        await expect(section.get_by_role("button", name="Remove logo")).to_have_count(0)
        await other.goto(f"{live_server}/")
        await expect(other.locator(".sidebar .org-switch img")).to_have_count(0)
        await expect(other.locator(".sidebar .org-switch .org-avatar")).to_have_text("L")
        assert (await served(other, live_server, src))[0] == 404
        assert member_errors.found == []
    finally:
        await other.context.close()
    assert errors.found == []


# ---- the sign-in e-mail ----


class Inbox:
    """An aiosmtpd handler keeping every message it accepts; ``wait_for`` blocks until one came."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def _find(self, to: str, subject: str) -> Received | None:
        return next(
            (m for m in self.messages if to in m.rcpt_tos and subject in str(m.message["Subject"])), None
        )

    async def wait_for(self, to: str, subject: str) -> Received:
        """The message to ``to`` whose subject holds ``subject``, within ``MAIL_TIMEOUT`` seconds."""

        def wait() -> Received | None:
            with self._arrived:
                self._arrived.wait_for(lambda: self._find(to, subject) is not None, timeout=MAIL_TIMEOUT)
                return self._find(to, subject)

        found = await asyncio.to_thread(wait)
        assert found is not None, f"no e-mail to {to} about {subject!r} within {MAIL_TIMEOUT:.0f}s"
        return found


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on 127.0.0.1 (its own thread); yields its inbox and port."""
    mailbox = Inbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
def live_server_with_mail(database_url: str, tmp_path: Path, inbox: tuple[Inbox, int]) -> Iterator[str]:
    """``cockpit serve`` with its job worker, its mail going to ``inbox`` (no STARTTLS), for one test."""
    env = {
        "COCKPIT_JOBS_POLL_SECONDS": "0.1",
        "COCKPIT_SMTP_HOST": "127.0.0.1",
        "COCKPIT_SMTP_PORT": str(inbox[1]),
        "COCKPIT_SMTP_STARTTLS": "false",
        "COCKPIT_SMTP_FROM": "cockpit@example.com",
    }
    with _serve(database_url, tmp_path, **env) as url:
        yield url


async def test_the_sign_in_email_changes_through_the_link_mailed_to_the_new_address(
    page: Page, browser: Browser, live_server_with_mail: str, inbox: tuple[Inbox, int], db: AsyncSession
) -> None:
    base, mailbox = live_server_with_mail, inbox[0]
    account, _owner = await make_account(db, name="Mailbox Ltd")
    member = await make_user(db, account, email="mia.old@example.com")
    old, new = "mia.old@example.com", "mia.new@example.com"
    errors = ConsoleErrors(page, expected_statuses=(403, 422))
    await sign_in(page, base, old)
    await expect(page).to_have_url(f"{base}/")
    await page.goto(f"{base}/profile")
    section = page.locator("#email")
    await expect(section).to_contain_text(f"You sign in with {old}.")
    await expect(section.locator("[role=status]")).to_have_count(0)

    # A wrong password is refused and nothing is pending.
    await section.locator("input[name=new_email]").fill(new)
    await section.locator("input[name=current_password]").fill("not-my-password-1")
    await section.get_by_role("button", name="Change e-mail").click()
    await expect(section.locator("[role=alert]")).to_have_text("The current password is not correct.")
    await expect(section.locator("[role=status]")).to_have_count(0)

    await section.locator("input[name=new_email]").fill(new)
    await section.locator("input[name=current_password]").fill(PASSWORD)
    await section.get_by_role("button", name="Change e-mail").click()
    await expect(page).to_have_url(f"{base}/profile#email")
    await expect(page.locator(".banner-success")).to_contain_text(
        f"A confirmation link is on its way to {new}"
    )
    await expect(section.locator("[role=status]")).to_contain_text(f"A confirmation link was sent to {new}")
    await expect(section).to_contain_text(f"You sign in with {old}.")  # nothing changed yet

    # The worker of the served process mails the link to the new address, a notice to the old one.
    confirm = await mailbox.wait_for(new, "Confirm your new e-mail address")
    match = re.search(rf"{re.escape(base)}/profile/email/confirm\?token=[0-9a-f]{{64}}", confirm.body)
    assert match, confirm.body
    link = match.group(0)
    notice = await mailbox.wait_for(old, "about to change")
    assert "token=" not in notice.body

    # The link opens a page that asks to confirm (a mail scanner following it changes nothing).
    await page.goto(link)
    await expect(page.locator("h1.page-title")).to_have_text("Confirm your new e-mail")
    await expect(page.locator("#confirm-email")).to_contain_text(
        f"From now on you will sign in with {new} instead of {old}."
    )
    await db.commit()  # a fresh read
    assert await db.scalar(select(User.email).where(User.id == member.id)) == old
    await page.get_by_role("button", name="Confirm the new e-mail").click()
    await expect(page).to_have_url(f"{base}/profile#email")
    await expect(page.locator(".banner-success")).to_contain_text(f"You now sign in with {new}.")
    await expect(section).to_contain_text(f"You sign in with {new}.")
    await expect(section.locator("[role=status]")).to_have_count(0)
    await expect(page.locator("#details")).to_contain_text(new)
    changed = await mailbox.wait_for(old, "was changed")
    assert new in changed.body

    # The link worked once.
    await page.goto(link)
    await expect(page.locator("#confirm-email [role=alert]")).to_contain_text(
        "This confirmation link is not valid"
    )

    # Another browser: the old address no longer signs in, the new one does.
    other_context = await browser.new_context(viewport={"width": 1366, "height": 850})
    try:
        other = await other_context.new_page()
        await sign_in(other, base, old)
        await expect(other.get_by_text("Incorrect e-mail or password.")).to_be_visible()
        await sign_in(other, base, new)
        await expect(other).to_have_url(f"{base}/")
    finally:
        await other_context.close()
    assert errors.found == []


async def test_without_a_mail_server_the_email_change_is_refused_clearly(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    account, _owner = await make_account(db, name="No Mail Ltd")
    member = await make_user(db, account, email="nils.nomail@example.com")
    errors = ConsoleErrors(page, expected_statuses=(409,))
    await sign_in(page, live_server, member.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/profile")
    section = page.locator("#email")
    await section.locator("input[name=new_email]").fill("nils.new@example.com")
    await section.locator("input[name=current_password]").fill(PASSWORD)
    await section.get_by_role("button", name="Change e-mail").click()
    await expect(section.locator("[role=alert]")).to_contain_text(
        "Cockpit cannot send e-mail (no mail server is configured), so it cannot confirm a new address."
    )
    await expect(section.locator("input[name=new_email]")).to_have_value("nils.new@example.com")
    await expect(section.locator("[role=status]")).to_have_count(0)
    await db.commit()  # a fresh read
    row = (await db.execute(select(User.email, User.pending_email).where(User.id == member.id))).one()
    assert tuple(row) == ("nils.nomail@example.com", None)
    assert errors.found == []


# ---- a phone-wide screen ----

LONG_EMAIL = "firstname.middlename.lastname@a-rather-long-subdomain.example-organisation.com"


@pytest.mark.parametrize("role", ["owner", "member"])
async def test_profile_and_account_pages_fit_a_390px_wide_screen(
    browser: Browser, live_server: str, db: AsyncSession, role: str
) -> None:
    """With a picture, a logo and a long pending address: nothing pushes the page sideways, and the
    session table's buttons are reachable in its scroll box (test_layout's measure)."""
    account, owner = await make_account(db, name="Narrow Screens and Long Organisation Names Ltd")
    person = owner if role == "owner" else await make_user(db, account, role=UserRole.member)
    now = utcnow()
    picture = png(8, 8)
    db.add(UserAvatar(user_id=person.id, account_id=account.id, media_type="image/png", width=8,
                      height=8, data=picture, updated_at=now))  # fmt: skip
    db.add(AccountLogo(account_id=account.id, media_type="image/png", width=8, height=8, data=picture,
                       updated_at=now))  # fmt: skip
    person.avatar_updated_at, account.logo_updated_at = now, now
    person.pending_email, person.pending_email_token_hash = LONG_EMAIL, "0" * 64
    person.pending_email_expires_at = now + timedelta(hours=1)
    await db.commit()

    context = await browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = await context.new_page()
        errors = ConsoleErrors(page)
        await sign_in(page, live_server, person.email)
        await expect(page).to_have_url(f"{live_server}/")
        problems: dict[str, list[str]] = {}
        for path, heading, shown in (
            ("/profile", "Your profile", "#avatar img.avatar-picture"),
            ("/account", "Organisation", "#logo img"),
        ):
            await page.goto(f"{live_server}{path}")
            await expect(page.locator("h1.page-title")).to_have_text(heading)
            await expect(page.locator(shown)).to_be_visible()
            if path == "/profile":
                await expect(page.locator("#email [role=status]")).to_contain_text(LONG_EMAIL)
            if found := await page.evaluate(MEASURE):
                problems[path] = found
        assert problems == {}
        assert errors.found == []
    finally:
        await context.close()
