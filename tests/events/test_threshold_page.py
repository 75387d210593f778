"""Credits & Allocations → Settings: the budget alerts' thresholds, saved from their own form."""

from __future__ import annotations

import html

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.tenancy.models import Account
from tests.builders import console_login, csrf_for, make_account

PAGE = "/credits/settings"


async def test_the_thresholds_are_shown_saved_and_a_hostile_entry_changes_nothing(
    client: AsyncClient, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Nimbus Analytics")
    account_id = account.id
    assert (await console_login(client, owner.email)).status_code == 303
    page = await client.get(PAGE)
    assert 'value="50, 80, 100"' in page.text

    async def save(text: str) -> str:
        token = await csrf_for(client, PAGE)
        response = await client.post(
            f"{PAGE}/thresholds", data={"budget_thresholds": text, "csrf_token": token}, follow_redirects=True
        )
        assert "<script>alert(1)</script>" not in response.text  # what was typed is shown escaped
        return html.unescape(response.text)

    assert "Budget alerts at 25%, 75%, 100%" in await save("75, 25 100%")
    for hostile in ("fifty", "0", "1001", "50.5", ", ".join(["5"] * 11), "<script>alert(1)</script>"):
        shown = await save(hostile)
        assert "The budget thresholds must" in shown or "are at most 10" in shown, hostile
    assert "Budget alerts are off" in await save("")
    await db.rollback()
    assert await db.scalar(select(Account.budget_thresholds).where(Account.id == account_id)) == []
