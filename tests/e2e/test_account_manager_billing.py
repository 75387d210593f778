"""Issue 17 in a browser, part 2: Billing (not connected to Stripe: an owner adds credits by hand, an
administrator only reads, a member is refused), the usage statement (a member's own, the owner's
account and any member's, with a CSV download whose totals are the page's), the model catalogue
(what a member may use; what an owner sees denied to others), and these pages on a phone."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Locator, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import EntryKind, LedgerEntry
from cockpit.groups.repository import default_group
from cockpit.kit.time import utcnow
from cockpit.policies import service as policies
from cockpit.policies.models import Effect, ResourceType, Scope
from cockpit.providers import service as providers
from cockpit.providers.models import Capability, ProviderKind
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User, UserRole
from tests.builders import make_account, make_user
from tests.conftest import TEST_SECRET
from tests.e2e.test_account_manager import ConsoleErrors, signed_in_context_page
from tests.e2e.test_console import sign_in

FITS = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def fact(page: Page, card: str, label: str) -> Locator:
    """The figure after ``label`` in a card's list of facts."""
    return page.locator(f"{card} dl > div").filter(has=page.get_by_text(label, exact=True)).locator("dd")


async def exact(figure: Locator) -> Decimal:
    """A credits figure's exact value (on hover: the title of its amount)."""
    amount = figure if await figure.get_attribute("class") == "amount" else figure.locator(".amount")
    return Decimal((await amount.get_attribute("title") or "").lstrip("+"))


async def csrf(page: Page) -> str:
    return await page.locator("#sign-out-form input[name=csrf_token]").input_value()


async def _extra_granted(db: AsyncSession, account_id: uuid.UUID) -> list[Decimal]:
    await db.commit()  # a fresh read
    found = await db.scalars(
        select(LedgerEntry.amount).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.extra_granted
        )
    )
    return list(found)


