"""The usage statement (/api/v1/usage/statement, issue 17): one line per day per model (and per
integration for tool calls), credits in as lines, a running balance that reconciles with the ledger
and the recorded calls, downloads as CSV, XLSX and PDF, and members limited to their own."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind, LedgerEntry
from cockpit.groups.repository import default_group
from cockpit.integrations.models import AuthType, Integration, IntegrationKind, Transport
from cockpit.projects.models import Project, ProjectMember
from cockpit.usage import statement as statement_service
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User
from tests.builders import bearer, make_account, make_token, make_user

STATEMENT = "/api/v1/usage/statement"


@dataclass
class Setup:
    member: User
    other: User
    admin_headers: dict[str, str]
    member_headers: dict[str, str]
    other_headers: dict[str, str]
    project_id: uuid.UUID
    cycle: CreditCycle


async def _setup(db: AsyncSession, timezone: str = "UTC") -> Setup:
    account, owner = await make_account(db)
    account.timezone = timezone
    await db.commit()
    cycle = await current_cycle(db, account)
    await db.commit()
    member, other = await make_user(db, account), await make_user(db, account)
    group = await default_group(db, account.id)
    slack = Integration(
        account_id=account.id, slug="slack", name="Slack", kind=IntegrationKind.mcp,
        transport=Transport.streamable_http, url="https://slack.example.com/mcp", auth_type=AuthType.none,
    )  # fmt: skip
    db.add(slack)
    await db.flush()  # its id
    project = Project(account_id=account.id, name="Launch", name_key="launch")
    db.add(project)
    await db.flush()
    project_id = project.id

    def at(minutes: int) -> datetime:
        return cycle.starts_at + timedelta(minutes=minutes)

    def entry(minutes: int, kind: EntryKind, amount: str, user: User, **fields: Any) -> None:
        row = ledger.append(
            db, account_id=account.id, cycle=cycle, kind=kind, amount=Decimal(amount),
            user_id=user.id, group_id=group.id, **fields,
        )  # fmt: skip
        row.created_at = at(minutes)

    def call(
        minutes: int, user: User, model: str, credits: str, usd: str, tokens: tuple[int, int], **extra: Any
    ) -> None:
        call_id = uuid.uuid4()
        db.add(
            UsageRecord(
                id=call_id,
                account_id=account.id,
                created_at=at(minutes),
                user_id=user.id,
                group_id=group.id,
                model=model,
                operation="chat",
                status="ok",
                http_status=200,
                latency_ms=5,
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                cost_usd=Decimal(usd),
                credits=Decimal(credits),
                **extra,
            )
        )
        entry(
            minutes, EntryKind.usage_debit, f"-{credits}", user, description=f"{model} - chat", model=model,
            input_tokens=tokens[0], output_tokens=tokens[1], usd=Decimal(usd), usage_request_id=call_id,
        )  # fmt: skip

    entry(1, EntryKind.allocation_set, "1000", member, description="Monthly allocation set")
    call(2, member, "gpt-4o", "10", "0.10", (1000, 500), project_id=project_id)
    call(3, member, "gpt-4o", "5", "0.05", (400, 100))
    call(4, member, "slack.search", "3", "0.03", (0, 0), integration_id=slack.id, tool="search")
    entry(5, EntryKind.hold, "-40", member, description="hold")  # in flight: not a line
    entry(1450, EntryKind.request_approved, "50", member, description="Credit request approved")
    call(1460, member, "claude", "2", "0.02", (100, 100))
    call(6, other, "gpt-4o", "7", "0.07", (700, 0))
    db.add(ProjectMember(project_id=project_id, user_id=member.id, account_id=account.id))
    await db.commit()
    return Setup(
        member=member,
        other=other,
        admin_headers=bearer(await make_token(db, owner)),
        member_headers=bearer(await make_token(db, member)),
        other_headers=bearer(await make_token(db, other)),
        project_id=project_id,
        cycle=cycle,
    )


def _d(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


async def test_lines_per_day_and_model_with_a_running_balance_that_reconciles(
    client: AsyncClient, db: AsyncSession
) -> None:
    s = await _setup(db)
    response = await client.get(STATEMENT, headers=s.member_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "user"
    day1, day2 = (
        s.cycle.starts_at.date().isoformat(),
        (s.cycle.starts_at + timedelta(days=1)).date().isoformat(),
    )
    got = [
        (
            ln["day"],
            ln["kind"],
            ln["model"],
            ln["integration"],
            ln["calls"],
            _d(ln["credits"]),
            _d(ln["balance"]),
        )
        for ln in body["lines"]
    ]
    assert got == [
        (day1, "allocation_set", None, None, 0, Decimal(1000), Decimal(1000)),
        (day1, "usage", "gpt-4o", None, 2, Decimal(-15), Decimal(985)),
        (day1, "usage", "slack.search", "Slack", 1, Decimal(-3), Decimal(982)),
        (day2, "request_approved", None, None, 0, Decimal(50), Decimal(1032)),
        (day2, "usage", "claude", None, 1, Decimal(-2), Decimal(1030)),
    ]
    gpt, tool = body["lines"][1], body["lines"][2]
    assert (gpt["input_tokens"], gpt["output_tokens"], gpt["unit"]) == (1400, 600, "1M tokens")
    assert _d(gpt["unit_price_credits"]) == Decimal(7500)  # 15 credits / 2,000 tokens
    assert _d(gpt["unit_price_usd"]) == Decimal(75)
    assert _d(gpt["usd"]) == Decimal("0.15")
    assert (tool["unit"], _d(tool["unit_price_credits"]), _d(tool["unit_price_usd"])) == (
        "call", Decimal(3), Decimal("0.03"),
    )  # fmt: skip
    assert _d(body["opening_balance"]) == 0
    assert _d(body["closing_balance"]) == Decimal(1030)
    assert (_d(body["credits_in"]), _d(body["credits_out"])) == (Decimal(1050), Decimal(-20))
    assert (body["calls"], body["input_tokens"], body["output_tokens"]) == (4, 1500, 700)
    assert _d(body["usd"]) == Decimal("0.20")

    # Reconciled: the closing balance is the credits statement's, and the ledger's settled movements.
    credits = (await client.get("/api/v1/credits/statement", headers=s.member_headers)).json()
    assert _d(credits["closing_balance"]) == _d(body["closing_balance"])
    settled = await db.scalar(
        select(func.sum(LedgerEntry.amount)).where(
            LedgerEntry.user_id == s.member.id, LedgerEntry.kind.not_in((EntryKind.hold, EntryKind.release))
        )
    )
    assert Decimal(settled) == Decimal(1030)
    # ... and the usage lines are the recorded calls.
    recorded = await db.scalar(
        select(func.sum(UsageRecord.credits)).where(UsageRecord.user_id == s.member.id)
    )
    assert -sum(_d(ln["credits"]) or 0 for ln in body["lines"] if ln["kind"] == "usage") == Decimal(recorded)


async def test_members_get_their_own_and_admins_the_account(client: AsyncClient, db: AsyncSession) -> None:
    s = await _setup(db)
    refused = await client.get(STATEMENT, params={"user_id": str(s.other.id)}, headers=s.member_headers)
    assert refused.status_code in (403, 404)
    account = (await client.get(STATEMENT, headers=s.admin_headers)).json()
    assert account["scope"] == "account"
    assert account["calls"] == 5
    theirs = (
        await client.get(STATEMENT, params={"user_id": str(s.other.id)}, headers=s.admin_headers)
    ).json()
    assert [(ln["model"], _d(ln["credits"])) for ln in theirs["lines"]] == [("gpt-4o", Decimal(-7))]

    project = (
        await client.get(STATEMENT, params={"project_id": str(s.project_id)}, headers=s.member_headers)
    ).json()
    assert project["scope"] == "project"
    assert [(ln["calls"], _d(ln["credits"]), _d(ln["balance"])) for ln in project["lines"]] == [
        (1, Decimal(-10), Decimal(-10))
    ]
    # A project the member is not in, and one that does not exist: not found.
    theirs_only = await client.get(
        STATEMENT, params={"project_id": str(s.project_id)}, headers=s.other_headers
    )
    assert theirs_only.status_code == 404
    unknown = await client.get(STATEMENT, params={"project_id": str(uuid.uuid4())}, headers=s.admin_headers)
    assert unknown.status_code == 404


async def test_the_formats_download_with_their_content_types(client: AsyncClient, db: AsyncSession) -> None:
    s = await _setup(db)
    csv_response = await client.get(STATEMENT, params={"format": "csv"}, headers=s.member_headers)
    assert csv_response.status_code == 200, csv_response.text
    assert csv_response.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig"))))
    assert rows[0][0] == "Day"
    assert rows[-1][1] == "Totals"
    assert len(rows) == 1 + 5 + 1

    xlsx = await client.get(STATEMENT, params={"format": "xlsx"}, headers=s.member_headers)
    assert xlsx.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert xlsx.content[:2] == b"PK"

    pdf = await client.get(STATEMENT, params={"format": "pdf"}, headers=s.member_headers)
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content[:5] == b"%PDF-"


async def test_days_are_the_organisations_days(client: AsyncClient, db: AsyncSession) -> None:
    # UTC+14: the cycle starts at the organisation's midnight, 10:00 UTC the day before.
    s = await _setup(db, timezone="Pacific/Kiritimati")
    zone = ZoneInfo("Pacific/Kiritimati")
    body = (await client.get(STATEMENT, headers=s.member_headers)).json()
    local_day1 = s.cycle.starts_at.astimezone(zone).date()
    assert local_day1 != s.cycle.starts_at.astimezone(UTC).date()
    assert body["zone"] == "Pacific/Kiritimati"
    assert [ln["day"] for ln in body["lines"]] == [local_day1.isoformat()] * 3 + [
        (local_day1 + timedelta(days=1)).isoformat()
    ] * 2


async def test_one_line_per_call(
    client: AsyncClient, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await _setup(db)
    body = (await client.get(STATEMENT, params={"lines": "call"}, headers=s.member_headers)).json()
    got = [
        (ln["kind"], ln["model"], ln["calls"], _d(ln["credits"]), _d(ln["balance"])) for ln in body["lines"]
    ]
    # The ledger's order: each call its own line, the credits in between.
    assert got == [
        ("allocation_set", None, 0, Decimal(1000), Decimal(1000)),
        ("usage", "gpt-4o", 1, Decimal(-10), Decimal(990)),
        ("usage", "gpt-4o", 1, Decimal(-5), Decimal(985)),
        ("usage", "slack.search", 1, Decimal(-3), Decimal(982)),
        ("request_approved", None, 0, Decimal(50), Decimal(1032)),
        ("usage", "claude", 1, Decimal(-2), Decimal(1030)),
    ]
    calls = [ln for ln in body["lines"] if ln["kind"] == "usage"]
    assert all(ln["request_id"] and ln["at"] for ln in calls)
    first = calls[0]
    assert (first["input_tokens"], first["output_tokens"]) == (1000, 500)
    assert _d(first["unit_price_credits"]) == Decimal("6666.666667")  # 10 credits / 1,500 tokens
    assert first["description"].endswith("gpt-4o - chat")
    # The same totals as the statement by day.
    by_day = (await client.get(STATEMENT, headers=s.member_headers)).json()
    for field in ("closing_balance", "credits_in", "credits_out", "usd"):
        assert _d(body[field]) == _d(by_day[field]), field
    assert body["calls"] == by_day["calls"] == 4

    monkeypatch.setattr(statement_service, "MAX_CALL_LINES", 3)
    refused = await client.get(STATEMENT, params={"lines": "call"}, headers=s.member_headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "too_many_lines"
