"""Budget pace over the API and on Credits → Overview: the account's, each group's and each member's
daily burn and run-out day agree with a direct computation from the budgets, allocations and the
usage debits of the cycle; members see their own pace only; another account sees nothing of it."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.console.formatting import date_text
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind, GroupBudget, MemberAllocation
from cockpit.groups.models import Group
from cockpit.groups.repository import default_group
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import bearer, console_login, make_account, make_token, make_user

API = "/api/v1/credits/pace"
PARIS = ZoneInfo("Europe/Paris")


@dataclass
class Org:
    account: Account
    cycle: CreditCycle
    owner: User
    default: Group
    research: Group
    steady: User  # Default: 10,000 allocated, 3,000 used: lasts the cycle
    fast: User  # Research: 1,000 allocated, 900 used: runs out in about a day
    spent: User  # Research: 200 allocated, 200 used: exhausted
    idle: User  # Default: no allocation, nothing used
    debits: dict[uuid.UUID, Decimal]  # used credits per member


async def _org(db: AsyncSession, *, factor: str = "1") -> Org:
    account, owner = await make_account(db, name="Nimbus")
    account.credit_factor = Decimal(factor)
    account.credits_per_cycle = Decimal(100_000)
    account.timezone = "Europe/Paris"
    await db.commit()
    cycle = await current_cycle(db, account)
    # Ten days into a thirty-day cycle.
    now = utcnow()
    cycle.starts_at, cycle.ends_at = now - timedelta(days=10), now + timedelta(days=20)
    default = await default_group(db, account.id)
    research = Group(account_id=account.id, name="Research", name_key="research")
    db.add(research)
    await db.commit()
    steady = await make_user(db, account, email="steady@example.com")
    fast = await make_user(db, account, email="fast@example.com")
    spent = await make_user(db, account, email="spent@example.com")
    idle = await make_user(db, account, email="idle@example.com")
    steady.name, fast.name, spent.name, idle.name = "Sam Steady", "Fay Fast", "Sid Spent", "Ida Idle"
    owner.name = "Olga Owner"
    fast.group_id = spent.group_id = research.id
    db.add_all(
        [
            GroupBudget(group_id=default.id, account_id=account.id, monthly=Decimal(30_000)),
            GroupBudget(
                group_id=research.id, account_id=account.id, monthly=Decimal(1_000), extra=Decimal(500),
                extra_cycle_id=cycle.id,
            ),
            MemberAllocation(user_id=steady.id, account_id=account.id, monthly=Decimal(10_000)),
            MemberAllocation(user_id=fast.id, account_id=account.id, monthly=Decimal(1_000)),
            MemberAllocation(user_id=spent.id, account_id=account.id, monthly=Decimal(200)),
        ]
    )  # fmt: skip
    debits: dict[uuid.UUID, Decimal] = {}
    for user, group, amounts in (
        (steady, default, ["1000", "1999.5", "0.5"]),
        (fast, research, ["450.25", "449.75"]),
        (spent, research, ["200"]),
    ):
        for amount in amounts:
            ledger.append(
                db, account_id=account.id, cycle=cycle, kind=EntryKind.usage_debit, amount=-Decimal(amount),
                user_id=user.id, group_id=group.id, description="gateway call",
            )  # fmt: skip
            debits[user.id] = debits.get(user.id, Decimal(0)) + Decimal(amount)
    # Credits held by a call in flight are not used (yet): they do not count in the pace.
    ledger.append(
        db, account_id=account.id, cycle=cycle, kind=EntryKind.hold, amount=Decimal(-50),
        user_id=steady.id, group_id=default.id, description="call in flight",
    )  # fmt: skip
    await db.commit()
    return Org(account, cycle, owner, default, research, steady, fast, spent, idle, debits)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def expected(used: Decimal, budget: Decimal | None, body: dict[str, Any]) -> dict[str, Any]:
    """The pace computed here from the figures: used per second since the cycle began (an hour at
    least), times a day; the run-out moment is now + left / (used per second), to the minute."""
    now, start = _instant(body["now"]), _instant(body["cycle"]["starts_at"])
    end = _instant(body["cycle"]["ends_at"])
    seconds = max(int((now - start).total_seconds()), 3600)
    burn = (used * 86400 / seconds).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    out: dict[str, Any] = {"used": used, "daily_burn": burn, "runs_out_on": None}
    if budget is None:
        return out | {"status": "no_limit", "budget": None, "left": None}
    left = budget - used
    out |= {"budget": budget, "left": left}
    if budget == 0 and used == 0:
        return out | {"status": "no_budget"}
    if left <= 0:
        return out | {"status": "exhausted"}
    if used == 0:
        return out | {"status": "lasts_cycle"}
    moment = (now + timedelta(seconds=int(left * seconds / used))).replace(second=0, microsecond=0)
    if moment >= end:
        return out | {"status": "lasts_cycle"}
    return out | {"status": "runs_out", "runs_out_on": moment.astimezone(PARIS).date().isoformat()}


def got(item: dict[str, Any]) -> dict[str, Any]:
    def dec(v: str | None) -> Decimal | None:
        return None if v is None else Decimal(v)

    return {
        "used": Decimal(item["used"]), "daily_burn": Decimal(item["daily_burn"]),
        "budget": dec(item["budget"]), "left": dec(item["left"]), "status": item["status"],
        "runs_out_on": item["runs_out_on"],
    }  # fmt: skip


async def test_the_pace_of_the_account_each_group_and_each_member(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await _org(db)
    admin = bearer(await make_token(db, o.owner))

    response = await client.get(API, headers=admin)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["timezone"] == "Europe/Paris"
    assert body["cycle"]["seq"] == o.cycle.seq
    assert _instant(body["cycle"]["starts_at"]) == o.cycle.starts_at
    total = sum(o.debits.values(), Decimal(0))
    assert total == Decimal("4100")
    assert got(body["account"]) == expected(total, Decimal(100_000), body)
    assert body["account"]["status"] == "lasts_cycle"
    groups = {g["group_name"]: g for g in body["groups"]}
    assert set(groups) == {o.default.name, "Research"}
    assert got(groups[o.default.name]) == expected(Decimal(3000), Decimal(30_000), body)
    assert got(groups["Research"]) == expected(Decimal(1100), Decimal(1500), body)
    assert groups["Research"]["status"] == "runs_out"  # 110 a day, 400 left: in about 3.6 days
    assert groups["Research"]["runs_out_at"].endswith("Z")
    members = {m["email"]: m for m in body["members"]["items"]}
    assert body["members"]["meta"]["total"] == 5  # the owner too
    allocations = {o.steady: Decimal(10_000), o.fast: Decimal(1_000), o.spent: Decimal(200)}
    for user in (o.steady, o.fast, o.spent, o.idle, o.owner):
        used = o.debits.get(user.id, Decimal(0))
        assert got(members[user.email]) == expected(used, allocations.get(user, Decimal(0)), body), user.email
    assert [members[u.email]["status"] for u in (o.steady, o.fast, o.spent, o.idle)] == [
        "lasts_cycle", "runs_out", "exhausted", "no_budget",
    ]  # fmt: skip
    assert body["members"]["at_risk"] == 2
    assert members[o.fast.email]["name"] == "Fay Fast"
    assert members[o.fast.email]["group_id"] == str(o.research.id)


async def test_members_are_paged_by_name_or_by_risk(client: AsyncClient, db: AsyncSession) -> None:
    o = await _org(db)
    admin = bearer(await make_token(db, o.owner))

    by_name = await client.get(API, params={"per_page": 2, "page": 2}, headers=admin)
    by_risk = await client.get(API, params={"per_page": 2, "order": "risk"}, headers=admin)

    assert by_name.status_code == 200, by_name.text
    page = by_name.json()["members"]
    assert page["meta"] == {"page": 2, "per_page": 2, "total": 5, "pages": 3}
    # Fay Fast, Ida Idle | Olga Owner, Sam Steady | Sid Spent.
    assert [m["name"] for m in page["items"]] == ["Olga Owner", "Sam Steady"]
    # Out of credits first, then whoever runs out soonest.
    assert [m["name"] for m in by_risk.json()["members"]["items"]] == ["Sid Spent", "Fay Fast"]
    assert (await client.get(API, params={"order": "cost"}, headers=admin)).status_code == 422


async def test_a_member_sees_only_their_own_pace(client: AsyncClient, db: AsyncSession) -> None:
    o = await _org(db)
    mine = bearer(await make_token(db, o.fast))

    response = await client.get(API, headers=mine)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["account"], body["groups"], body["members"]) == (None, None, None)
    assert body["me"]["email"] == o.fast.email
    assert got(body["me"]) == expected(Decimal(900), Decimal(1000), body)
    assert body["me"]["status"] == "runs_out"
    assert "steady@example.com" not in response.text
    assert "100000" not in response.text


async def test_another_account_sees_nothing_of_the_first(client: AsyncClient, db: AsyncSession) -> None:
    o = await _org(db)
    _, stranger = await make_account(db, name="Elsewhere")
    theirs = bearer(await make_token(db, stranger))

    response = await client.get(API, headers=theirs)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["account"]["used"] == "0"
    assert [g["group_name"] for g in body["groups"]] == [o.default.name]  # their own Default group
    assert str(o.default.id) not in response.text
    assert str(o.research.id) not in response.text
    assert [m["email"] for m in body["members"]["items"]] == [stranger.email]
    for user in (o.steady, o.fast, o.spent, o.idle, o.owner):
        assert user.email not in response.text
    assert (await client.get(API)).status_code == 401


async def test_without_credit_tracking_nothing_runs_out(client: AsyncClient, db: AsyncSession) -> None:
    o = await _org(db, factor="0")

    body = (await client.get(API, headers=bearer(await make_token(db, o.owner)))).json()

    assert body["tracking_enabled"] is False
    assert body["account"]["status"] == "no_limit"
    assert body["account"]["budget"] is None
    assert {g["status"] for g in body["groups"]} == {"no_limit"}
    assert {m["status"] for m in body["members"]["items"]} == {"no_limit"}


# ---- the Overview tab ----


def _card(html: str, card_id: str) -> str:
    match = re.search(rf'<div class="stat card[^"]*" id="{card_id}">.*?</div>\s*</div>', html, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0))) if match else ""


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_the_overview_shows_the_pace(client: AsyncClient, db: AsyncSession) -> None:
    o = await _org(db)
    body = (await client.get(API, headers=bearer(await make_token(db, o.owner)))).json()
    research = next(g for g in body["groups"] if g["group_name"] == "Research")
    assert (await console_login(client, o.owner.email)).status_code == 303

    page = await client.get("/credits")

    assert page.status_code == 200, page.text
    html = page.text
    card = _card(html, "account-pace")
    assert "Account pace" in card
    assert "/ day" in card
    assert "Lasts the cycle" in card
    # The Research group's row: its burn per day and the day it runs out, in Paris.
    row = re.search(r"<tr>\s*<td class=\"cell-clip\"><span title=\"Research\">.*?</tr>", html, re.S)
    assert row is not None
    day = date_text(_instant(research["runs_out_at"]), PARIS)
    assert f"Runs out {day}" in _text(row.group(0))
    assert f"{Decimal(research['daily_burn']):,.2f}" in _text(row.group(0))
    assert 'data-pace="runs_out"' in row.group(0)
    # Members' pace: out of credits first, then the soonest to run out; two of them at risk.
    table = re.search(r'<table class="table" id="member-pace-table">.*?</table>', html, re.S)
    assert table is not None
    names = re.findall(r'<span class="person-name">([^<]+)</span>', table.group(0))
    assert names[:2] == ["Sid Spent", "Fay Fast"]
    assert "2 members" in _text(html)
    assert "Exhausted" in _text(table.group(0))
    # The next page of members, as htmx asks for it.
    fragment = await client.get(
        "/credits?members_page=1", headers={"HX-Request": "true", "HX-Target": "member-pace"}
    )
    assert fragment.status_code == 200
    assert 'id="member-pace"' in fragment.text
    assert "<html" not in fragment.text

    client.cookies.clear()
    assert (await console_login(client, o.fast.email)).status_code == 303
    mine = (await client.get("/credits")).text
    assert "Your pace" in _card(mine, "my-pace")
    assert "Runs out" in _card(mine, "my-pace")
    assert "member-pace-table" not in mine
    assert "account-pace" not in mine
