"""Cost tracking in a browser, at 1440 px and at 390 px (a phone): the charts are drawn (Chart.js on
their canvases, no script errors), and nothing pushes the page sideways (tables scroll in their card)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.async_api import ConsoleMessage, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.builders import make_account, make_user
from tests.e2e.test_console import sign_in
from tests.e2e.test_layout import MEASURE
from tests.usage.test_requests_api import usage_record

# Whether Chart.js drew on a canvas: its instance is registered on it.
DRAWN = "(id) => !!(window.Chart && window.Chart.getChart(document.getElementById(id)))"


@pytest.mark.parametrize("width", [1440, 390])
async def test_cost_tracking_draws_its_charts_and_fits(
    page: Page, live_server: str, db: AsyncSession, width: int
) -> None:
    account, owner = await make_account(db, name="Chart Works Ltd")
    member = await make_user(db, account, email="a-rather-long-address-for-a-narrow-screen@example.com")
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-with-a-long-model-name", "text-embedding-3-small"]
    db.add_all(
        [
            usage_record(
                account.id, minutes_ago=60 * 20 * n, user_id=member.id if n % 2 else owner.id,
                model=models[n % len(models)], cost_usd=Decimal(n) * Decimal("0.0137"), credits=Decimal(n),
                agent_id="triage" if n % 3 else None, status="error" if n % 5 == 0 else "success",
            )
            for n in range(1, 30)
        ]
    )  # fmt: skip
    await db.commit()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if _is_error(m) else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.set_viewport_size({"width": width, "height": 900})

    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/cost-tracking?stack=model")
    await page.wait_for_load_state()

    await expect(page.locator("h1.page-title")).to_have_text("Cost tracking")
    await expect(page.locator("#indicators .stat")).to_have_count(15)
    for chart in ("analytics-breakdown-chart", "analytics-timeline-chart"):
        await expect(page.locator(f"canvas#{chart}")).to_be_visible()
        await page.wait_for_function(DRAWN, arg=chart)
    await expect(page.locator("#breakdown-table tbody tr")).to_have_count(4)
    assert await page.evaluate(MEASURE) == []
    assert problems == []

    # A row narrows the view: the model becomes a filter in the address.
    await page.locator("#breakdown-table tbody tr").first.locator("td").nth(1).click()
    await expect(page).to_have_url(re.compile(r"[?&]model="))
    await page.wait_for_load_state()
    await expect(page.locator("#breakdown-table tbody tr")).to_have_count(1)
    await page.wait_for_function(DRAWN, arg="analytics-timeline-chart")
    assert await page.evaluate(MEASURE) == []
    assert problems == []


def _is_error(message: ConsoleMessage) -> bool:
    return message.type == "error"
