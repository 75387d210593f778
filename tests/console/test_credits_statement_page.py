"""Credits & Allocations, Statement page (/credits/statement) and its CSV export: scopes, who may see
what, the date range in the organisation's time zone, pagination, the empty state and the download."""

from __future__ import annotations

import csv
import html as htmllib
import io
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.console.formatting import datetime_text
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind
from cockpit.groups.repository import default_group
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import console_login, make_account, make_user

PAGE = "/credits/statement"
CSV = "/credits/statement.csv"
PARIS = ZoneInfo("Europe/Paris")


@dataclass
class Org:
    account: Account
    owner: User
    member: User
    other: User
    group_id: uuid.UUID
    cycle: CreditCycle

    def at(self, days: int, minutes: int) -> datetime:
        return self.cycle.starts_at + timedelta(days=days, minutes=minutes)

    def day(self, days: int) -> str:
        return self.at(days, 1).astimezone(PARIS).date().isoformat()


async def org(db: AsyncSession, *, name: str = "Nimbus") -> Org:
    """A Paris organisation. Day 0 of the cycle: a group budget, a grant and a debit of the member;
    day 1: another debit of the member and one of another member (local days: 00:01 Paris is still
    the previous day in UTC, so the date range must be read in the organisation's time zone)."""
    account, owner = await make_account(db, name=name)
    account.credits_per_cycle = Decimal(5000)
    account.timezone = "Europe/Paris"
    await db.commit()
    cycle = await current_cycle(db, account)
    await db.commit()
    member = await make_user(db, account, email=f"member-{uuid.uuid4().hex[:6]}@example.com")
    member.name = "Mia Member"
    other = await make_user(db, account)
    other.name = "Otto Other"
    group = await default_group(db, account.id)
    o = Org(account, owner, member, other, group.id, cycle)

    def add(days: int, minutes: int, kind: EntryKind, amount: str, **fields: Any) -> None:
        entry = ledger.append(
            db, account_id=account.id, cycle=cycle, kind=kind, amount=Decimal(amount), **fields
        )
        entry.created_at = o.at(days, minutes)

    mine = {"user_id": member.id, "group_id": group.id}
    add(0, 1, EntryKind.allocation_set, "1000", group_id=group.id, description="Group budget set")
    add(0, 2, EntryKind.request_approved, "100", description="Credit request approved: <b>demo</b>", **mine)
    add(
        0, 3, EntryKind.usage_debit, "-12.5", description="gpt-4o - chat", model="gpt-4o",
        input_tokens=1000, output_tokens=250, usd=Decimal("0.125"), **mine,
    )  # fmt: skip
    add(0, 4, EntryKind.hold, "-40", description="hold of a call in flight", **mine)
    add(
        1, 1, EntryKind.usage_debit, "-2.25", description="mini - chat", model="mini",
        input_tokens=200, output_tokens=100, usd=Decimal("0.0225"), **mine,
    )  # fmt: skip
    add(
        1, 2, EntryKind.usage_debit, "-7", description="claude - chat", model="claude",
        input_tokens=70, output_tokens=0, usd=Decimal("0.07"), user_id=other.id, group_id=group.id,
    )  # fmt: skip
    await db.commit()
    return o


async def sign_in(client: AsyncClient, user: User) -> None:
    client.cookies.clear()
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text


def text(fragment: str) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def rows(page: str) -> list[list[str]]:
    """The statement's lines (without the opening and closing rows), one list of cell texts each."""
    return [
        [text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r'<tr class="stmt-line">(.*?)</tr>', page, re.S)
    ]


def figure(page: str, label: str) -> str:
    match = re.search(rf"<dt>{label}</dt><dd[^>]*>(.*?)</dd>", page)
    assert match is not None, label
    return text(match.group(1))


def balance_row(page: str, row_id: str) -> list[str] | None:
    match = re.search(rf'<tr class="stmt-balance-row" id="{row_id}">(.*?)</tr>', page, re.S)
    return [text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)] if match else None


def ok(response: Response) -> str:
    assert response.status_code == 200, response.text
    return response.text


