"""ACCOUNT → Usage in the console (issue 17): the usage statement as a page, built on the same service
as ``GET /api/v1/usage/statement`` (the same figures), filtered by member, group, project and period,
members limited to their own, downloads with the page's filters, and bad input refused, never a 500."""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind
from cockpit.groups.repository import default_group
from cockpit.integrations.models import AuthType, Integration, IntegrationKind, Transport
from cockpit.projects import service as projects
from cockpit.projects.models import ProjectRole
from cockpit.tenancy.models import Account
from cockpit.usage import statement as statements
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User
from tests.builders import bearer, console_login, make_account, make_token, make_user

PAGE = "/usage"
API = "/api/v1/usage/statement"


@dataclass
class Setup:
    account: Account
    owner: User
    member: User
    other: User
    group_id: uuid.UUID
    project_id: uuid.UUID
    cycle: CreditCycle
    owner_headers: dict[str, str]
    member_headers: dict[str, str]


async def _setup(db: AsyncSession) -> Setup:
    """A member who was given 1,000 credits and 50 more, and called models and a tool over two days
    (one call in a project); another member with one call."""
    account, owner = await make_account(db, name="Usage Page Co")
    cycle = await current_cycle(db, account)
    await db.commit()
    member, other = await make_user(db, account), await make_user(db, account)
    member.name, other.name = "Mia Member", "Otto Other"
    group = await default_group(db, account.id)
    project = await projects.create_project(db, Actor.for_user(owner), name="Apollo")
    await projects.set_member(
        db, Actor.for_user(owner), project.id, member.id, role=ProjectRole.project_member
    )
    slack = Integration(
        account_id=account.id, slug="slack", name="Slack", kind=IntegrationKind.mcp,
        transport=Transport.streamable_http, url="https://slack.example.com/mcp", auth_type=AuthType.none,
    )  # fmt: skip
    db.add(slack)
    await db.flush()

    def entry(minutes: int, kind: EntryKind, amount: str, user: User, **fields: Any) -> None:
        row = ledger.append(
            db, account_id=account.id, cycle=cycle, kind=kind, amount=Decimal(amount),
            user_id=user.id, group_id=group.id, **fields,
        )  # fmt: skip
        row.created_at = cycle.starts_at + timedelta(minutes=minutes)

    def call(
        minutes: int, user: User, model: str, credits: str, usd: str, tokens: tuple[int, int], **extra: Any
    ) -> None:
        call_id = uuid.uuid4()
        db.add(
            UsageRecord(
                id=call_id, account_id=account.id, created_at=cycle.starts_at + timedelta(minutes=minutes),
                user_id=user.id, group_id=group.id, model=model, operation="chat", status="ok",
                http_status=200, latency_ms=5, input_tokens=tokens[0], output_tokens=tokens[1],
                cost_usd=Decimal(usd), credits=Decimal(credits), **extra,
            )
        )  # fmt: skip
        entry(
            minutes, EntryKind.usage_debit, f"-{credits}", user, description=f"{model} - chat", model=model,
            input_tokens=tokens[0], output_tokens=tokens[1], usd=Decimal(usd), usage_request_id=call_id,
        )  # fmt: skip

    entry(1, EntryKind.allocation_set, "1000", member, description="Monthly allocation set")
    call(2, member, "gpt-4o", "10", "0.10", (1000, 500), project_id=project.id)
    call(3, member, "gpt-4o", "5", "0.05", (400, 100))
    call(4, member, "slack.search", "3", "0.03", (0, 0), integration_id=slack.id, tool="search")
    entry(1450, EntryKind.request_approved, "50", member, description="Credit request approved")
    call(1460, member, "claude", "2", "0.02", (100, 100))
    call(6, other, "gpt-4o", "7", "0.07", (700, 0))
    await db.commit()
    return Setup(
        account=account, owner=owner, member=member, other=other, group_id=group.id, project_id=project.id,
        cycle=cycle, owner_headers=bearer(await make_token(db, owner)),
        member_headers=bearer(await make_token(db, member)),
    )  # fmt: skip