async def test_an_owner_adds_credits_by_hand_and_bad_input_changes_nothing(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Top-up Traders")
    errors = ConsoleErrors(page, expected_statuses=(422,))
    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/credits")
    available_before = await exact(page.locator("#balance-card .stat-value"))
    await expect(page.locator("#balance-card").get_by_text("Added this cycle")).to_have_count(0)

    await page.goto(f"{live_server}/billing")
    await expect(page.locator(".lead")).to_contain_text(
        "Billing is not connected to Stripe on this installation: an owner can add credits by hand below."
    )
    await expect(page.locator("[data-testid=packs]")).to_have_count(0)
    added = fact(page, "[data-testid=balance]", "Added (bought or by hand)")
    await expect(added).to_have_text("0.00")

    form = page.locator("[data-testid=add-by-hand] form")
    submit = form.get_by_role("button", name="Add credits")
    for credits, reason, message in [
        ("a lot", "Paid by invoice 2026-041", "Credits must be a number, such as 500 or 500.5."),
        ("-250", "Paid by invoice 2026-041", "Credits must be a positive amount (at most 6 decimals)."),
        ("0", "Paid by invoice 2026-041", "Credits must be a positive amount (at most 6 decimals)."),
        ("250", "   ", "Say why these credits are added."),
    ]:
        await form.locator("input[name=credits]").fill(credits)
        await form.locator("input[name=reason]").fill(reason)
        await expect(submit).to_be_disabled()  # until the owner confirms
        await form.get_by_role("checkbox").check()
        await submit.click()
        await expect(page.locator("[role=alert]")).to_have_text(message)
        await expect(added).to_have_text("0.00")
        await expect(form.locator("input[name=credits]")).to_have_value(credits)  # kept to correct
    assert await _extra_granted(db, account.id) == []

    await form.locator("input[name=credits]").fill("1,234.5")
    await form.locator("input[name=reason]").fill("Paid by invoice 2026-041")
    await form.get_by_role("checkbox").check()
    await submit.click()
    await expect(page).to_have_url(f"{live_server}/billing")
    await expect(page.locator(".banner-success")).to_contain_text("Credits added to this cycle.")
    await expect(added).to_have_text("1,234.50")
    assert await exact(added) == Decimal("1234.5")
    assert await _extra_granted(db, account.id) == [Decimal("1234.5")]

    # The Credits overview: "Added this cycle", and the balance up by exactly that much.
    await page.goto(f"{live_server}/credits")
    await expect(fact(page, "#balance-card", "Added this cycle")).to_have_text("1,234.50")
    assert await exact(page.locator("#balance-card .stat-value")) - available_before == Decimal("1234.5")
    assert errors.found == []


async def test_an_admin_reads_billing_but_cannot_add_credits_and_a_member_is_refused(
    page: Page, browser: Browser, live_server: str, db: AsyncSession
) -> None:
    account, _owner = await make_account(db, name="Read-only Billing")
    admin = await make_user(db, account, role=UserRole.admin, email="ada.billing@example.com")
    member = await make_user(db, account, email="mia.billing@example.com")
    errors = ConsoleErrors(page, expected_statuses=(403,))
    await sign_in(page, live_server, admin.email)
    await expect(page).to_have_url(f"{live_server}/")

    response = await page.goto(f"{live_server}/billing")
    assert response is not None
    assert response.status == 200
    await expect(page.locator(".lead")).to_contain_text(
        "Billing is not connected to Stripe on this installation."
    )
    await expect(page.locator(".lead")).not_to_contain_text("add credits by hand")
    await expect(fact(page, "[data-testid=balance]", "Added (bought or by hand)")).to_have_text("0.00")
    await expect(page.locator("[data-testid=add-by-hand]")).to_have_count(0)
    await expect(page.locator("input[name=credits]")).to_have_count(0)

    # A forged form, with the administrator's own valid CSRF token: refused, nothing added.
    forged = await page.request.post(
        f"{live_server}/billing/top-ups",
        form={"csrf_token": await csrf(page), "credits": "500", "reason": "Just because"},
        max_redirects=0,
    )
    assert forged.status == 403
    await page.reload()
    await expect(fact(page, "[data-testid=balance]", "Added (bought or by hand)")).to_have_text("0.00")
    assert await _extra_granted(db, account.id) == []
    assert errors.found == []

    # A member: no Billing page at all, and no way to post to it.
    other = await signed_in_context_page(browser, live_server, member.email)
    member_errors = ConsoleErrors(other, expected_statuses=(403,))
    try:
        response = await other.goto(f"{live_server}/billing")
        assert response is not None
        assert response.status == 403
        await expect(other.locator(".error-code")).to_have_text("403")
        await expect(other.locator(".error-panel")).to_contain_text(
            "This page is for account administrators."
        )
        await expect(other.locator("[data-testid=balance]")).to_have_count(0)
        refused = await other.request.post(
            f"{live_server}/billing/top-ups",
            form={"csrf_token": await csrf(other), "credits": "500", "reason": "Just because"},
            max_redirects=0,
        )
        assert refused.status == 403
        assert await _extra_granted(db, account.id) == []
    finally:
        await other.context.close()
    assert member_errors.found == []


async def _usage(db: AsyncSession) -> tuple[Account, User, User]:
    """An account whose member Mia was given 1,000 credits and spent 15 (two gpt-4o calls), and
    whose member Otto spent 7 on claude-3; all in the current cycle, a few minutes ago."""
    account, owner = await make_account(db, name="Statement Studio")
    account.credit_factor = Decimal(100)
    await db.commit()
    cycle = await current_cycle(db, account)
    group = await default_group(db, account.id)
    mia = await make_user(db, account, email="mia.usage@example.com")
    otto = await make_user(db, account, email="otto.usage@example.com")
    mia.name, otto.name = "Mia Usage", "Otto Usage"
    base = max(cycle.starts_at, utcnow() - timedelta(minutes=10))

    def entry(seconds: int, user: User, kind: EntryKind, amount: str, **fields: Any) -> None:
        row = ledger.append(
            db, account_id=account.id, cycle=cycle, kind=kind, amount=Decimal(amount),
            user_id=user.id, group_id=group.id, **fields,
        )  # fmt: skip
        row.created_at = base + timedelta(seconds=seconds)

    def call(seconds: int, user: User, model: str, credits: str, tokens: tuple[int, int]) -> None:
        call_id, at = uuid.uuid4(), base + timedelta(seconds=seconds)
        usd = Decimal(credits) / 100
        db.add(
            UsageRecord(
                id=call_id, account_id=account.id, created_at=at, user_id=user.id, group_id=group.id,
                model=model, operation="chat", status="ok", http_status=200, latency_ms=5,
                input_tokens=tokens[0], output_tokens=tokens[1], cost_usd=usd, credits=Decimal(credits),
            )
        )  # fmt: skip
        entry(
            seconds, user, EntryKind.usage_debit, f"-{credits}", description=f"{model} - chat", model=model,
            input_tokens=tokens[0], output_tokens=tokens[1], usd=usd, usage_request_id=call_id,
        )  # fmt: skip

    entry(1, mia, EntryKind.allocation_set, "1000", description="Monthly allocation set")
    call(2, mia, "gpt-4o", "10", (1000, 500))
    call(3, mia, "gpt-4o", "5", (400, 100))
    call(4, otto, "claude-3", "7", (700, 0))
    await db.commit()
    return account, owner, mia


async def _download_csv(page: Page) -> tuple[str, list[list[str]]]:
    async with page.expect_download() as info:
        await page.locator("#download-csv").click()
    download = await info.value
    data = await asyncio.to_thread(Path(await download.path()).read_bytes)
    text = data.decode("utf-8-sig")
    return download.suggested_filename, list(csv.reader(io.StringIO(text, newline="")))


async def _closing_matches_the_csv(page: Page) -> list[list[str]]:
    name, rows = await _download_csv(page)
    assert name.endswith(".csv")
    assert rows[0][:2] == ["Day", "Line"]
    assert rows[0][-1] == "Balance"
    totals = rows[-1]
    assert totals[1] == "Totals"
    assert Decimal(totals[12]) == await exact(page.locator("#usage-closing"))
    assert totals[4] == await page.locator("#usage-calls").inner_text()
    return rows


async def test_usage_statement_a_members_own_and_the_owners_with_a_member_picker_and_csv(
    page: Page, browser: Browser, live_server: str, db: AsyncSession
) -> None:
    _account, owner, mia = await _usage(db)

    # A member: their own statement, no picker of whose.
    member = await signed_in_context_page(browser, live_server, mia.email)
    member_errors = ConsoleErrors(member)
    try:
        await member.goto(f"{live_server}/usage")
        await expect(member.locator("#usage-scope")).to_have_count(0)
        await expect(member.locator(".stmt-whom")).to_have_text("You (Mia Usage)")
        await expect(member.locator("#usage-title")).to_have_text("You")
        await expect(member.locator("#usage-calls")).to_have_text("2")
        await expect(member.locator("#usage-closing")).to_have_text("985.00")
        await expect(member.locator("#usage-table")).to_contain_text("gpt-4o")
        await expect(member.locator("#usage-table")).not_to_contain_text("claude-3")  # Otto's
        rows = await _closing_matches_the_csv(member)
        assert Decimal(rows[-1][12]) == Decimal(985)
        assert all("claude-3" not in row for row in rows)
    finally:
        await member.context.close()
    assert member_errors.found == []

    # The owner: the account's statement, and any member's from the picker.
    errors = ConsoleErrors(page)
    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/usage")
    await expect(page.locator("#usage-title")).to_have_text("Statement Studio")
    await expect(page.locator("#usage-scope")).to_have_value("account")
    await expect(page.locator("#usage-calls")).to_have_text("3")
    await expect(page.locator("#usage-table")).to_contain_text("claude-3")
    name, rows = await _download_csv(page)
    assert "-account-" in name
    assert Decimal(rows[-1][12]) == await exact(page.locator("#usage-closing"))
    assert rows[-1][4] == "3"

    await page.locator("#usage-scope").select_option(label=f"Mia Usage — {mia.email}")
    await expect(page).to_have_url(re.compile(rf"/usage\?scope=user%3A{mia.id}&"))
    await expect(page.locator("#usage-title")).to_have_text("Mia Usage")
    await expect(page.locator("#usage-scope")).to_have_value(f"user:{mia.id}")
    await expect(page.locator("#usage-calls")).to_have_text("2")
    await expect(page.locator("#usage-closing")).to_have_text("985.00")
    rows = await _closing_matches_the_csv(page)
    assert Decimal(rows[-1][12]) == Decimal(985)
    assert errors.found == []


async def _catalogue(db: AsyncSession) -> tuple[User, User]:
    """Three models at exact prices, 100 credits to the dollar; claude-big denied to member Mia."""
    account, owner = await make_account(db, name="Catalogue Co")
    account.credit_factor = Decimal(100)
    mia = await make_user(db, account, email="mia.models@example.com")
    mia.name = "Mia Models"
    actor = Actor.system(account.id)
    provider = await providers.create_provider(
        db, actor, name="Catalogue Cloud", kind=ProviderKind.simulated, secret_key=TEST_SECRET,
        allow_private=True, settings={"latency_ms": 0, "tokens_per_second": 0},
    )  # fmt: skip
    ids: dict[str, uuid.UUID] = {}
    for name, input_price, output_price, capabilities in [
        ("gpt-small", Decimal("0.15"), Decimal("0.6"), [Capability.chat, Capability.tools]),
        ("claude-big", Decimal(3), Decimal(15), [Capability.chat, Capability.vision]),
        ("embed", Decimal("0.02"), Decimal(0), [Capability.embeddings]),
    ]:
        model = await providers.create_model(
            db, actor, name=name, provider_id=provider.id, upstream_model=name,
            input_price_per_million=input_price, output_price_per_million=output_price,
            capabilities=capabilities, context_window=128_000,
        )  # fmt: skip
        ids[name] = model.id
    await policies.create_policy(
        db, actor, scope=Scope.user, scope_id=mia.id, resource_type=ResourceType.model,
        resource=str(ids["claude-big"]), effect=Effect.deny,
    )  # fmt: skip
    await db.commit()
    return owner, mia


async def test_model_catalogue_a_member_reads_what_they_may_use_an_owner_also_what_is_denied(
    page: Page, browser: Browser, live_server: str, db: AsyncSession
) -> None:
    owner, mia = await _catalogue(db)

    member = await signed_in_context_page(browser, live_server, mia.email)
    member_errors = ConsoleErrors(member)
    try:
        await member.goto(f"{live_server}/models/catalogue")
        rows = member.locator("[data-testid=catalogue-row]")
        await expect(rows).to_have_count(2)
        assert [await r.get_attribute("data-model") for r in await rows.all()] == ["embed", "gpt-small"]
        small = member.locator("[data-testid=catalogue-row][data-model=gpt-small]")
        cells = small.locator("td")
        await expect(cells.nth(0)).to_have_text("gpt-small")
        await expect(cells.nth(1)).to_have_text("Catalogue Cloud")
        await expect(cells.nth(2)).to_have_text("128,000")
        await expect(cells.nth(3).locator(".badge")).to_have_text(["chat", "tools"])
        await expect(cells.nth(4)).to_contain_text("$0.15")  # per million input tokens
        await expect(cells.nth(4).locator("[data-testid=input-credits]")).to_have_text("15.00 cr")
        await expect(cells.nth(5)).to_contain_text("$0.60")
        await expect(cells.nth(5).locator("[data-testid=output-credits]")).to_have_text("60.00 cr")
        await expect(member.locator(".lead")).to_contain_text("in USD and in credits")
        await expect(member.get_by_text("claude-big")).to_have_count(0)
        await expect(member.locator("[data-testid=denied-section]")).to_have_count(0)
        await expect(member.locator("[data-testid=manage-models]")).to_have_count(0)
    finally:
        await member.context.close()
    assert member_errors.found == []

    errors = ConsoleErrors(page)
    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/models/catalogue")
    rows = page.locator("[data-testid=catalogue-row]")
    await expect(rows).to_have_count(3)
    big = page.locator("[data-testid=catalogue-row][data-model=claude-big]")
    await expect(big.locator("td").nth(4)).to_contain_text("$3.00")
    await expect(big.locator("[data-testid=input-credits]")).to_have_text("300.00 cr")
    await expect(big.locator("td").nth(5)).to_contain_text("$15.00")
    await expect(big.locator("[data-testid=output-credits]")).to_have_text("1,500.00 cr")
    denied = page.locator("[data-testid=denied-row]")
    await expect(denied).to_have_count(1)
    await expect(denied).to_have_attribute("data-model", "claude-big")
    await expect(denied.locator("td").last).to_contain_text("Mia Models")
    await expect(denied.locator("td").last).not_to_contain_text("you")  # the owner may use it
    await expect(page.locator("[data-testid=manage-models]")).to_have_attribute("href", "/models")
    assert errors.found == []


async def test_the_account_menu_billing_and_usage_fit_a_phone(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    _account, owner, _mia = await _usage(db)
    errors = ConsoleErrors(page)
    await page.set_viewport_size({"width": 390, "height": 844})
    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")

    # The sidebar is behind the menu button on a phone; the account menu opens inside the screen.
    await page.get_by_role("button", name="Menu").click()
    trigger = page.locator("[data-testid=account-manager] button[aria-haspopup=menu]")
    await trigger.click()
    menu = page.get_by_role("menu", name="Account")
    await expect(menu).to_be_visible()
    box = await menu.bounding_box()
    assert box is not None
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= 390, box
    width, inner = await page.evaluate(FITS)
    assert width <= inner, f"the account menu pushes the page sideways: {width} > {inner}"

    for path, ready in [("/billing", "[data-testid=add-by-hand]"), ("/usage", "#usage-table")]:
        response = await page.goto(f"{live_server}{path}")
        assert response is not None
        assert response.status == 200, path
        await expect(page.locator(ready)).to_be_visible()
        width, inner = await page.evaluate(FITS)
        assert width <= inner, f"{path} is wider than a phone: {width} > {inner}"
    assert errors.found == []
