"""Exports made by the job queue: the cost view as a workbook, a PDF and a zip of CSV files whose
figures are the calls' own; the raw calls as CSV and Excel, one row each, in the requester's scope;
who may ask and who may fetch; audited."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from collections.abc import Collection
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pypdfium2
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics.filters import Dimension, Filters
from cockpit.analytics.queries import Key
from cockpit.audit.models import AuditEntry
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.exports import service
from cockpit.exports.models import Export, ExportFormat, ExportView
from cockpit.kit.errors import InvalidInput, NotFound
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User, UserRole
from tests.analytics.data import END, START, expected, make_calls
from tests.builders import make_account, make_user
from tests.exports.jobs import run_exports


async def named(
    session: AsyncSession, account_id: uuid.UUID, dim: Dimension, keys: Collection[Key]
) -> dict[Key, str]:
    return {key: f"{dim.value}-{str(key)[:6]}" for key in keys}


class Setup:
    def __init__(self, account: Account, owner: User, member: User, rows: list[dict[str, object]]) -> None:
        self.account, self.owner, self.member, self.rows = account, owner, member, rows


@pytest.fixture
async def org(db: AsyncSession) -> Setup:
    account, owner = await make_account(db)
    member = await make_user(db, account, role=UserRole.member)
    calls = make_calls(account.id, n=300)
    for row in calls.rows[:40]:
        row["user_id"] = member.id  # the member's own calls
    await db.execute(insert(UsageRecord), calls.rows)
    await db.commit()
    return Setup(account, owner, member, calls.rows)


async def run_jobs(settings: Settings, database_url: str) -> int:
    return await run_exports(settings, database_url, named)


async def ask(db: AsyncSession, user: User, fmt: ExportFormat, view: ExportView, **kwargs: object) -> Export:
    export = await service.request_export(
        db,
        Actor.for_user(user),
        format=fmt,
        view=view,
        filters=Filters(START, END),
        **kwargs,  # type: ignore[arg-type]
    )
    await db.commit()
    return export


async def fetched(db: AsyncSession, user: User, settings: Settings, export: Export) -> tuple[Export, Path]:
    found, path = await service.download(db, Actor.for_user(user), settings, export.id)
    await db.commit()
    await db.refresh(found)
    return found, path


async def test_the_cost_view_as_a_workbook_pdf_and_csv(
    db: AsyncSession, org: Setup, settings: Settings, database_url: str
) -> None:
    formats = (ExportFormat.xlsx, ExportFormat.pdf, ExportFormat.csv)
    made = [await ask(db, org.owner, fmt, ExportView.cost) for fmt in formats]
    assert all(e.status == "queued" for e in made)

    assert await run_jobs(settings, database_url) == 3

    xlsx, pdf, zipped = [await fetched(db, org.owner, settings, e) for e in made]
    whole = expected(org.rows)
    assert xlsx[0].status == "done"
    assert xlsx[0].progress == 100
    assert (xlsx[0].file_name or "").endswith(".xlsx")
    book = openpyxl.load_workbook(xlsx[1])
    summary = {row[0].value: row[1].value for row in book["Summary"].iter_rows()}
    assert summary["Requests"] == whole.requests
    assert summary["Total cost"] == pytest.approx(float(whole.cost_usd))
    assert "By model" in book.sheetnames
    assert "Top users by cost" in book.sheetnames
    # A daily timeline's buckets are dates (typed, no 00:00 time), one per local day.
    timeline = book["Timeline"]
    days = [row[0].value for row in timeline.iter_rows(min_row=2) if row[0].value is not None]
    assert days
    assert all(d.time() == datetime.min.time() for d in days)
    assert timeline.cell(row=2, column=1).number_format == "yyyy-mm-dd"
    document = pypdfium2.PdfDocument(pdf[1].read_bytes())
    first = document[0].get_textpage().get_text_range()
    assert "Cost tracking" in first
    assert "Acme" in first
    archive = zipfile.ZipFile(zipped[1])
    by_model = list(csv.reader(io.StringIO(archive.read("by-model.csv").decode("utf-8-sig"))))
    assert by_model[-1][:4] == [
        "Total",
        str(whole.requests),
        str(whole.errors),
        str(whole.cost_usd.normalize()),
    ]
    actions = list(await db.scalars(select(AuditEntry.action).where(AuditEntry.account_id == org.account.id)))
    assert actions.count("export.requested") == 3
    assert actions.count("export.downloaded") == 3


async def test_the_calls_as_csv_and_excel_one_row_each_in_the_requesters_scope(
    db: AsyncSession, org: Setup, settings: Settings, database_url: str
) -> None:
    everything = await ask(db, org.owner, ExportFormat.csv, ExportView.calls)
    own = await ask(db, org.member, ExportFormat.xlsx, ExportView.calls)
    await run_jobs(settings, database_url)

    done, path = await fetched(db, org.owner, settings, everything)
    lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert lines[0][:3] == ["Time", "User", "Group"]
    assert len(lines) - 1 == len(org.rows) == done.rows
    assert sum(Decimal(line[13]) for line in lines[1:]) == expected(org.rows).cost_usd  # exact
    assert {line[5] for line in lines[1:]} == {"helper", "research", "Direct API"}
    mine, path = await fetched(db, org.member, settings, own)
    sheet = openpyxl.load_workbook(path, read_only=True)["Calls"]
    assert sum(1 for _ in sheet.iter_rows(min_row=2)) == 40 == mine.rows


async def test_who_may_ask_and_fetch(db: AsyncSession, org: Setup, settings: Settings) -> None:
    export = await ask(db, org.owner, ExportFormat.xlsx, ExportView.cost)
    with pytest.raises(NotFound):
        await service.get_export(db, Actor.for_user(org.member), export.id)  # someone else's
    _, stranger = await make_account(db, name="Other")
    with pytest.raises(NotFound):
        await service.get_export(db, Actor.for_user(stranger), export.id)  # another account's
    with pytest.raises(NotFound):
        await service.download(db, Actor.for_user(org.owner), settings, export.id)  # not made yet
    member = Actor.for_user(org.member)
    with pytest.raises(InvalidInput):
        await ask(db, org.owner, ExportFormat.pdf, ExportView.calls)
    with pytest.raises(NotFound):  # a project that is not theirs
        await service.request_export(
            db, member, format=ExportFormat.csv, view=ExportView.cost, filters=Filters(START, END),
            project_id=uuid.uuid4(),
        )  # fmt: skip


async def test_a_failing_export_ends_failed_with_its_error(
    db: AsyncSession, org: Setup, settings: Settings, database_url: str
) -> None:
    export = await ask(db, org.owner, ExportFormat.xlsx, ExportView.cost)
    found = await db.get(Export, export.id)
    assert found is not None
    found.filters = {"from": "yesterday"}  # cannot be read: no retry can help
    await db.commit()

    await run_jobs(settings, database_url)

    await db.refresh(found)
    assert found.status == "failed"
    assert "filters cannot be read" in (found.error or "")
    assert datetime.now(UTC) >= (found.finished_at or datetime.max.replace(tzinfo=UTC))
