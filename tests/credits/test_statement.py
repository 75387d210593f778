"""Statements (/api/v1/credits/statement): entries, running balance, scopes, access, CSV export."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind
from cockpit.groups.repository import default_group
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import bearer, make_account, make_token, make_user

API = "/api/v1"
STATEMENT = f"{API}/credits/statement"


@dataclass
class Setup:
    account: Account
    owner: User
    admin_headers: dict[str, str]
    member: User
    member_headers: dict[str, str]
    other: User
    group_id: uuid.UUID
    cycle: CreditCycle

    def at(self, minutes: int) -> datetime:
        return self.cycle.starts_at + timedelta(minutes=minutes)


async def setup(db: AsyncSession, *, name: str = "Acme") -> Setup:
    """A member with a grant, two usage debits and a hold; another member's debit; a group-level entry."""
    account, owner = await make_account(db, name=name)
    account.credits_per_cycle = Decimal(5000)
    await db.commit()
    cycle = await current_cycle(db, account)
    await db.commit()
    member = await make_user(db, account)
    other = await make_user(db, account)
    group = await default_group(db, account.id)
    s = Setup(
        account=account,
        owner=owner,
        admin_headers=bearer(await make_token(db, owner)),
        member=member,
        member_headers=bearer(await make_token(db, member)),
        other=other,
        group_id=group.id,
        cycle=cycle,
    )

    def add(minutes: int, kind: EntryKind, amount: str, **fields: Any) -> None:
        entry = ledger.append(
            db, account_id=account.id, cycle=cycle, kind=kind, amount=Decimal(amount), **fields
        )
        entry.created_at = s.at(minutes)

    mine = {"user_id": member.id, "group_id": group.id}
    add(1, EntryKind.allocation_set, "1000", group_id=group.id, description="Group budget set")
    add(2, EntryKind.request_approved, "100", description="Credit request approved: demo", **mine)
    add(
        3, EntryKind.usage_debit, "-12.5", description="gpt-4o - chat", model="gpt-4o",
        input_tokens=1000, output_tokens=250, usd=Decimal("0.125"), usage_request_id=uuid.uuid4(), **mine,
    )  # fmt: skip
    add(4, EntryKind.hold, "-40", description="hold", **mine)
    add(
        5, EntryKind.usage_debit, "-2.25", description='=HYPERLINK("http://evil.example")',
        model="@mini", input_tokens=200, output_tokens=100, usd=Decimal("0.0225"), **mine,
    )  # fmt: skip
    add(
        6, EntryKind.usage_debit, "-7", description="claude - chat", model="claude", input_tokens=70,
        output_tokens=0, usd=Decimal("0.07"), user_id=other.id, group_id=group.id,
    )  # fmt: skip
    await db.commit()
    return s


def lines(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(e["kind"], e["credits"], e["balance"]) for e in body["entries"]]


async def test_a_members_statement_lists_their_entries_with_a_running_balance(
    client: AsyncClient, db: AsyncSession
) -> None:
    s = await setup(db)

    response = await client.get(STATEMENT, params={"user_id": str(s.member.id)}, headers=s.admin_headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["scope"], body["user_id"], body["group_id"]) == ("user", str(s.member.id), None)
    assert datetime.fromisoformat(body["from"]) == s.cycle.starts_at
    assert datetime.fromisoformat(body["to"]) == s.cycle.ends_at
    # The hold of a call in flight is not a statement line; the other member's debit is not theirs.
    assert lines(body) == [
        ("request_approved", "100", "100"),
        ("usage_debit", "-12.5", "87.5"),
        ("usage_debit", "-2.25", "85.25"),
    ]
    assert (body["opening_balance"], body["closing_balance"]) == ("0", "85.25")
    assert "opening balance" in body["balance_basis"]
    assert "_" not in body["balance_basis"]  # words, not identifiers
    debit = body["entries"][1]
    assert (debit["model"], debit["input_tokens"], debit["output_tokens"]) == ("gpt-4o", 1000, 250)
    # 12.5 credits for 1,250 tokens: 10,000 credits per million tokens.
    assert (debit["unit_price"], debit["usd"], debit["description"]) == ("10000", "0.125", "gpt-4o - chat")
    assert datetime.fromisoformat(debit["date"]) == s.at(3)
    assert body["entries"][2]["unit_price"] == "7500"
    grant = body["entries"][0]
    assert (grant["unit_price"], grant["usd"], grant["model"]) == (None, None, None)


