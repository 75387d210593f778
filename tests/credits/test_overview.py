"""The credit overview (/api/v1/credits/overview): an account's budgets and usage, a member's own
figures, and isolation between accounts."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.kit.time import utcnow
from cockpit.users.models import UserRole, UserStatus
from tests.builders import make_user
from tests.credits.helpers import (
    API,
    allocate,
    audit,
    budget,
    cycle_now,
    cycles_in_db,
    hold,
    new_group,
    org,
    patch,
    spend,
)

# ---- overview ----


async def test_the_overview_of_an_account_with_budgets_and_usage(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    bob = await make_user(db, o.account, role=UserRole.member)
    gone = await make_user(db, o.account, role=UserRole.member, status=UserStatus.deactivated)
    eng = await new_group(client, o, "Engineering", bob)
    await patch(client, o, {"credits_per_cycle": 10000, "credit_factor": 50})
    cycle = await cycle_now(db, o)
    await budget(db, o, o.default_group_id, monthly="4000", extra="1000", cycle=cycle)
    await budget(db, o, eng, monthly="3000", extra="500", cycle=None)  # extra of no current cycle
    await allocate(db, o, o.member, monthly="1500", extra="200", cycle=cycle)
    await allocate(db, o, bob, monthly="1000", extra="300", cycle=None)
    await spend(db, o, cycle, o.member, o.default_group_id, "1200")
    await spend(db, o, cycle, o.member, o.default_group_id, "4.31")
    await spend(db, o, cycle, bob, eng, "30.25")
    await hold(db, o, cycle, o.member, o.default_group_id, "25")
    await hold(db, o, cycle, o.member, o.default_group_id, "-15")  # released 15 of it
    assert gone.group_id == o.default_group_id

    response = await client.get(f"{API}/credits/overview", headers=o.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["scope"], body["tracking_enabled"], body["credit_factor"]) == ("account", True, "50")
    assert (body["cycle"]["id"], body["cycle"]["seq"], body["cycle"]["cadence"]) == (
        str(cycle.id),
        1,
        "month",
    )
    assert 0 < body["cycle"]["seconds_left"] <= (cycle.ends_at - utcnow()).total_seconds() + 1
    assert body["account"] == {
        "limit": "10000",
        "used": "1234.56",
        "held": "10",
        "available": "8755.44",
        "usage_percent": "12.3",
        "budgets": "8000",
        "unallocated": "2000",
    }
    groups = {g["name"]: {k: v for k, v in g.items() if k not in ("id", "name")} for g in body["groups"]}
    assert groups == {
        "Default": {
            "is_default": True,
            "members": 2,  # the owner and the member; not the deactivated user
            "monthly": "4000",
            "extra": "1000",
            "budget": "5000",
            "distributed": "1700",
            "available": "3300",
            "used": "1204.31",
            "auto_approve_limit": "0",
        },
        "Engineering": {
            "is_default": False,
            "members": 1,
            "monthly": "3000",
            "extra": "0",
            "budget": "3000",
            "distributed": "1000",
            "available": "2000",
            "used": "30.25",
            "auto_approve_limit": "0",
        },
    }
    assert [g["name"] for g in body["groups"]] == ["Default", "Engineering"]
    # The owner has no allocation: their own figures are zeros.
    assert body["me"]["remaining"] == "0"


async def test_a_member_sees_only_their_own_figures(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    await patch(client, o, {"credits_per_cycle": 10000})
    cycle = await cycle_now(db, o)
    await budget(db, o, o.default_group_id, monthly="4000", cycle=cycle)
    await allocate(db, o, o.member, monthly="1500", extra="200", cycle=cycle)
    await spend(db, o, cycle, o.member, o.default_group_id, "1204.31")
    await spend(db, o, cycle, o.owner, o.default_group_id, "99")
    await hold(db, o, cycle, o.member, o.default_group_id, "10")

    response = await client.get(f"{API}/credits/overview", headers=o.member_headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["scope"], body["account"], body["groups"]) == ("member", None, None)
    assert body["me"] == {
        "user_id": str(o.member.id),
        "group_id": str(o.default_group_id),
        "monthly": "1500",
        "extra": "200",
        "used": "1204.31",
        "held": "10",
        "remaining": "485.69",
    }
    assert (body["cycle"]["seq"], body["tracking_enabled"]) == (1, False)


async def test_extra_credits_of_an_earlier_cycle_do_not_count_for_a_member(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    cycle = await cycle_now(db, o)
    await allocate(db, o, o.member, monthly="100", extra="50", cycle=cycle)
    await spend(db, o, cycle, o.member, o.default_group_id, "30")
    await client.post(f"{API}/credits/cycle/reset", headers=o.headers)

    me = (await client.get(f"{API}/credits/overview", headers=o.member_headers)).json()["me"]

    assert (me["monthly"], me["extra"], me["used"], me["remaining"]) == ("100", "0", "0", "100")


async def test_a_fresh_account_has_an_overview_of_zeros(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)

    admin = (await client.get(f"{API}/credits/overview", headers=o.headers)).json()
    member = (await client.get(f"{API}/credits/overview", headers=o.member_headers)).json()

    assert admin["account"] == {
        "limit": "0",
        "used": "0",
        "held": "0",
        "available": "0",
        "usage_percent": "0",
        "budgets": "0",
        "unallocated": "0",
    }
    [group] = admin["groups"]
    assert (group["name"], group["members"], group["budget"], group["distributed"], group["used"]) == (
        "Default",
        2,
        "0",
        "0",
        "0",
    )
    assert (admin["tracking_enabled"], admin["cycle"]["seq"]) == (False, 1)
    assert member["me"]["remaining"] == "0"
    assert (member["me"]["monthly"], member["me"]["used"], member["me"]["held"]) == ("0", "0", "0")


async def test_accounts_are_isolated(client: AsyncClient, db: AsyncSession) -> None:
    a = await org(db, name="Acme")
    b = await org(db, name="Globex")
    await patch(client, a, {"credits_per_cycle": 5000, "cycle_cadence": "day"})
    cycle = await cycle_now(db, a)
    await spend(db, a, cycle, a.member, a.default_group_id, "77")
    await client.post(f"{API}/credits/cycle/reset", headers=a.headers)
    await budget(db, a, a.default_group_id, monthly="4000", cycle=None)

    settings = (await client.get(f"{API}/credits/settings", headers=b.headers)).json()
    overview = (await client.get(f"{API}/credits/overview", headers=b.headers)).json()
    cycles = (await client.get(f"{API}/credits/cycles", headers=b.headers)).json()

    assert (settings["credits_per_cycle"], settings["cycle_cadence"], settings["current_cycle"]["seq"]) == (
        "0",
        "month",
        1,
    )
    assert (overview["account"]["used"], overview["account"]["budgets"]) == ("0", "0")
    assert [g["budget"] for g in overview["groups"]] == ["0"]
    assert [(c["seq"], c["used"]) for c in cycles["items"]] == [(1, "0")]
    # B's small limit is not checked against A's budgets.
    assert (await patch(client, b, {"credits_per_cycle": 10})).status_code == 200
    assert [e.action for e in await audit(db, b.account.id)] == ["credits.settings_updated"]
    assert [c.seq for c in await cycles_in_db(db, a.account.id)] == [1, 2, 3]
