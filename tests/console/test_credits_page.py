"""Credits & Allocations, Overview tab: the cycle, the balance and the groups (administrators), one's
own credits (members), the tracking-off notice, the empty state, the refresh fragment and escaping."""

from __future__ import annotations

import re
from decimal import Decimal
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.console.formatting import datetime_text
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind, GroupBudget, MemberAllocation
from cockpit.groups.models import Group
from cockpit.groups.repository import default_group
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import console_login, make_account, make_user

NAV_TITLE = re.compile(r'<div class="nav-title">([^<]+)</div>')


def _table(html: str) -> str:
    match = re.search(r'<table class="table" id="groups-table">.*?</table>', html, re.S)
    return match.group(0) if match else ""


def _cells(row_html: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row_html, re.S)
    ]


def _rows(html: str) -> list[list[str]]:
    return [_cells(row) for row in re.findall(r"<tr>(.*?)</tr>", _table(html), re.S) if "<td" in row]


async def _sign_in(client: AsyncClient, user: User) -> None:
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text


async def _org(
    db: AsyncSession, *, factor: str = "1", limit: str = "120000"
) -> tuple[Account, User, User, CreditCycle]:
    account, owner = await make_account(db, name="Nimbus Analytics")
    account.credit_factor = Decimal(factor)
    account.credits_per_cycle = Decimal(limit)
    account.timezone = "Europe/Paris"
    await db.commit()
    member = await make_user(db, account, email="member@example.com")
    cycle = await current_cycle(db, account)
    await db.commit()
    return account, owner, member, cycle


async def _budgets(db: AsyncSession, account: Account, member: User, cycle: CreditCycle) -> Group:
    group = await default_group(db, account.id)
    db.add(
        GroupBudget(
            group_id=group.id, account_id=account.id, monthly=Decimal("50000.5"), extra=Decimal("2500"),
            extra_cycle_id=cycle.id, auto_approve_limit=Decimal("1000"),
        )
    )  # fmt: skip
    db.add(
        MemberAllocation(
            user_id=member.id, account_id=account.id, monthly=Decimal("10000"), extra=Decimal("250.25"),
            extra_cycle_id=cycle.id, signup_shortfall=Decimal(0),
        )
    )  # fmt: skip
    ledger.append(
        db, account_id=account.id, cycle=cycle, kind=EntryKind.usage_debit, amount=Decimal("-1234.567"),
        user_id=member.id, group_id=group.id, description="gateway call",
    )  # fmt: skip
    ledger.append(
        db, account_id=account.id, cycle=cycle, kind=EntryKind.hold, amount=Decimal("-20"),
        user_id=member.id, group_id=group.id, description="call in flight",
    )  # fmt: skip
    await db.commit()
    return group


