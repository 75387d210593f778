"""Credit settings and cycles (/api/v1/credits/settings, /cycle/reset, /cycles); the overview is in
test_overview.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.kit.time import utcnow
from cockpit.users.models import UserRole
from tests.builders import bearer, make_token, make_user
from tests.credits.helpers import (
    API,
    audit,
    budget,
    cycle_now,
    cycles_in_db,
    new_group,
    org,
    patch,
    spend,
    when,
)

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