async def test_a_range_starting_mid_cycle_opens_with_the_earlier_balance(
    client: AsyncClient, db: AsyncSession
) -> None:
    s = await setup(db)
    params = {"user_id": str(s.member.id), "from": s.at(3).isoformat(), "to": s.at(5).isoformat()}

    body = (await client.get(STATEMENT, params=params, headers=s.admin_headers)).json()

    # from is inclusive, to exclusive: only the first debit; the grant before it is the opening balance.
    assert lines(body) == [("usage_debit", "-12.5", "87.5")]
    assert (body["opening_balance"], body["closing_balance"]) == ("100", "87.5")


async def test_group_and_account_statements(client: AsyncClient, db: AsyncSession) -> None:
    s = await setup(db)

    group = (
        await client.get(STATEMENT, params={"group_id": str(s.group_id)}, headers=s.admin_headers)
    ).json()
    account = (await client.get(STATEMENT, headers=s.admin_headers)).json()

    # A group: its own budget entries and its members' usage (not the credits it distributed).
    assert group["scope"] == "group"
    assert lines(group) == [
        ("allocation_set", "1000", "1000"),
        ("usage_debit", "-12.5", "987.5"),
        ("usage_debit", "-2.25", "985.25"),
        ("usage_debit", "-7", "978.25"),
    ]
    # The account: the cycle's start with its credits per cycle, then every call.
    assert account["scope"] == "account"
    assert lines(account) == [
        ("cycle_reset", "5000", "5000"),
        ("usage_debit", "-12.5", "4987.5"),
        ("usage_debit", "-2.25", "4985.25"),
        ("usage_debit", "-7", "4978.25"),
    ]
    assert account["closing_balance"] == "4978.25"


async def test_members_get_their_own_statement_only(client: AsyncClient, db: AsyncSession) -> None:
    s = await setup(db)

    own = await client.get(STATEMENT, headers=s.member_headers)
    explicit = await client.get(STATEMENT, params={"user_id": str(s.member.id)}, headers=s.member_headers)

    assert own.status_code == 200, own.text
    assert own.json()["scope"] == "user"
    assert own.json()["user_id"] == str(s.member.id)
    assert lines(own.json()) == lines(explicit.json())
    assert own.json()["closing_balance"] == "85.25"
    for params in ({"user_id": str(s.other.id)}, {"group_id": str(s.group_id)}):
        response = await client.get(STATEMENT, params=params, headers=s.member_headers)
        assert response.status_code == 403, response.text


async def test_another_accounts_user_or_group_is_not_found(client: AsyncClient, db: AsyncSession) -> None:
    s = await setup(db, name="First")
    elsewhere = await setup(db, name="Second")

    user = await client.get(STATEMENT, params={"user_id": str(s.member.id)}, headers=elsewhere.admin_headers)
    group = await client.get(STATEMENT, params={"group_id": str(s.group_id)}, headers=elsewhere.admin_headers)

    assert (user.status_code, user.json()["error"]["code"]) == (404, "user_not_found")
    assert (group.status_code, group.json()["error"]["code"]) == (404, "group_not_found")


async def test_bad_ranges_are_refused_naming_the_parameter(client: AsyncClient, db: AsyncSession) -> None:
    s = await setup(db)
    cases = [
        ({"from": "2026-01-01T00:00:00"}, "from"),
        ({"from": s.at(5).isoformat(), "to": s.at(5).isoformat()}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"user_id": str(s.member.id), "group_id": str(s.group_id)}, "group_id"),
        ({"format": "xls"}, "format"),
    ]
    for params, field in cases:
        response = await client.get(STATEMENT, params=params, headers=s.admin_headers)
        assert response.status_code == 422, (params, response.text)
        assert [d["field"] for d in response.json()["error"]["details"]] == [field], response.text


