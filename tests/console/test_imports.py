"""CSV import of invitations: the service, the console upload with its background job, the CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from pathlib import Path
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.groups.service import create_group
from cockpit.imports.models import ImportJob
from cockpit.imports.service import parse_csv
from cockpit.invitations.models import Invitation
from cockpit.jobs.worker import Worker
from tests.builders import console_login, csrf_for, make_account, make_user
from tests.commands import run

CSV = """email,name,role,group,seats
new.one@example.com,New One,member,Engineering,copilot
not-an-email,Bad,member,,
{existing},Existing,member,,
new.two@example.com,New Two,boss,,
new.three@example.com,New Three,member,Nowhere,
NEW.ONE@example.com,Duplicate row,member,,
new.four@example.com,,admin,engineering,copilot;console
"""


def _expected(existing: str) -> dict[int, tuple[str, str]]:
    return {
        2: ("new.one@example.com", "created"),
        3: ("not-an-email", "rejected"),
        4: (existing, "skipped"),
        5: ("new.two@example.com", "rejected"),
        6: ("new.three@example.com", "rejected"),
        7: ("NEW.ONE@example.com", "skipped"),
        8: ("new.four@example.com", "created"),
    }


async def _wait_for_job(app: Any, db: AsyncSession, job_id: object) -> ImportJob:
    """Run the queue as a worker would (the test app runs no worker of its own), then read the job."""
    await Worker(app.state.sessionmaker, app.state.settings, schedules=False).run_until_idle()
    await db.rollback()  # end the read snapshot so the job's commits become visible
    job = await db.get(ImportJob, job_id, populate_existing=True)
    assert job is not None
    assert job.status in ("done", "failed"), job.status
    return job


async def test_console_import_reports_each_row_and_invites_the_valid_ones(
    app: Any, client: AsyncClient, db: AsyncSession
) -> None:
    account, owner = await make_account(db)
    existing = (await make_user(db, account)).email
    account_id = account.id
    await create_group(db, _system(account.id), name="Engineering")
    await db.commit()
    await console_login(client, owner.email)

    response = await client.post(
        "/users/import",
        data={"csrf_token": await csrf_for(client, "/users/import")},
        files={"file": ("people.csv", CSV.format(existing=existing).encode(), "text/csv")},
    )
    assert response.status_code == 303
    job_id = response.headers["location"].rsplit("/", 1)[1]
    job = await _wait_for_job(app, db, __import__("uuid").UUID(job_id))
    assert job.status == "done"
    assert (job.total, job.created, job.skipped, job.rejected) == (7, 2, 2, 3)

    page = await client.get(f"/users/import/{job_id}")
    assert "unknown role" in page.text
    assert "unknown group" in page.text
    assert "already has a Cockpit account" in page.text
    report = await client.get(f"/users/import/{job_id}/report.csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert {int(r["line"]): r["outcome"] for r in rows} == {
        line: outcome for line, (_, outcome) in _expected(existing).items() if outcome != "created"
    }

    invited = set(await db.scalars(select(Invitation.email).where(Invitation.account_id == account_id)))
    assert invited == {"new.one@example.com", "new.four@example.com"}
    four = await db.scalar(select(Invitation).where(Invitation.email == "new.four@example.com"))
    assert four is not None
    assert four.seats == ["copilot", "console"]
    assert four.role.value == "admin"
    audit = await db.scalar(
        select(AuditEntry).where(AuditEntry.account_id == account_id, AuditEntry.action == "users.imported")
    )
    assert audit is not None
    assert audit.after == {"rows": 7, "created": 2, "skipped": 2, "rejected": 3}


async def test_console_import_refuses_a_file_without_email_column(
    client: AsyncClient, db: AsyncSession
) -> None:
    _, owner = await make_account(db)
    await console_login(client, owner.email)
    response = await client.post(
        "/users/import",
        data={"csrf_token": await csrf_for(client, "/users/import")},
        files={"file": ("x.csv", b"name,role\nA,member\n", "text/csv")},
    )
    assert response.status_code == 422
    assert "email" in response.text
    assert await db.scalar(select(func.count()).select_from(ImportJob)) == 0


async def test_console_import_refuses_a_file_with_nul_characters(
    client: AsyncClient, db: AsyncSession
) -> None:
    _, owner = await make_account(db)
    await console_login(client, owner.email)
    response = await client.post(
        "/users/import",
        data={"csrf_token": await csrf_for(client, "/users/import")},
        files={"file": ("x.csv", b"email,name\nnul@example.com,A\x00B\n", "text/csv")},
    )
    assert response.status_code == 422
    assert "NUL characters" in response.text
    assert await db.scalar(select(func.count()).select_from(ImportJob)) == 0


async def test_import_respects_seat_limits(app: Any, client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    account.seat_limit_compute = 2
    await db.commit()
    await console_login(client, owner.email)
    rows = "email,seats\n" + "".join(f"p{i}@example.com,compute\n" for i in range(4))
    response = await client.post(
        "/users/import",
        data={"csrf_token": await csrf_for(client, "/users/import")},
        files={"file": ("seats.csv", rows.encode(), "text/csv")},
    )
    job_id = __import__("uuid").UUID(response.headers["location"].rsplit("/", 1)[1])
    job = await _wait_for_job(app, db, job_id)
    assert (job.created, job.rejected) == (2, 2)
    assert all("No compute seat is free" in row["reason"] for row in job.report)


async def test_member_cannot_import(client: AsyncClient, db: AsyncSession) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account)
    await console_login(client, member.email)
    assert (await client.get("/users/import")).status_code == 403


def test_parse_csv_numbers_lines_and_skips_blank_rows() -> None:
    rows = parse_csv("\ufeffEmail,Name\r\na@example.com,A\r\n\r\nb@example.com,B\r\n")
    assert [(line, row["email"]) for line, row in rows] == [(2, "a@example.com"), (4, "b@example.com")]


async def test_cli_import_prints_a_per_row_report(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    account, _owner = await make_account(db)
    existing = await make_user(db, account)
    await create_group(db, _system(account.id), name="Engineering")
    await db.commit()
    source = tmp_path / "people.csv"
    source.write_text(CSV.format(existing=existing.email))
    env = {**os.environ, "COCKPIT_DATABASE_URL": database_url, "COCKPIT_SECRET_KEY": "x" * 40,
           "COCKPIT_DATA_DIR": str(tmp_path)}  # fmt: skip
    result = await asyncio.to_thread(run, env, "users", "import", str(source), "--account", str(account.id))
    assert result.returncode == 3, result.stderr  # some rows were rejected
    report = {int(r["line"]): (r["email"], r["outcome"]) for r in csv.DictReader(io.StringIO(result.stdout))}
    assert report == _expected(existing.email)
    assert "7 rows: 2 invited, 2 skipped, 3 rejected" in result.stderr
    assert "Importing 7 rows" in result.stderr


def _system(account_id: object):  # type: ignore[no-untyped-def]
    from cockpit.authz.actor import Actor

    return Actor.system(account_id)  # type: ignore[arg-type]


async def test_admin_edits_seat_limits_from_the_users_page(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    account_id = account.id
    await console_login(client, owner.email)
    csrf = await csrf_for(client, "/users")
    saved = await client.post(
        "/users/seats", data={"csrf_token": csrf, "copilot": "7", "console": "3", "compute": "0"}
    )
    assert saved.status_code == 303
    assert "Seat limits saved" in (await client.get("/users")).text
    await db.rollback()
    from cockpit.tenancy.models import Account

    row = await db.get(Account, account_id, populate_existing=True)
    assert row is not None
    assert (row.seat_limit_copilot, row.seat_limit_console, row.seat_limit_compute) == (7, 3, 0)

    # Below the seats in use (the owner holds a console seat): refused, nothing changed.
    refused = await client.post(
        "/users/seats", data={"csrf_token": csrf, "copilot": "7", "console": "0", "compute": "0"}
    )
    assert refused.status_code == 303
    assert "cannot be 0" in (await client.get("/users")).text
    await db.rollback()
    row = await db.get(Account, account_id, populate_existing=True)
    assert row is not None
    assert row.seat_limit_console == 3


async def test_cli_import_needs_account_only_when_there_are_several(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "COCKPIT_DATABASE_URL": database_url, "COCKPIT_SECRET_KEY": "x" * 40,
           "COCKPIT_DATA_DIR": str(tmp_path)}  # fmt: skip
    source = tmp_path / "one.csv"
    source.write_text("email\nsolo@example.com\n")
    command = ("users", "import", str(source))
    account, _ = await make_account(db)
    account_id = account.id
    single = await asyncio.to_thread(run, env, *command)
    assert single.returncode == 0, single.stderr
    await db.rollback()
    invited = await db.scalar(select(Invitation).where(Invitation.email == "solo@example.com"))
    assert invited is not None
    assert invited.account_id == account_id

    await make_account(db)
    source.write_text("email\nsecond@example.com\n")
    several = await asyncio.to_thread(run, env, *command)
    assert several.returncode != 0
    assert "--account" in several.stderr
