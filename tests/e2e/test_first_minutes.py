"""The first five minutes in a browser: the request log's token picker (a name typed, the id sent) and
a member's low-credits banner leading to the "Request credits" form."""

from __future__ import annotations

import re
from decimal import Decimal

from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import EntryKind, MemberAllocation
from tests.builders import make_account, make_user
from tests.e2e.test_console import sign_in
from tests.usage.test_requests_api import usage_record


async def test_the_token_picker_filters_the_request_log_by_name(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Picker Ltd")
    deploy, _ = await issue_token(
        db, Actor.system(account.id, "tests"), owner, name="deploy", scopes=["gateway"]
    )
    with_token = usage_record(account.id, minutes_ago=2, api_token_id=deploy.id, model="gpt-4o-mini")
    db.add_all([with_token, usage_record(account.id, minutes_ago=1, model="claude-sonnet")])
    await db.commit()

    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/requests")
    rows = page.locator("#requests-table tbody tr")
    await expect(rows).to_have_count(2)

    picker = page.locator("#filter-token")
    await picker.fill(f"deploy ({owner.email})")
    await picker.blur()

    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("gpt-4o-mini")
    await expect(page).to_have_url(re.compile(rf"[?&]token={deploy.id}"))
    # After a reload the picker shows the token's name again, not its id.
    await page.reload()
    await expect(page.locator("#filter-token")).to_have_value(f"deploy ({owner.email})")


async def test_a_member_near_their_limit_is_warned_and_asks_for_credits(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    account, _ = await make_account(db, name="Banner Ltd")
    account.credit_factor = Decimal(1)
    account.credits_per_cycle = Decimal(100000)
    cycle = await current_cycle(db, account)
    member = await make_user(db, account, email="near@example.com")
    db.add(MemberAllocation(user_id=member.id, account_id=account.id, monthly=Decimal(1000)))
    ledger.append(
        db, account_id=account.id, cycle=cycle, kind=EntryKind.usage_debit, amount=Decimal(-950),
        user_id=member.id, group_id=member.group_id, description="gateway call",
    )  # fmt: skip
    await db.commit()

    await sign_in(page, live_server, member.email)
    await expect(page).to_have_url(f"{live_server}/")
    banner = page.locator("#low-credits")
    await expect(banner).to_contain_text("You have used 95 % of your credits this cycle")
    await banner.get_by_role("link", name="Request credits").click()

    await expect(page).to_have_url(f"{live_server}/credits/requests?new=1")
    await expect(page.locator("#file-request")).to_be_visible()  # the form is open at once
    await expect(page.locator("#file-amount")).to_be_focused()
