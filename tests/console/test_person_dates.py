"""A person's own time zone and date style (their profile) are how the console writes dates for
them; the organisation's are the default for everyone who has not chosen (issue 17)."""

from __future__ import annotations

import html
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.console.formatting import datetime_text
from cockpit.users.models import User, UserRole
from tests.builders import console_login, make_account, make_user


async def test_the_persons_choice_wins_over_the_organisations(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await make_account(db)
    account.timezone, account.locale = "Europe/Paris", "de-DE"
    member = await make_user(db, account, role=UserRole.member)
    member_id, created_at, owner_email, member_email = (
        member.id,
        account.created_at,
        owner.email,
        member.email,
    )
    await db.commit()

    # Not chosen: the organisation's time zone and format.
    assert (await console_login(client, member_email)).status_code == 303
    page = html.unescape((await client.get("/account")).text)
    assert datetime_text(created_at, ZoneInfo("Europe/Paris"), "de-DE") in page

    stored = await db.get(User, member_id)
    assert stored is not None
    stored.timezone, stored.locale = "Asia/Tokyo", "iso"
    await db.commit()
    page = html.unescape((await client.get("/account")).text)
    assert datetime_text(created_at, ZoneInfo("Asia/Tokyo"), "iso") in page
    assert datetime_text(created_at, ZoneInfo("Europe/Paris"), "de-DE") not in page
    log = html.unescape((await client.get("/requests")).text)
    assert "Times in Asia/Tokyo" in log

    # Another person of the same organisation still sees the organisation's way.
    client.cookies.clear()
    assert (await console_login(client, owner_email)).status_code == 303
    page = html.unescape((await client.get("/account")).text)
    assert datetime_text(created_at, ZoneInfo("Europe/Paris"), "de-DE") in page