async def test_the_account_statement_by_default_for_an_administrator(
    db: AsyncSession, client: AsyncClient
) -> None:
    o = await org(db)
    await sign_in(client, o.owner)

    page = ok(await client.get(PAGE))

    assert 'id="statement-title">Nimbus</h2>' in page
    # The account: the cycle's start (its credits per cycle), then every call; no hold, no grants.
    # Each call names its member under the description.
    assert [(r[1], r[5], r[7]) for r in rows(page)] == [
        ("Cycle start Cycle 1 started (initial)", "+5,000.00", "5,000.00"),
        ("Usage gpt-4o - chat Mia Member", "-12.50", "4,987.50"),
        ("Usage mini - chat Mia Member", "-2.25", "4,985.25"),
        ("Usage claude - chat Otto Other", "-7.00", "4,978.25"),
    ]
    debit = rows(page)[1]
    # Model, tokens in/out, credits per 1M tokens (12.5 for 1,250 tokens), USD.
    # USD below $1 to 4 significant digits: $0.125 as it is.
    assert debit[2:7] == ["gpt-4o", "1,000 / 250", "10,000.00", "-12.50", "$0.125"]
    assert debit[0] == datetime_text(o.at(0, 3), PARIS)
    assert balance_row(page, "statement-opening") is not None
    assert balance_row(page, "statement-opening")[1:] == ["Opening balance", "0.00"]  # type: ignore[index]
    assert balance_row(page, "statement-closing")[1:] == ["Closing balance", "4,978.25"]  # type: ignore[index]
    assert figure(page, "Opening balance") == "0.00"
    assert figure(page, "Credits in") == "+5,000.00"
    assert (
        '<dt>Credits in</dt><dd class="num stmt-in"><span class="amount" title="+5000">+5,000.00</span>'
        in page
    )
    assert figure(page, "Credits out") == "-21.75"
    assert figure(page, "Closing balance") == "4,978.25"
    # The scope picker lists the account, the groups and the members; the range is the current cycle.
    assert '<option value="account" selected>' in page
    assert f'<option value="group:{o.group_id}">Default</option>' in page
    assert f'<option value="user:{o.member.id}">Mia Member — {o.member.email}</option>' in page
    assert f'name="from" id="statement-from" value="{o.day(0)}"' in page
    last_day = (o.cycle.ends_at - timedelta(seconds=1)).astimezone(PARIS).date().isoformat()
    assert f'name="to" id="statement-to" value="{last_day}"' in page
    assert f'href="{CSV}?from={o.day(0)}&amp;to={last_day}"' in page
    assert 'id="tab-overview"' in page
    assert "credits-statement.css" in page


async def test_a_member_and_a_group_statement_for_an_administrator(
    db: AsyncSession, client: AsyncClient
) -> None:
    o = await org(db)
    await sign_in(client, o.owner)

    member = ok(await client.get(PAGE, params={"user_id": str(o.member.id)}))
    picked = ok(await client.get(PAGE, params={"scope": f"user:{o.member.id}"}))
    group = ok(await client.get(PAGE, params={"scope": f"group:{o.group_id}"}))

    assert 'id="statement-title">Mia Member</h2>' in member
    # A member's statement does not repeat the member on each line; the description is escaped.
    assert [(r[0][-5:], r[1], r[5], r[7]) for r in rows(member)] == [
        (o.at(0, 2).astimezone(PARIS).strftime("%H:%M"),
         "Request approved Credit request approved: <b>demo</b>", "+100.00", "100.00"),
        (o.at(0, 3).astimezone(PARIS).strftime("%H:%M"), "Usage gpt-4o - chat", "-12.50", "87.50"),
        (o.at(1, 1).astimezone(PARIS).strftime("%H:%M"), "Usage mini - chat", "-2.25", "85.25"),
    ]  # fmt: skip
    assert "<b>demo</b>" not in member
    assert rows(picked) == rows(member)
    assert f'<option value="user:{o.member.id}" selected>' in picked
    assert 'id="statement-title">Group Default</h2>' in group
    assert [(r[1], r[5], r[7]) for r in rows(group)] == [
        ("Allocation Group budget set", "+1,000.00", "1,000.00"),
        ("Usage gpt-4o - chat Mia Member", "-12.50", "987.50"),
        ("Usage mini - chat Mia Member", "-2.25", "985.25"),
        ("Usage claude - chat Otto Other", "-7.00", "978.25"),
    ]
    assert '<span class="amount" title="+1000">+1,000.00</span>' in group  # exact value on hover
    assert f'href="{PAGE}?user_id={o.other.id}"' in group  # a member's own statement is one click away