async def test_csv_export(client: AsyncClient, db: AsyncSession) -> None:
    s = await setup(db)

    response = await client.get(
        STATEMENT, params={"user_id": str(s.member.id), "format": "csv"}, headers=s.admin_headers
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="cockpit-statement-user-')
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == [
        "date", "description", "kind", "model", "input_tokens", "output_tokens",
        "unit_price", "credits", "usd", "balance",
    ]  # fmt: skip
    assert rows[1:] == [
        [s.at(2).isoformat(), "Credit request approved: demo", "request_approved",
         "", "", "", "", "100", "", "100"],
        [s.at(3).isoformat(), "gpt-4o - chat", "usage_debit",
         "gpt-4o", "1000", "250", "10000", "-12.5", "0.125", "87.5"],
        # A description or model that looks like a formula is written as text.
        [s.at(5).isoformat(), "'=HYPERLINK(\"http://evil.example\")", "usage_debit",
         "'@mini", "200", "100", "7500", "-2.25", "0.0225", "85.25"],
    ]  # fmt: skip


async def test_an_allocation_set_after_calls_opens_the_cycle_in_every_listing(
    client: AsyncClient, db: AsyncSession
) -> None:
    """The monthly allocation is what the cycle's calls draw on: listed first (not after the calls,
    which left the balance negative for the whole cycle), in pages, cursors and the CSV alike."""
    s = await setup(db, name="Late Co")
    mine = {"user_id": s.member.id, "group_id": s.group_id}
    for minutes, kind, amount in (
        (20, EntryKind.usage_debit, "-30"),
        (21, EntryKind.usage_debit, "-20"),
        (30, EntryKind.allocation_set, "500"),
        (31, EntryKind.extra_granted, "50"),
    ):
        entry = ledger.append(
            db, account_id=s.account.id, cycle=s.cycle, kind=kind, amount=Decimal(amount), **mine
        )
        entry.created_at = s.at(minutes)
    await db.commit()
    member = {"user_id": str(s.member.id)}

    body = (await client.get(STATEMENT, params=member, headers=s.admin_headers)).json()

    assert lines(body) == [
        ("allocation_set", "500", "500"),
        ("extra_granted", "50", "550"),
        ("request_approved", "100", "650"),
        ("usage_debit", "-12.5", "637.5"),
        ("usage_debit", "-2.25", "635.25"),
        ("usage_debit", "-30", "605.25"),
        ("usage_debit", "-20", "585.25"),
    ]
    assert datetime.fromisoformat(body["entries"][0]["date"]) == s.at(30)  # the date stays true
    # Keyset pages of two lines give the same lines and balances.
    paged: list[tuple[str, str, str]] = []
    cursor: str | None = None
    while True:
        params = member | {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(STATEMENT, params=params, headers=s.admin_headers)).json()
        paged += lines(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == lines(body)
    csv_body = await client.get(STATEMENT, params=member | {"format": "csv"}, headers=s.admin_headers)
    rows = list(csv.reader(io.StringIO(csv_body.text)))[1:]
    assert [(r[2], r[-1]) for r in rows] == [(kind, balance) for kind, _, balance in lines(body)]


# --- long statements: pages, totals, streamed CSV ------------------------------------------------


async def test_a_long_statement_comes_in_keyset_pages_whose_balances_run_on(
    client: AsyncClient, db: AsyncSession
) -> None:
    s = await setup(db, name="Long Co")
    # 1,203 more usage debits of the member, several sharing a timestamp (the id orders them).
    for i in range(1203):
        entry = ledger.append(
            db, account_id=s.account.id, cycle=s.cycle, kind=EntryKind.usage_debit, amount=Decimal("-0.001"),
            user_id=s.member.id, group_id=s.group_id, description=f"call {i}", usage_request_id=uuid.uuid4(),
        )  # fmt: skip
        entry.created_at = s.at(10 + i // 3)
    await db.commit()
    query = {"user_id": str(s.member.id), "limit": "500"}
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = query | ({"cursor": cursor} if cursor else {})
        response = await client.get(STATEMENT, params=params, headers=s.admin_headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            break
    assert [len(p["entries"]) for p in pages] == [500, 500, 206]
    everything = [e for p in pages for e in p["entries"]]
    assert len({e["id"] for e in everything}) == 1206 == pages[0]["total_entries"]
    balance = Decimal(pages[0]["opening_balance"])
    for entry in everything:  # the running balance continues across pages
        balance += Decimal(entry["credits"])
        assert Decimal(entry["balance"]) == balance
    first = pages[0]
    assert Decimal(first["closing_balance"]) == balance
    assert Decimal(first["credits_in"]) == Decimal(100)
    assert Decimal(first["credits_out"]) == Decimal("-12.5") + Decimal("-2.25") + Decimal("-1.203")
    # The CSV has every line, streamed.
    response = await client.get(
        STATEMENT, params={"user_id": str(s.member.id), "format": "csv"}, headers=s.admin_headers
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.text)))
    assert len(rows) == 1 + 1206
    assert Decimal(rows[-1][-1]) == balance


async def test_statement_page_limits_and_cursors_are_checked(client: AsyncClient, db: AsyncSession) -> None:
    s = await setup(db, name="Limit Co")
    too_many = await client.get(STATEMENT, params={"limit": "5000"}, headers=s.admin_headers)
    assert too_many.status_code == 422
    bad = await client.get(STATEMENT, params={"cursor": "not-a-cursor"}, headers=s.admin_headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "cursor"
    small = await client.get(STATEMENT, params={"limit": "1"}, headers=s.admin_headers)
    body = small.json()
    assert len(body["entries"]) == 1
    assert body["next_cursor"] is not None
    assert body["total_entries"] > 1


async def test_a_new_cycle_opens_with_the_standing_budget_and_allocation(
    client: AsyncClient, db: AsyncSession
) -> None:
    """Allocations set in one cycle count in the next ones too: a later cycle's statement starts from
    them (it used to start at 0 and run negative for the whole cycle)."""
    s = await setup(db)
    h = s.admin_headers
    allocated = await client.put(
        f"{API}/groups/{s.group_id}/allocation", json={"monthly": 2000, "extra": 50}, headers=h
    )
    assert allocated.status_code == 200, allocated.text
    allocated = await client.put(
        f"{API}/users/{s.member.id}/allocation", json={"monthly": 300, "extra": 20}, headers=h
    )
    assert allocated.status_code == 200, allocated.text
    assert (await client.post(f"{API}/credits/cycle/reset", headers=h)).status_code == 200
    account = await db.get(Account, s.account.id, populate_existing=True)
    assert account is not None
    second = await current_cycle(db, account)
    entry = ledger.append(
        db, account_id=account.id, cycle=second, kind=EntryKind.usage_debit, amount=Decimal("-12.5"),
        user_id=s.member.id, group_id=s.group_id, description="gpt-4o - chat", usage_request_id=uuid.uuid4(),
    )  # fmt: skip
    entry.created_at = second.starts_at + timedelta(minutes=1)
    await db.commit()

    member = (await client.get(STATEMENT, params={"user_id": str(s.member.id)}, headers=h)).json()
    group = (await client.get(STATEMENT, params={"group_id": str(s.group_id)}, headers=h)).json()
    other = (await client.get(STATEMENT, params={"user_id": str(s.other.id)}, headers=h)).json()

    # The monthly amounts come again (the extra credits belonged to the first cycle only).
    assert datetime.fromisoformat(member["from"]) == second.starts_at
    assert lines(member) == [("cycle_allocation", "300", "300"), ("usage_debit", "-12.5", "287.5")]
    assert member["entries"][0]["description"] == "Monthly allocation for cycle 2"
    assert lines(group) == [("cycle_allocation", "2000", "2000"), ("usage_debit", "-12.5", "1987.5")]
    assert lines(other) == []  # no allocation, nothing carried
    # The first cycle's statement is unchanged by the new cycle.
    first = (
        await client.get(
            STATEMENT,
            params={"user_id": str(s.member.id), "from": s.cycle.starts_at.isoformat(),
                    "to": second.starts_at.isoformat()},
            headers=h,
        )
    ).json()  # fmt: skip
    assert [line[0] for line in lines(first)].count("cycle_allocation") == 0
