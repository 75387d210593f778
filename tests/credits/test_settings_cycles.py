"""Credit settings, cycles and the overview (/api/v1/credits/settings, /cycle/reset, /cycles, /overview)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.models import Account
from cockpit.audit.models import AuditEntry
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind, GroupBudget, MemberAllocation
from cockpit.groups.repository import default_group
from cockpit.kit.time import utcnow
from cockpit.users.models import User, UserRole, UserStatus
from tests.builders import bearer, make_account, make_token, make_user

API = "/api/v1"


@dataclass
class Org:
    account: Account
    owner: User
    headers: dict[str, str]
    default_group_id: uuid.UUID
    member: User
    member_headers: dict[str, str]


async def org(db: AsyncSession, *, name: str = "Acme") -> Org:
    account, owner = await make_account(db, name=name)
    group = await default_group(db, account.id)
    member = await make_user(db, account, role=UserRole.member)
    return Org(
        account=account,
        owner=owner,
        headers=bearer(await make_token(db, owner)),
        default_group_id=group.id,
        member=member,
        member_headers=bearer(await make_token(db, member)),
    )


async def patch(client: AsyncClient, o: Org, body: dict[str, Any]) -> Any:
    return await client.patch(f"{API}/credits/settings", json=body, headers=o.headers)


async def new_group(client: AsyncClient, o: Org, name: str, *members: User) -> uuid.UUID:
    response = await client.post(f"{API}/groups", json={"name": name}, headers=o.headers)
    assert response.status_code == 201, response.text
    group_id = uuid.UUID(response.json()["id"])
    if members:
        moved = await client.post(
            f"{API}/groups/{group_id}/members",
            json={"user_ids": [str(u.id) for u in members]},
            headers=o.headers,
        )
        assert moved.status_code == 200, moved.text
    return group_id


async def budget(
    db: AsyncSession,
    o: Org,
    group_id: uuid.UUID,
    *,
    monthly: str,
    extra: str = "0",
    cycle: CreditCycle | None,
) -> None:
    db.add(
        GroupBudget(
            group_id=group_id, account_id=o.account.id, monthly=Decimal(monthly), extra=Decimal(extra),
            extra_cycle_id=cycle.id if cycle is not None else None, auto_approve_limit=Decimal(0),
        )
    )  # fmt: skip
    await db.commit()


async def allocate(
    db: AsyncSession, o: Org, user: User, *, monthly: str, extra: str = "0", cycle: CreditCycle | None
) -> None:
    db.add(
        MemberAllocation(
            user_id=user.id, account_id=o.account.id, monthly=Decimal(monthly), extra=Decimal(extra),
            extra_cycle_id=cycle.id if cycle is not None else None, signup_shortfall=Decimal(0),
        )
    )  # fmt: skip
    await db.commit()


async def cycle_now(db: AsyncSession, o: Org) -> CreditCycle:
    cycle = await current_cycle(db, o.account)
    await db.commit()
    return cycle


async def spend(
    db: AsyncSession, o: Org, cycle: CreditCycle, user: User, group_id: uuid.UUID, credits: str
) -> None:
    ledger.append(
        db, account_id=o.account.id, cycle=cycle, kind=EntryKind.usage_debit, amount=-Decimal(credits),
        user_id=user.id, group_id=group_id, description="gpt-test call", usage_request_id=uuid.uuid4(),
    )  # fmt: skip
    await db.commit()


async def hold(
    db: AsyncSession, o: Org, cycle: CreditCycle, user: User, group_id: uuid.UUID, credits: str
) -> None:
    kind = EntryKind.hold if Decimal(credits) > 0 else EntryKind.release
    ledger.append(
        db, account_id=o.account.id, cycle=cycle, kind=kind, amount=-Decimal(credits), user_id=user.id,
        group_id=group_id,
    )  # fmt: skip
    await db.commit()


async def audit(db: AsyncSession, account_id: uuid.UUID, prefix: str = "credits.") -> list[AuditEntry]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id, AuditEntry.action.like(prefix + "%"))
        .order_by(AuditEntry.seq)
    )
    return list(rows)


async def cycles_in_db(db: AsyncSession, account_id: uuid.UUID) -> list[CreditCycle]:
    await db.commit()
    rows = await db.scalars(
        select(CreditCycle)
        .where(CreditCycle.account_id == account_id)
        .order_by(CreditCycle.seq)
        .execution_options(populate_existing=True)
    )
    return list(rows)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- settings ----


async def test_settings_of_a_new_account(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)

    response = await client.get(f"{API}/credits/settings", headers=o.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert {
        k: body[k] for k in ("credits_per_cycle", "cycle_cadence", "credit_factor", "signup_credits")
    } == {
        "credits_per_cycle": "0",
        "cycle_cadence": "month",
        "credit_factor": "0",
        "signup_credits": "0",
    }
    assert body["tracking_enabled"] is False
    cycle = body["current_cycle"]
    now = utcnow()
    assert (cycle["seq"], cycle["cadence"]) == (1, "month")
    assert when(cycle["starts_at"]) == now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert when(cycle["starts_at"]) <= now < when(cycle["ends_at"])


async def test_change_settings_exactly_and_audit_the_change(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)

    response = await patch(
        client, o, {"credits_per_cycle": "15000.5", "credit_factor": 100, "signup_credits": "25.000001"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["credits_per_cycle"], body["credit_factor"], body["signup_credits"]) == (
        "15000.5",
        "100",
        "25.000001",
    )
    assert (body["cycle_cadence"], body["tracking_enabled"], body["current_cycle"]["seq"]) == (
        "month",
        True,
        1,
    )
    again = (await client.get(f"{API}/credits/settings", headers=o.headers)).json()
    assert again["credits_per_cycle"] == "15000.5"
    # The limit applies to the current cycle at once.
    [cycle] = await cycles_in_db(db, o.account.id)
    assert cycle.credits_per_cycle == Decimal("15000.5")
    [entry] = await audit(db, o.account.id)
    assert entry.action == "credits.settings_updated"
    assert entry.before == {"credits_per_cycle": "0", "credit_factor": "0", "signup_credits": "0"}
    assert entry.after == {
        "credits_per_cycle": "15000.5",
        "credit_factor": "100",
        "signup_credits": "25.000001",
    }
    assert entry.actor_id == o.owner.id


async def test_unchanged_settings_record_nothing(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    assert (await patch(client, o, {"credit_factor": "0", "cycle_cadence": "month"})).status_code == 200
    assert await audit(db, o.account.id) == []
    assert len(await cycles_in_db(db, o.account.id)) == 1


async def test_invalid_settings_are_refused_naming_the_field(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"credits_per_cycle": -1}, "credits_per_cycle"),
        ({"credit_factor": "0.0000001"}, "credit_factor"),
        ({"signup_credits": "abc"}, "signup_credits"),
        ({"cycle_cadence": "fortnight"}, "cycle_cadence"),
        ({"credits_per_cycle": "NaN"}, "credits_per_cycle"),
        ({"credit_limit": 5}, "credit_limit"),
    ]
    for body, field in cases:
        response = await patch(client, o, body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert [d["field"] for d in error["details"]] == [field], (body, error)
        assert field in error["message"]
    settings = (await client.get(f"{API}/credits/settings", headers=o.headers)).json()
    assert (settings["credits_per_cycle"], settings["credit_factor"], settings["cycle_cadence"]) == (
        "0",
        "0",
        "month",
    )
    assert await audit(db, o.account.id) == []


async def test_credits_per_cycle_cannot_go_below_the_group_budgets(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    cycle = await cycle_now(db, o)
    eng = await new_group(client, o, "Engineering")
    ops = await new_group(client, o, "Operations")
    assert (await patch(client, o, {"credits_per_cycle": 20000})).status_code == 200
    # 5,000 + 2,000 extra this cycle + 5,000; the 900 extra of an earlier cycle do not count.
    await budget(db, o, o.default_group_id, monthly="5000", extra="2000", cycle=cycle)
    await budget(db, o, eng, monthly="5000", cycle=None)
    await budget(db, o, ops, monthly="0", extra="900", cycle=None)

    response = await patch(client, o, {"credits_per_cycle": "10000", "signup_credits": 5})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "credits_below_group_budgets"
    assert error["message"] == (
        "Group budgets total 12,000 credits; credits per cycle cannot be less (short by 2,000)."
    )
    assert error["details"][0]["field"] == "credits_per_cycle"
    settings = (await client.get(f"{API}/credits/settings", headers=o.headers)).json()
    assert (settings["credits_per_cycle"], settings["signup_credits"]) == ("20000", "0")
    short = await patch(client, o, {"credits_per_cycle": "11999.5"})
    assert short.json()["error"]["message"].endswith("(short by 0.5).")
    # Exactly the budgets is fine.
    assert (await patch(client, o, {"credits_per_cycle": "12000"})).json()["credits_per_cycle"] == "12000"


async def test_a_new_cadence_starts_a_fresh_cycle_now(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    first = await cycle_now(db, o)
    await spend(db, o, first, o.member, o.default_group_id, "40")
    before = utcnow()

    response = await patch(client, o, {"cycle_cadence": "week", "credits_per_cycle": 500})

    assert response.status_code == 200, response.text
    body = response.json()
    cycle = body["current_cycle"]
    assert (body["cycle_cadence"], cycle["seq"], cycle["cadence"]) == ("week", 2, "week")
    starts, ends = when(cycle["starts_at"]), when(cycle["ends_at"])
    assert before <= starts <= utcnow()
    # UTC account: the cycle ends on the next Monday at 00:00.
    assert ends.weekday() == 0
    assert (ends.hour, ends.minute, ends.second) == (0, 0, 0)
    assert timedelta(0) < ends - starts <= timedelta(days=7)
    old, new = await cycles_in_db(db, o.account.id)
    assert old.closed_at == starts
    assert old.ends_at == starts
    assert (new.started_by, new.credits_per_cycle) == ("cadence_changed", Decimal(500))
    assert old.credits_per_cycle == Decimal(0)  # the new limit belongs to the new cycle
    # Used credits count from zero in the new cycle.
    overview = (await client.get(f"{API}/credits/overview", headers=o.headers)).json()
    assert (overview["account"]["used"], overview["cycle"]["seq"]) == ("0", 2)
    [entry] = await audit(db, o.account.id)
    assert entry.before == {"cycle_cadence": "month", "credits_per_cycle": "0"}
    assert entry.after == {"cycle_cadence": "week", "credits_per_cycle": "500"}
    # Choosing the same cadence again changes nothing.
    assert (await patch(client, o, {"cycle_cadence": "week"})).json()["current_cycle"]["seq"] == 2


async def test_a_new_limit_keeps_the_credits_used_this_cycle(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    cycle = await cycle_now(db, o)
    await patch(client, o, {"credits_per_cycle": 1000})
    await spend(db, o, cycle, o.member, o.default_group_id, "250.25")

    assert (await patch(client, o, {"credits_per_cycle": 2000})).status_code == 200

    account = (await client.get(f"{API}/credits/overview", headers=o.headers)).json()["account"]
    assert (account["limit"], account["used"], account["available"], account["usage_percent"]) == (
        "2000",
        "250.25",
        "1749.75",
        "12.5",
    )
    assert [c.seq for c in await cycles_in_db(db, o.account.id)] == [1]


async def test_members_cannot_read_or_change_settings_or_cycles(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    h = o.member_headers
    assert (await client.get(f"{API}/credits/settings", headers=h)).status_code == 403
    assert (
        await client.patch(f"{API}/credits/settings", json={"credit_factor": 1}, headers=h)
    ).status_code == 403
    assert (await client.post(f"{API}/credits/cycle/reset", headers=h)).status_code == 403
    assert (await client.get(f"{API}/credits/cycles", headers=h)).status_code == 403
    assert (await client.get(f"{API}/credits/settings")).status_code == 401
    admin = await make_user(db, o.account, role=UserRole.admin)
    admin_headers = bearer(await make_token(db, admin))
    assert (
        await client.patch(f"{API}/credits/settings", json={"credit_factor": 1}, headers=admin_headers)
    ).status_code == 200


# ---- cycles ----


async def test_reset_starts_a_fresh_cycle_and_is_audited(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    first = await cycle_now(db, o)
    await spend(db, o, first, o.member, o.default_group_id, "12.5")

    response = await client.post(f"{API}/credits/cycle/reset", headers=o.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["seq"], body["cadence"]) == (2, "month")
    starts = when(body["starts_at"])
    assert starts <= utcnow()
    assert when(body["ends_at"]) == first.ends_at  # the next calendar boundary
    old, new = await cycles_in_db(db, o.account.id)
    assert (old.closed_at, old.ends_at) == (starts, starts)
    assert (str(new.id), new.started_by) == (body["id"], "reset")
    [entry] = await audit(db, o.account.id)
    assert (entry.action, entry.target_id) == ("credits.cycle_reset", body["id"])
    assert (entry.before or {})["seq"] == 1
    assert (entry.after or {})["seq"] == 2
    overview = (await client.get(f"{API}/credits/overview", headers=o.headers)).json()
    assert overview["account"]["used"] == "0"


async def test_cycles_are_listed_newest_first_with_their_usage(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    await patch(client, o, {"credits_per_cycle": 300})
    first = await cycle_now(db, o)
    await spend(db, o, first, o.member, o.default_group_id, "10.5")
    await spend(db, o, first, o.owner, o.default_group_id, "4")
    await client.post(f"{API}/credits/cycle/reset", headers=o.headers)
    second = await cycle_now(db, o)
    await spend(db, o, second, o.member, o.default_group_id, "1.25")
    await patch(client, o, {"credits_per_cycle": 400})
    await client.post(f"{API}/credits/cycle/reset", headers=o.headers)
    await patch(client, o, {"cycle_cadence": "day"})

    response = await client.get(f"{API}/credits/cycles", params={"per_page": 3}, headers=o.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"] == {"page": 1, "per_page": 3, "total": 4, "pages": 2}
    rows = [
        (c["seq"], c["started_by"], c["cadence"], c["credits_per_cycle"], c["used"]) for c in body["items"]
    ]
    assert rows == [
        (4, "cadence_changed", "day", "400", "0"),
        (3, "reset", "month", "400", "0"),
        (2, "reset", "month", "400", "1.25"),
    ]
    assert body["items"][0]["closed_at"] is None
    assert body["items"][1]["closed_at"] is not None
    page2 = (
        await client.get(f"{API}/credits/cycles", params={"page": 2, "per_page": 3}, headers=o.headers)
    ).json()
    [oldest] = page2["items"]
    assert (oldest["seq"], oldest["started_by"], oldest["credits_per_cycle"], oldest["used"]) == (
        1,
        "initial",
        "300",
        "14.5",
    )
    assert oldest["closed_at"] == oldest["ends_at"]


async def test_concurrent_resets_and_edits_are_applied_one_after_the_other(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    await cycle_now(db, o)

    responses = await asyncio.gather(
        client.post(f"{API}/credits/cycle/reset", headers=o.headers),
        client.post(f"{API}/credits/cycle/reset", headers=o.headers),
        patch(client, o, {"cycle_cadence": "hour"}),
        patch(client, o, {"credits_per_cycle": 700}),
    )

    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    cycles = await cycles_in_db(db, o.account.id)
    assert [c.seq for c in cycles] == [1, 2, 3, 4]
    assert [c.closed_at is None for c in cycles] == [False, False, False, True]
    assert cycles[-1].credits_per_cycle == Decimal(700)
    assert len(await audit(db, o.account.id)) == 4


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