async def test_a_member_sees_their_own_statement_only(db: AsyncSession, client: AsyncClient) -> None:
    o = await org(db)
    await sign_in(client, o.member)

    own = ok(await client.get(PAGE))

    assert 'id="statement-title">You</h2>' in own
    assert [r[5] for r in rows(own)] == ["+100.00", "-12.50", "-2.25"]
    assert 'name="scope"' not in own  # no picker
    assert "Otto Other" not in own
    assert rows(ok(await client.get(PAGE, params={"user_id": str(o.member.id)}))) == rows(own)
    # Asking for the account gives a member their own statement, as the service does.
    assert rows(ok(await client.get(PAGE, params={"scope": "account"}))) == rows(own)
    for params in (
        {"user_id": str(o.other.id)},
        {"group_id": str(o.group_id)},
        {"scope": f"user:{o.owner.id}"},
    ):
        response = await client.get(PAGE, params=params)
        assert response.status_code == 403, params
        assert "4,978.25" not in response.text
        csv_response = await client.get(CSV, params=params)
        assert csv_response.status_code == 403, params
    mine = await client.get(CSV)
    assert mine.status_code == 200
    assert [row[7] for row in csv.reader(io.StringIO(mine.text))][1:] == ["100", "-12.5", "-2.25"]


async def test_another_accounts_group_or_member_is_not_found(db: AsyncSession, client: AsyncClient) -> None:
    o = await org(db, name="First")
    elsewhere = await org(db, name="Second")
    await sign_in(client, elsewhere.owner)

    for params in (
        {"group_id": str(o.group_id)},
        {"user_id": str(o.member.id)},
        {"scope": f"group:{o.group_id}"},
        {"group_id": "not-a-uuid"},
        {"scope": "nonsense"},
    ):
        response = await client.get(PAGE, params=params)
        assert response.status_code == 404, params
        assert "Mia Member" not in response.text
        assert (await client.get(CSV, params=params)).status_code == 404, params


async def test_the_date_range_is_in_the_organisations_time_zone(
    db: AsyncSession, client: AsyncClient
) -> None:
    o = await org(db)
    await sign_in(client, o.owner)
    day1 = {"user_id": str(o.member.id), "from": o.day(1), "to": o.day(1)}

    page = ok(await client.get(PAGE, params=day1))

    # Only day 1 (00:01 Paris, still the day before in UTC); day 0 makes the opening balance.
    assert [r[5] for r in rows(page)] == ["-2.25"]
    assert figure(page, "Opening balance") == "87.50"
    assert figure(page, "Closing balance") == "85.25"
    assert balance_row(page, "statement-opening")[-1] == "87.50"  # type: ignore[index]
    assert '<td class="right num nowrap"><span class="amount" title="87.5">87.50</span></td>' in page
    assert f'value="{o.day(1)}"' in page
    assert f"from={o.day(1)}&amp;to={o.day(1)}" in page  # the export follows the range

    download = await client.get(CSV, params=day1)
    assert download.status_code == 200
    assert [row[1] for row in csv.reader(io.StringIO(download.text))] == ["description", "mini - chat"]


