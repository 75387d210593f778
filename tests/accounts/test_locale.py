"""The account's date format (``locale``): set through the API or the console, used by every page."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts import service
from cockpit.audit.models import AuditEntry
from cockpit.console import formatting
from cockpit.console.formatting import date_text, datetime_text
from cockpit.tenancy.models import Account
from tests.builders import bearer, console_login, csrf_for, make_account, make_token


def test_every_locale_offered_has_a_format_and_a_label() -> None:
    assert set(service.LOCALES) == set(formatting.DATE_STYLES) == set(formatting.LOCALES)
    assert formatting.DEFAULT_STYLE in service.LOCALES


@pytest.mark.parametrize(
    ("locale", "day", "moment"),
    [
        ("en-GB", "6 Dec 2026", "6 Dec 2026, 00:05"),
        ("en-US", "Dec 6, 2026", "Dec 6, 2026, 12:05 AM"),
        ("de-DE", "06.12.2026", "06.12.2026, 00:05"),
        ("fr-FR", "06/12/2026", "06/12/2026 00:05"),
        ("iso", "2026-12-06", "2026-12-06 00:05"),
    ],
)
def test_each_locale_writes_dates_its_way(locale: str, day: str, moment: str) -> None:
    at = datetime(2026, 12, 6, 0, 5, tzinfo=UTC)
    assert date_text(at, UTC, locale) == day
    assert datetime_text(at, UTC, locale) == moment


def test_twelve_hour_clock_around_noon_and_midnight() -> None:
    def us(hour: int) -> str:
        return datetime_text(datetime(2026, 1, 2, hour, 30, tzinfo=UTC), UTC, "en-US")

    assert [us(0), us(11), us(12), us(13), us(23)] == [
        "Jan 2, 2026, 12:30 AM",
        "Jan 2, 2026, 11:30 AM",
        "Jan 2, 2026, 12:30 PM",
        "Jan 2, 2026, 1:30 PM",
        "Jan 2, 2026, 11:30 PM",
    ]


async def test_the_api_sets_the_locale_and_audits_it(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await make_account(db)
    other, _ = await make_account(db, name="Other Co")
    account_id, other_id = account.id, other.id
    token = await make_token(db, owner)
    await db.commit()

    answer = await client.patch("/api/v1/account", json={"locale": "en-US"}, headers=bearer(token))

    assert answer.status_code == 200, answer.text
    assert answer.json()["locale"] == "en-US"
    assert (await client.get("/api/v1/account", headers=bearer(token))).json()["locale"] == "en-US"
    db.expire_all()
    entry = await db.scalar(
        select(AuditEntry).where(AuditEntry.account_id == account_id, AuditEntry.action == "account.updated")
    )
    assert entry is not None
    assert (entry.before, entry.after) == ({"locale": "en-GB"}, {"locale": "en-US"})
    stored_other = await db.get(Account, other_id)
    assert stored_other is not None
    assert stored_other.locale == "en-GB"  # another account keeps its own


@pytest.mark.parametrize("value", ["xx-YY", "EN-us", "", "en-US\u0000", "de-DE " * 3, 7])
async def test_an_unknown_locale_is_refused_and_nothing_changes(
    db: AsyncSession, client: AsyncClient, value: object
) -> None:
    account, owner = await make_account(db)
    account_id = account.id
    token = await make_token(db, owner)
    await db.commit()

    answer = await client.patch("/api/v1/account", json={"locale": value}, headers=bearer(token))

    assert answer.status_code in (400, 422), answer.text
    db.expire_all()
    stored = await db.get(Account, account_id)
    assert stored is not None
    assert stored.locale == "en-GB"
    await db.commit()


async def test_the_console_writes_every_date_in_the_chosen_format(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner = await make_account(db)
    account_id, created_at, email = account.id, account.created_at, owner.email
    await db.commit()
    assert (await console_login(client, email)).status_code == 303
    zone = ZoneInfo("UTC")

    saved = await client.post(
        "/account",
        data={"csrf_token": await csrf_for(client, "/account"), "name": "Acme", "timezone": "UTC",
              "locale": "de-DE"},
    )  # fmt: skip

    assert saved.status_code == 303
    page = html.unescape((await client.get("/account")).text)
    assert datetime_text(created_at, zone, "de-DE") in page  # the profile's "Created"
    assert datetime_text(created_at, zone, "en-GB") not in page
    audit_page = html.unescape((await client.get("/audit")).text)  # dates written by imported macros
    assert datetime_text(created_at, zone, "de-DE")[:10] in audit_page
    db.expire_all()
    stored = await db.get(Account, account_id)
    assert stored is not None
    assert stored.locale == "de-DE"

    refused = await client.post(
        "/account",
        data={"csrf_token": await csrf_for(client, "/account"), "name": "Acme", "timezone": "UTC",
              "locale": "klingon"},
    )  # fmt: skip
    assert refused.status_code == 422
    assert "date format" in html.unescape(refused.text)
