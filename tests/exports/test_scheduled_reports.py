"""Scheduled cost reports: an account asks for weekly or monthly reports; the hourly schedule queues
one report per account and period (however often it runs), the report is the whole account's cost
tracking of the last complete period in its time zone, and its administrators are told."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.config import Settings
from cockpit.events.models import PlatformEvent
from cockpit.exports import reports
from cockpit.exports.models import Export
from cockpit.jobs.models import Job
from cockpit.jobs.registry import JobContext
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from tests.analytics.data import make_calls
from tests.builders import bearer, console_login, csrf_for, make_account, make_token
from tests.exports.jobs import run_exports
from tests.exports.test_exports import named

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def test_the_last_complete_week_and_month_in_the_accounts_zone() -> None:
    now = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)  # a Wednesday
    week = reports.last_period("weekly", now, PARIS)
    assert week == (datetime(2026, 11, 29, 23, 0, tzinfo=UTC), datetime(2026, 12, 6, 23, 0, tzinfo=UTC))
    month = reports.last_period("monthly", now, PARIS)
    assert month == (datetime(2026, 10, 31, 23, 0, tzinfo=UTC), datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    # Across the change of clocks (Paris, 29 March 2026): the week still runs midnight to midnight.
    spring = reports.last_period("weekly", datetime(2026, 4, 1, 12, tzinfo=UTC), PARIS)
    assert spring == (datetime(2026, 3, 22, 23, 0, tzinfo=UTC), datetime(2026, 3, 29, 22, 0, tzinfo=UTC))
    # Sunday 23:30 in Paris is still last week's Sunday; January's month is December.
    assert reports.last_period("weekly", datetime(2026, 12, 6, 22, 30, tzinfo=UTC), PARIS) == (
        datetime(2026, 11, 22, 23, 0, tzinfo=UTC), datetime(2026, 11, 29, 23, 0, tzinfo=UTC),
    )  # fmt: skip
    assert reports.last_period("monthly", datetime(2027, 1, 15, tzinfo=UTC), PARIS) == (
        datetime(2026, 11, 30, 23, 0, tzinfo=UTC), datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
    )  # fmt: skip
    assert reports.last_period("off", now, PARIS) is None


def _ctx(
    kind: str, payload: dict[str, object], sessions: async_sessionmaker[AsyncSession], settings: Settings,
    now: datetime,
) -> JobContext:  # fmt: skip
    return JobContext(
        job_id=uuid.uuid4(), kind=kind, payload=payload, account_id=None, attempt=1, max_attempts=3,
        sessionmaker=sessions, settings=settings, now=lambda: now,
    )  # fmt: skip


async def test_a_weekly_report_is_made_once_and_announced_to_the_admins(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession], settings: Settings, database_url: str
) -> None:
    account, _owner = await make_account(db, name="Weekly Co")
    account.timezone = "Europe/Paris"
    account.report_cadence = "weekly"
    account.report_format = "xlsx"
    quiet, _ = await make_account(db, name="Quiet Co")  # reports off
    account_id, quiet_id = account.id, quiet.id  # (a rollback below expires the objects)
    calls = make_calls(account_id, n=50)
    await db.execute(insert(UsageRecord), calls.rows)
    await db.commit()
    now = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)
    for _ in range(3):  # the hourly schedule, three times (or three workers): one report
        await reports.schedule(_ctx(reports.SCHEDULE, {}, sessions, settings, now))
    await db.rollback()
    queued = list(await db.scalars(select(Job).where(Job.kind == reports.MAKE_REPORT)))
    assert [j.account_id for j in queued] == [account_id]
    await reports.make(_ctx(reports.MAKE_REPORT, queued[0].payload, sessions, settings, now))
    await db.rollback()
    [export] = list(await db.scalars(select(Export).where(Export.account_id == account_id)))
    assert (export.requested_by, export.view, export.format) == (None, "cost", "xlsx")
    assert export.filters["scheduled"] == "weekly"
    assert (export.filters["from"], export.filters["to"]) == (
        "2026-11-29T23:00:00+00:00", "2026-12-06T23:00:00+00:00",
    )  # fmt: skip
    assert await db.scalar(select(func.count()).select_from(Export).where(Export.account_id == quiet_id)) == 0
    export_id = export.id
    assert await run_exports(settings, database_url, named) == 1
    await db.rollback()
    made = await db.get(Export, export_id, populate_existing=True)
    assert made is not None
    assert made.status == "done"
    [ready] = list(await db.scalars(select(PlatformEvent).where(PlatformEvent.name == "report.ready")))
    assert ready.account_id == account_id
    assert ready.data["period"] == "30 Nov 2026 to 6 Dec 2026"
    assert ready.data["download_url"].endswith(f"/exports/{export_id}/download")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"report_cadence": "weekly", "report_format": "pdf"}, 200),
        ({"report_cadence": "monthly"}, 200),
        ({"report_cadence": "daily"}, 422),
        ({"report_cadence": 7}, 422),
        ({"report_format": "docx"}, 422),
        ({"report_cadence": "off\u0000"}, 400),
    ],
)
async def test_the_setting_through_the_api(
    client: AsyncClient, db: AsyncSession, body: dict[str, object], status: int
) -> None:
    account, owner = await make_account(db, name="Settings Co")
    account_id = account.id
    headers = bearer(await make_token(db, owner))
    response = await client.patch("/api/v1/account", json=body, headers=headers)
    assert response.status_code in ((status,) if status != 400 else (400, 422)), response.text
    await db.rollback()
    stored = await db.get(Account, account_id, populate_existing=True)
    assert stored is not None
    if status == 200:
        assert response.json()["report_cadence"] == body.get("report_cadence", "off")
        assert stored.report_cadence == body.get("report_cadence", "off")
    else:
        assert (stored.report_cadence, stored.report_format) == ("off", "pdf")


async def test_the_setting_on_the_organisation_page(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db, name="Page Co")
    account_id = account.id
    await console_login(client, owner.email)
    page = await client.get("/account")
    assert "Scheduled cost reports" in page.text
    token = await csrf_for(client, "/account")
    saved = await client.post("/account/reports", data={"csrf_token": token, "report_cadence": "monthly",
                                                        "report_format": "xlsx"})  # fmt: skip
    assert saved.status_code == 303
    refused = await client.post("/account/reports", data={"csrf_token": token, "report_cadence": "hourly",
                                                          "report_format": "pdf"})  # fmt: skip
    assert refused.status_code == 422
    assert "must be off, weekly or monthly" in refused.text
    await db.rollback()
    stored = await db.get(Account, account_id, populate_existing=True)
    assert stored is not None
    assert (stored.report_cadence, stored.report_format) == ("monthly", "xlsx")