def figure(html: str, element_id: str) -> Decimal:
    """The exact amount (its hover title) of a summary figure."""
    match = re.search(rf'id="{element_id}"><span class="amount" title="\+?([-0-9.]+)"', html)
    assert match, f"no figure {element_id}"
    return Decimal(match.group(1))


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert match, f"no element {element_id}"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def rows(html: str) -> list[list[str]]:
    """The statement's lines as the cells' texts (the opening and totals rows left out)."""
    found = []
    for row in re.findall(r'<tr class="stmt-line[^"]*">(.*?)</tr>', html, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        found.append([re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip() for c in cells])
    return found


def download(html: str, fmt: str) -> str:
    match = re.search(rf'id="download-{fmt}" href="([^"]+)"', html)
    assert match, f"no {fmt} download"
    return match.group(1).replace("&amp;", "&")


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


async def test_the_owner_sees_the_account_statement_with_the_apis_figures(
    client: AsyncClient, db: AsyncSession
) -> None:
    s = await _setup(db)
    await console_login(client, s.owner.email)
    page = await client.get(PAGE)
    assert page.status_code == 200, page.text
    api = (await client.get(API, headers=s.owner_headers)).json()
    assert api["scope"] == "account"
    html = page.text
    assert text_of(html, "usage-title") == "Usage Page Co"
    for element_id, key in (
        ("usage-opening", "opening_balance"), ("usage-in", "credits_in"),
        ("usage-out", "credits_out"), ("usage-closing", "closing_balance"),
    ):  # fmt: skip
        assert figure(html, element_id) == _d(api[key]), element_id
    # Every call of the account, whoever made it: 27 credits out, $0.27.
    assert figure(html, "usage-out") == Decimal(-27)
    assert figure(html, "usage-closing") == _d(api["opening_balance"]) + _d(api["credits_in"]) - 27
    assert text_of(html, "usage-calls") == "5"
    assert (text_of(html, "usage-input"), text_of(html, "usage-output")) == ("2,200", "700")
    assert text_of(html, "usage-usd") == "$0.27"
    lines = rows(html)
    assert len(lines) == len(api["lines"])
    usage = [line for line in lines if line[3] != "—"]  # the lines with calls
    day1 = s.cycle.starts_at.date()
    assert [(line[2], line[3], line[4], line[7]) for line in usage] == [
        ("gpt-4o", "3", "2,100 / 600", "-22.00"),
        ("slack.search via Slack", "1", "0 / 0", "-3.00"),
        ("claude", "1", "100 / 100", "-2.00"),
    ]
    assert usage[0][0] == f"{day1.day} {day1:%b} {day1.year}"
    # The downloads follow the page's filters; the statement of a member and project on the same page.
    assert [download(html, fmt).split("?")[0] for fmt in ("csv", "xlsx", "pdf")] == [
        "/usage/statement.csv", "/usage/statement.xlsx", "/usage/statement.pdf",
    ]  # fmt: skip
    assert 'id="usage-scope"' in html
    assert "Otto Other" in html
    assert "Apollo" in html


async def test_a_member_sees_their_own_usage_and_nobody_elses(client: AsyncClient, db: AsyncSession) -> None:
    s = await _setup(db)
    await console_login(client, s.member.email)
    page = await client.get(PAGE)
    assert page.status_code == 200, page.text
    html = page.text
    assert text_of(html, "usage-title") == "You"
    assert 'id="usage-scope"' not in html
    assert "Otto Other" not in html
    assert (figure(html, "usage-opening"), figure(html, "usage-closing")) == (Decimal(0), Decimal(1030))
    assert (figure(html, "usage-in"), figure(html, "usage-out")) == (Decimal(1050), Decimal(-20))
    lines = rows(html)
    assert [(line[1], line[7], line[9]) for line in lines] == [
        ("Allocation Monthly allocation set", "+1,000.00", "1,000.00"),
        ("2 calls", "-15.00", "985.00"),
        ("1 call", "-3.00", "982.00"),
        ("Request approved Credit request approved", "+50.00", "1,032.00"),
        ("1 call", "-2.00", "1,030.00"),
    ]
    # Unit prices: 15 credits for 2,000 tokens is 7,500 per 1M tokens ($75); the tool is per call.
    assert (lines[1][5], lines[1][6]) == ("7,500.00 per 1M tokens", "$75.00 per 1M tokens")
    assert (lines[2][5], lines[2][6]) == ("3.00 per call", "$0.03 per call")
    assert html.count('class="badge') >= 2  # the credits in are marked as such

    # Another member's statement, a group's, or another account's member: refused as the API does.
    for query, status in (
        ({"user_id": str(s.other.id)}, 403),
        ({"scope": f"user:{s.other.id}"}, 403),
        ({"group_id": str(s.group_id)}, 403),
        ({"user_id": str(uuid.uuid4())}, 403),  # (whether it exists is not said)
    ):
        refused = await client.get(PAGE, params=query)
        assert refused.status_code == status, query
        assert "Otto Other" not in refused.text
        if "scope" not in query:  # (the API's words for the same)
            api = await client.get(API, params=query, headers=s.member_headers)
            assert api.status_code == status
    # Their own, named: the same statement.
    own = await client.get(PAGE, params={"user_id": str(s.member.id)})
    assert figure(own.text, "usage-closing") == Decimal(1030)


async def test_member_group_and_project_filters_narrow_the_lines(
    client: AsyncClient, db: AsyncSession
) -> None:
    s = await _setup(db)
    await console_login(client, s.owner.email)

    other = (await client.get(PAGE, params={"scope": f"user:{s.other.id}"})).text
    assert text_of(other, "usage-title") == "Otto Other"
    assert [(line[2], line[7]) for line in rows(other)] == [("gpt-4o", "-7.00")]
    assert figure(other, "usage-closing") == Decimal(-7)

    group = await client.get(PAGE, params={"group_id": str(s.group_id)})
    api = (await client.get(API, params={"group_id": str(s.group_id)}, headers=s.owner_headers)).json()
    assert text_of(group.text, "usage-title").startswith("Group ")
    assert figure(group.text, "usage-closing") == _d(api["closing_balance"])
    assert text_of(group.text, "usage-calls") == "5"

    project = (await client.get(PAGE, params={"project_id": str(s.project_id)})).text
    assert "project Apollo" in text_of(project, "usage-title")
    assert [(line[2], line[3], line[7], line[9]) for line in rows(project)] == [
        ("gpt-4o", "1", "-10.00", "-10.00")
    ]
    assert (figure(project, "usage-opening"), figure(project, "usage-closing")) == (Decimal(0), Decimal(-10))

    # The second day alone (the cycle starts at midnight UTC: the account's zone is UTC).
    day2 = (s.cycle.starts_at + timedelta(days=1)).date().isoformat()
    member = (await client.get(PAGE, params={"user_id": str(s.member.id), "from": day2, "to": day2})).text
    assert [(line[1], line[7]) for line in rows(member)] == [
        ("Request approved Credit request approved", "+50.00"),
        ("1 call", "-2.00"),
    ]
    assert (figure(member, "usage-opening"), figure(member, "usage-closing")) == (Decimal(982), Decimal(1030))


async def test_the_csv_download_is_the_apis_for_the_same_filters(
    client: AsyncClient, db: AsyncSession
) -> None:
    s = await _setup(db)
    await console_login(client, s.owner.email)
    day1 = s.cycle.starts_at.date()
    query = {
        "user_id": str(s.member.id),
        "from": day1.isoformat(),
        "to": (day1 + timedelta(days=1)).isoformat(),
    }
    page = await client.get(PAGE, params=query)
    link = download(page.text, "csv")
    assert dict(parse_qsl(urlsplit(link).query)) == query
    got = await client.get(link)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/csv")
    assert "attachment" in got.headers["content-disposition"]
    api_params = {
        "user_id": str(s.member.id), "format": "csv",
        "from": datetime.combine(day1, datetime.min.time()).isoformat() + "Z",
        "to": datetime.combine(day1 + timedelta(days=2), datetime.min.time()).isoformat() + "Z",
    }  # fmt: skip
    api = await client.get(API, params=api_params, headers=s.owner_headers)
    assert got.content == api.content
    table = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert table[0][0] == "Day"
    assert table[-1][1] == "Totals"
    assert [row[10] for row in table[1:-1]] == ["1000", "-15", "-3", "50", "-2"]
    assert table[-1][12] == "1030"

    for fmt, start in (("xlsx", b"PK"), ("pdf", b"%PDF-")):
        made = await client.get(download(page.text, fmt))
        assert made.status_code == 200, fmt
        assert made.content.startswith(start), fmt


async def test_downloads_are_hidden_and_refused_when_a_policy_denies_exports(
    client: AsyncClient, db: AsyncSession
) -> None:
    s = await _setup(db)
    rule = await client.post(
        "/api/v1/policies",
        json={"scope": "user", "scope_id": str(s.member.id), "resource_type": "feature",
              "resource": "export.reports", "effect": "deny"},
        headers=s.owner_headers,
    )  # fmt: skip
    assert rule.status_code == 201, rule.text
    await console_login(client, s.member.email)
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert 'id="usage-downloads"' not in page.text
    assert (await client.get("/usage/statement.csv")).status_code == 403


async def test_an_empty_period_says_so(client: AsyncClient, db: AsyncSession) -> None:
    _account, owner = await make_account(db, name="Quiet Co")
    await console_login(client, owner.email)
    page = await client.get(PAGE, params={"from": "2021-03-01", "to": "2021-03-31"})
    assert page.status_code == 200
    assert "No usage in this period" in page.text
    assert 'id="usage-table"' not in page.text
    assert (figure(page.text, "usage-opening"), figure(page.text, "usage-closing")) == (
        Decimal(0),
        Decimal(0),
    )
    assert text_of(page.text, "usage-calls") == "0"


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("from=2024-13-01", 400, "is not a date"),
        ("from=yesterday&to=today", 400, "is not a date"),
        ("from=2024-05-02&to=2024-05-01", 400, "end date is before the start date"),
        ("to=9999-12-31", 400, "must be between"),
        ("from=0001-01-01", 400, "must be between"),
        ("from=2024-05-01%00", 400, "from"),
        # A lone surrogate cannot arrive in UTF-8: it is read as U+FFFD, and refused as any typo.
        ("from=%ED%A0%80", 400, "is not a date"),
        ("project_id=%ED%A0%80", 404, "No such project"),
        ("user_id=not-an-id", 404, "No such user"),
        ("group_id=" + "0" * 32, 404, "No such group"),
        ("project_id=" + str(uuid.UUID(int=7)), 404, "No such project"),
        ("scope=everyone", 404, "No such statement"),
        ("scope=user:1&group_id=2", 404, "No such user"),
        ("user_id=" + str(uuid.UUID(int=1)) + "&group_id=" + str(uuid.UUID(int=2)), 422, "not both"),
        ("from=" + "2" * 200, 422, "from"),
        ("page=0", 422, "page"),
    ],
)
async def test_bad_input_is_an_error_on_the_page_never_a_500(
    client: AsyncClient, db: AsyncSession, query: str, status: int, says: str
) -> None:
    _account, owner = await make_account(db, name="Hostile Co")
    await console_login(client, owner.email)
    response = await client.get(f"{PAGE}?{query}")
    assert response.status_code == status, response.text
    assert says in response.text
    assert response.headers["content-type"].startswith("text/html")
    if not query.startswith("page="):  # (a download has no pages)
        download = await client.get(f"/usage/statement.csv?{query}")
        assert download.status_code == (422 if status == 400 and "%00" not in query else status)