async def test_an_administrator_sees_the_cycle_the_balance_and_the_groups(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner, member, cycle = await _org(db)
    await _budgets(db, account, member, cycle)
    await _sign_in(client, owner)

    page = await client.get("/credits")

    assert page.status_code == 200, page.text
    html = page.text
    assert NAV_TITLE.findall(html) == ["CONTROL", "FINANCE", "OPERATIONS", "ACCOUNT"]
    assert 'href="/credits" class="nav-link active" aria-current="page"' in html
    # The cycle card: number, dates in the organisation's time zone, time left.
    paris = ZoneInfo("Europe/Paris")
    assert f"Cycle {cycle.seq}" in html
    assert datetime_text(cycle.starts_at, paris) in html
    assert datetime_text(cycle.ends_at, paris) in html
    assert " left</div>" in html
    # The balance: 120,000 per cycle, 1,234.567 used, 20 held, 118,745.433 available.
    balance = re.search(r'id="balance-card">.*?</dl>', html, re.S)
    assert balance is not None
    figures = [
        re.sub(r"<[^>]+>", " ", f).split() for f in re.findall(r"<div><dt>.*?</dd></div>", balance.group(0))
    ]
    assert [" ".join(f) for f in figures] == [
        "Credits per cycle 120,000.00",
        "Used 1,234.57",
        "Held 20.00",
        "Available 118,745.43",
    ]
    # Usage of the cycle, with the meter: 1,234.567 / 120,000 = 1.0 %.
    assert "1,234.57 of 120,000.00 credits used this cycle (1.0%)" in html
    assert 'class="meter"' in html
    assert "Credit tracking is off" not in html
    # The groups: Default with 2 members, budget 50,000.5 + 2,500 extra, 10,250.25 distributed; the
    # last column is the pace, whose figures depend on the clock (tests/credits/test_pace_api.py).
    rows = _rows(html)
    assert len(rows) == 1
    assert re.fullmatch(r"[\d,]+\.\d\d/day(Lasts the cycle|Runs out .+)", rows[0][-1]), rows[0][-1]
    assert [row[:-1] for row in rows] == [
        [
            "Default default",
            "2",
            "50,000.50",
            "2,500.00",
            "52,500.50",
            "10,250.25",
            "42,250.25",
            "1,234.57",
            "1,000.00",
        ]
    ]
    assert "No group has a budget yet." not in html
    assert "e+" not in html
    assert "E+" not in html
    assert "000000" not in html


async def test_a_member_sees_only_their_own_credits(db: AsyncSession, client: AsyncClient) -> None:
    account, _, member, cycle = await _org(db)
    await _budgets(db, account, member, cycle)
    await _sign_in(client, member)

    page = await client.get("/credits")

    assert page.status_code == 200, page.text
    html = page.text
    assert NAV_TITLE.findall(html) == ["CONTROL", "FINANCE", "OPERATIONS", "ACCOUNT"]
    mine = re.search(r'id="my-credits">.*?</dl>', html, re.S)
    assert mine is not None
    figures = [
        re.sub(r"<[^>]+>", " ", f).split() for f in re.findall(r"<div><dt>.*?</dd></div>", mine.group(0))
    ]
    assert [" ".join(f) for f in figures] == [
        "Monthly 10,000.00",
        "Extra 250.25",
        "Used 1,234.57",
        "Held 20.00",
        "Remaining 8,995.68",
    ]
    assert f"Cycle {cycle.seq}" in html
    assert 'id="groups-table"' not in html
    assert 'id="balance-card"' not in html
    assert "Allocation overview" not in html
    assert "120,000" not in html  # the account's credits are for administrators


async def test_the_notice_when_credit_tracking_is_off(db: AsyncSession, client: AsyncClient) -> None:
    _account, owner, member, _ = await _org(db, factor="0")
    await _sign_in(client, owner)

    page = await client.get("/credits")

    assert page.status_code == 200
    assert "Credit tracking is off." in page.text
    assert "gateway calls use no credits" in page.text

    client.cookies.clear()
    await _sign_in(client, member)
    assert "Credit tracking is off." in (await client.get("/credits")).text


async def test_the_empty_state_without_group_budgets(db: AsyncSession, client: AsyncClient) -> None:
    _, owner, _, _ = await _org(db)
    await _sign_in(client, owner)

    page = await client.get("/credits")

    assert page.status_code == 200
    assert "No group has a budget yet." in page.text
    assert 'id="groups-table"' not in page.text
    assert "/api/v1" not in page.text


async def test_group_names_are_escaped(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _, _cycle = await _org(db)
    group = Group(account_id=account.id, name="<b>x</b>", name_key="<b>x</b>")
    db.add(group)
    await db.flush()
    db.add(
        GroupBudget(
            group_id=group.id, account_id=account.id, monthly=Decimal("1234567.25"), extra=Decimal(0),
            extra_cycle_id=None, auto_approve_limit=Decimal(0),
        )
    )  # fmt: skip
    await db.commit()
    await _sign_in(client, owner)

    page = await client.get("/credits")

    assert page.status_code == 200
    assert "<b>x</b>" not in page.text
    assert "&lt;b&gt;x&lt;/b&gt;" in page.text
    rows = _rows(page.text)
    assert [row[0] for row in rows] == ["Default default", "&lt;b&gt;x&lt;/b&gt;"]
    assert rows[1][2] == "1,234,567.25"


async def test_refresh_returns_the_figures_fragment(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, member, cycle = await _org(db)
    await _sign_in(client, owner)
    page = await client.get("/credits")
    assert 'hx-get="/credits" hx-target="#credits-overview"' in page.text
    await _budgets(db, account, member, cycle)

    fragment = await client.get("/credits", headers={"HX-Request": "true", "HX-Target": "credits-overview"})

    assert fragment.status_code == 200
    assert "nav-title" not in fragment.text
    assert "1,234.567" in fragment.text
    assert 'id="groups-table"' in fragment.text


async def test_the_page_needs_a_signed_in_user(db: AsyncSession, client: AsyncClient) -> None:
    response = await client.get("/credits")
    assert response.status_code in (303, 401)
    assert response.status_code != 200