async def test_a_bad_range_is_explained_and_what_was_typed_is_kept(
    db: AsyncSession, client: AsyncClient
) -> None:
    o = await org(db)
    await sign_in(client, o.owner)

    backwards = ok(await client.get(PAGE, params={"from": o.day(1), "to": o.day(0)}))
    garbage = ok(await client.get(PAGE, params={"from": "31/12/2026", "to": o.day(0)}))

    assert "The end date is before the start date." in backwards
    assert f'name="from" id="statement-from" value="{o.day(1)}"' in backwards
    assert f'name="to" id="statement-to" value="{o.day(0)}"' in backwards
    assert len(rows(backwards)) == 4  # the current cycle is shown meanwhile
    assert "The start date &#39;31/12/2026&#39; is not a date (YYYY-MM-DD)." in garbage
    assert 'value="31/12/2026"' in garbage
    response = await client.get(CSV, params={"from": o.day(1), "to": o.day(0)})
    assert response.status_code == 422


async def test_an_empty_period(db: AsyncSession, client: AsyncClient) -> None:
    o = await org(db)
    await sign_in(client, o.owner)

    page = ok(await client.get(PAGE, params={"user_id": str(o.other.id), "from": o.day(0), "to": o.day(0)}))

    assert "No entries in this period" in page
    assert 'id="statement-table"' not in page
    assert figure(page, "Closing balance") == "0.00"


async def test_csv_download(db: AsyncSession, client: AsyncClient) -> None:
    o = await org(db)
    await sign_in(client, o.owner)

    response = await client.get(CSV, params={"user_id": str(o.member.id)})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="cockpit-statement-user-\d{8}-\d{8}\.csv"', disposition)
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0][:3] == ["date", "description", "kind"]
    assert table[1:] == [
        [o.at(0, 2).isoformat(), "Credit request approved: <b>demo</b>", "request_approved",
         "", "", "", "", "100", "", "100"],
        [o.at(0, 3).isoformat(), "gpt-4o - chat", "usage_debit", "gpt-4o", "1000", "250", "10000",
         "-12.5", "0.125", "87.5"],
        [o.at(1, 1).isoformat(), "mini - chat", "usage_debit", "mini", "200", "100", "7500",
         "-2.25", "0.0225", "85.25"],
    ]  # fmt: skip
    group = await client.get(CSV, params={"scope": f"group:{o.group_id}"})
    assert "cockpit-statement-group-" in group.headers["content-disposition"]
    assert len(list(csv.reader(io.StringIO(group.text)))) == 5


async def test_long_statements_are_paginated_with_the_balance_brought_forward(
    db: AsyncSession, client: AsyncClient
) -> None:
    o = await org(db)
    for i in range(140):
        entry = ledger.append(
            db, account_id=o.account.id, cycle=o.cycle, kind=EntryKind.usage_debit, amount=Decimal("-1"),
            user_id=o.other.id, group_id=o.group_id, description=f"call {i}", model="m",
            input_tokens=1, output_tokens=1, usd=Decimal("0.001"),
        )  # fmt: skip
        entry.created_at = o.at(2, i)
    await db.commit()
    await sign_in(client, o.owner)
    params = {"user_id": str(o.other.id)}

    first = ok(await client.get(PAGE, params=params))
    second = ok(await client.get(PAGE, params=params | {"page": "2"}))
    beyond = ok(await client.get(PAGE, params=params | {"page": "9"}))

    assert len(rows(first)) == 100
    assert "1\N{EN DASH}100 of 141" in first
    assert balance_row(first, "statement-closing") is None
    assert 'rel="next"' in first
    assert rows(first)[-1][-1] == "-106.00"  # -7, then 99 calls of -1
    assert len(rows(second)) == 41
    assert balance_row(second, "statement-opening")[1:] == ["Balance brought forward", "-106.00"]  # type: ignore[index]
    assert balance_row(second, "statement-closing")[-1] == "-147.00"  # type: ignore[index]
    assert rows(beyond) == rows(second)
    # The CSV has every line, not a page.
    assert len((await client.get(CSV, params=params)).text.strip().splitlines()) == 142


async def test_the_page_needs_a_signed_in_user(db: AsyncSession, client: AsyncClient) -> None:
    assert (await client.get(PAGE)).status_code == 303
    assert (await client.get(CSV)).status_code == 303