async def test_another_accounts_ids_are_not_found(client: AsyncClient, db: AsyncSession) -> None:
    s = await _setup(db)
    _elsewhere, stranger = await make_account(db, name="Elsewhere Co")
    await console_login(client, stranger.email)
    for query in (
        {"user_id": str(s.member.id)},
        {"group_id": str(s.group_id)},
        {"project_id": str(s.project_id)},
    ):
        response = await client.get(PAGE, params=query)
        assert response.status_code == 404, query
        assert "Usage Page Co" not in response.text
        assert "Mia Member" not in response.text


async def test_a_long_statement_is_paged_with_its_balance_brought_forward(
    client: AsyncClient, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Busy Co")
    cycle = await current_cycle(db, account)
    group = await default_group(db, account.id)
    for n in range(130):  # 130 models on the first day: 130 usage lines
        row = ledger.append(
            db, account_id=account.id, cycle=cycle, kind=EntryKind.usage_debit, amount=Decimal(-1),
            user_id=owner.id, group_id=group.id, description="call", model=f"model-{n:03d}",
            input_tokens=10, output_tokens=0, usd=Decimal("0.01"),
        )  # fmt: skip
        row.created_at = cycle.starts_at + timedelta(minutes=1)
    await db.commit()
    await console_login(client, owner.email)
    first = (await client.get(PAGE)).text
    assert len(rows(first)) == 100
    assert 'id="usage-totals-row"' not in first
    # The account's cycle start (0 credits) and the 130 calls.
    assert "1\u2013100 of 131" in first  # (an en dash)
    second = (await client.get(PAGE, params={"page": 2})).text
    assert "Balance brought forward" in second
    assert len(rows(second)) == 31
    assert rows(second)[0][9] == "-100.00"
    assert rows(second)[-1][9] == "-130.00"
    assert 'id="usage-totals-row"' in second
    assert figure(second, "usage-closing") == Decimal(-130)
    past_the_end = (await client.get(PAGE, params={"page": 99})).text
    assert len(rows(past_the_end)) == 31


async def test_one_line_per_call_on_the_page_and_in_its_download(
    client: AsyncClient, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await _setup(db)
    await console_login(client, s.member.email)
    page = await client.get(PAGE, params={"lines": "call"})
    assert page.status_code == 200, page.text
    lines = rows(page.text)
    assert [line[7] for line in lines] == ["+1,000.00", "-10.00", "-5.00", "-3.00", "+50.00", "-2.00"]
    assert lines[-1][9] == "1,030.00"
    assert 'value="call" selected' in page.text
    assert "lines=call" in page.text  # the downloads and periods keep the choice
    download = await client.get("/usage/statement.csv", params={"lines": "call"})
    assert download.status_code == 200
    assert download.text.count("gpt-4o - chat") == 2

    # Too many calls for a line each: said on the page, which shows one line per day instead.
    monkeypatch.setattr(statements, "MAX_CALL_LINES", 2)
    capped = await client.get(PAGE, params={"lines": "call"})
    assert capped.status_code == 400
    assert "more than 2 calls" in capped.text
    assert [line[7] for line in rows(capped.text)] == ["+1,000.00", "-15.00", "-3.00", "+50.00", "-2.00"]


async def test_a_statement_too_long_for_a_pdf_is_offered_as_csv_and_xlsx(
    client: AsyncClient, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await _setup(db)
    await console_login(client, s.member.email)
    monkeypatch.setattr(statements, "MAX_PDF_LINES", 3)
    page = await client.get(PAGE)
    assert "/usage/statement.csv" in page.text
    assert "/usage/statement.pdf" not in page.text
    refused = await client.get("/usage/statement.pdf")
    assert refused.status_code == 422
    assert "more than a PDF holds" in refused.text
    api = await client.get(API, params={"format": "pdf"}, headers=s.member_headers)
    assert api.status_code == 422
    assert api.json()["error"]["code"] == "too_many_lines"
    assert (await client.get(API, params={"format": "xlsx"}, headers=s.member_headers)).status_code == 200
