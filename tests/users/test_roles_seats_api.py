"""The people REST API: role changes, deactivation and reactivation, and /api/v1/seats.

Every change is audited and a failed request writes nothing; concurrent changes leave one owner
and one seat.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.kit.errors import Conflict
from cockpit.membership import service as membership
from cockpit.users.models import UserRole, UserStatus
from tests.builders import console_login
from tests.users.people import (
    API,
    SESSION,
    active_owners,
    audit_actions,
    audit_entries,
    browser,
    code,
    console_works,
    emails,
    get_user,
    org,
    person,
    seat_table,
    set_limits,
    token_of,
)

# ---- roles ----


@pytest.mark.parametrize("role", [UserRole.owner, UserRole.admin])
async def test_nobody_changes_their_own_role(client: AsyncClient, db: AsyncSession, role: UserRole) -> None:
    o = await org(db)
    me = o.owner if role is UserRole.owner else await person(db, o.account, role=role)
    headers = o.headers if role is UserRole.owner else await token_of(db, me)
    before = await audit_actions(db, o.id)

    response = await client.patch(f"{API}/users/{me.id}", json={"role": "member"}, headers=headers)

    assert response.status_code == 403
    assert code(response) == "own_role"
    assert (await get_user(client, o.headers, me.id))["role"] == role.value
    assert await audit_actions(db, o.id) == before


async def test_only_an_owner_grants_or_removes_the_owner_role(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    admin = await person(db, o.account, role=UserRole.admin)
    admin_headers = await token_of(db, admin)
    member = await person(db, o.account)
    second_owner = await person(db, o.account, role=UserRole.owner)
    before = await audit_actions(db, o.id)

    grant = await client.patch(f"{API}/users/{member.id}", json={"role": "owner"}, headers=admin_headers)
    remove = await client.patch(
        f"{API}/users/{second_owner.id}", json={"role": "admin"}, headers=admin_headers
    )

    assert (grant.status_code, code(grant)) == (403, "owner_role_restricted")
    assert (remove.status_code, code(remove)) == (403, "owner_role_restricted")
    assert (await get_user(client, o.headers, member.id))["role"] == "member"
    assert (await get_user(client, o.headers, second_owner.id))["role"] == "owner"
    assert await audit_actions(db, o.id) == before


async def test_an_owner_grants_owner_and_the_new_owner_can_demote_the_first(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    member = await person(db, o.account)
    member_headers = await token_of(db, member)

    granted = await client.patch(f"{API}/users/{member.id}", json={"role": "owner"}, headers=o.headers)
    assert granted.status_code == 200
    assert granted.json()["role"] == "owner"

    demoted = await client.patch(f"{API}/users/{o.owner.id}", json={"role": "admin"}, headers=member_headers)
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "admin"

    entries = await audit_entries(db, o.id, "user.role_changed")
    assert [(e.target_id, e.actor_id, e.before, e.after) for e in entries] == [
        (str(member.id), o.owner.id, {"role": "member"}, {"role": "owner"}),
        (str(o.owner.id), member.id, {"role": "owner"}, {"role": "admin"}),
    ]
    assert await active_owners(db, o.id) == 1


async def test_admin_promotes_a_member_to_admin(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    admin = await person(db, o.account, role=UserRole.admin)
    admin_headers = await token_of(db, admin)
    member = await person(db, o.account)
    member_headers = await token_of(db, member)
    assert (await client.get(f"{API}/users", headers=member_headers)).status_code == 403

    response = await client.patch(f"{API}/users/{member.id}", json={"role": "admin"}, headers=admin_headers)

    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    # The promotion takes effect at once for the promoted user's existing token.
    assert (await client.get(f"{API}/users", headers=member_headers)).status_code == 200
    [entry] = await audit_entries(db, o.id, "user.role_changed")
    assert (entry.actor_id, entry.target_id) == (admin.id, str(member.id))
    assert (entry.before, entry.after) == ({"role": "member"}, {"role": "admin"})


async def test_the_last_owner_keeps_the_owner_role(db: AsyncSession) -> None:
    """Through the API the caller is always another active owner; the CLI (a system actor) is not."""
    o = await org(db)
    account_id, owner_id = o.id, o.owner.id  # the rollbacks below expire the loaded objects
    system = Actor.system(account_id, "tests")

    with pytest.raises(Conflict) as demote:
        await membership.change_user(db, system, owner_id, role=UserRole.admin)
    await db.rollback()
    with pytest.raises(Conflict) as deactivate:
        await membership.deactivate_user(db, system, owner_id)
    await db.rollback()

    assert demote.value.code == "last_owner"
    assert deactivate.value.code == "last_owner"
    assert await active_owners(db, account_id) == 1


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    second = await person(db, o.account, role=UserRole.owner)
    second_headers = await token_of(db, second)

    first_call, second_call = await asyncio.gather(
        client.patch(f"{API}/users/{second.id}", json={"role": "admin"}, headers=o.headers),
        client.patch(f"{API}/users/{o.owner.id}", json={"role": "admin"}, headers=second_headers),
    )

    statuses = sorted([first_call.status_code, second_call.status_code])
    assert await active_owners(db, o.id) == 1, f"responses {statuses}"
    assert statuses in ([200, 403], [200, 409])


# ---- deactivation and reactivation ----


async def test_deactivation_cuts_token_and_console_access_frees_seats_and_keeps_the_data(
    app: Any, client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    member = await person(db, o.account, name="Mia", seats=["copilot", "console"])
    member_headers = await token_of(db, member)
    async with browser(app) as member_browser:
        assert (await console_login(member_browser, member.email)).status_code == 303
        assert await console_works(member_browser)
        assert (await client.get(f"{API}/account", headers=member_headers)).status_code == 200
        before = await seat_table(client, o.headers)
        assert (before["copilot"]["used"], before["console"]["used"]) == (1, 2)

        response = await client.post(f"{API}/users/{member.id}/deactivate", headers=o.headers)

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "deactivated"
        assert body["deactivated_at"] is not None
        refused = await client.get(f"{API}/account", headers=member_headers)
        assert refused.status_code == 401
        assert code(refused) == "invalid_token"
        assert not await console_works(member_browser)

    async with browser(app) as fresh_browser:
        again = await console_login(fresh_browser, member.email)
        assert again.status_code == 401  # as for a wrong password (tests/auth/test_sessions.py)
        assert SESSION not in fresh_browser.cookies

    after = await seat_table(client, o.headers)
    assert (after["copilot"]["used"], after["console"]["used"]) == (0, 1)
    assert (after["copilot"]["available"], after["console"]["available"]) == (25, 24)
    kept = await get_user(client, o.headers, member.id)
    assert (kept["email"], kept["name"], kept["status"]) == (member.email, "Mia", "deactivated")
    assert await emails(client, o.headers, status="deactivated") == [member.email]
    [entry] = await audit_entries(db, o.id, "user.deactivated")
    assert (entry.actor_id, entry.target_id) == (o.owner.id, str(member.id))
    assert set(entry.after["seats_freed"]) == {"copilot", "console"}


async def test_reactivation_restores_the_token_and_retakes_the_seats(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    member = await person(db, o.account, seats=["copilot"])
    member_headers = await token_of(db, member)
    assert (await client.post(f"{API}/users/{member.id}/deactivate", headers=o.headers)).status_code == 200
    assert (await seat_table(client, o.headers))["copilot"]["used"] == 0

    response = await client.post(f"{API}/users/{member.id}/reactivate", headers=o.headers)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["deactivated_at"]) == ("active", None)
    assert body["seats"] == ["copilot"]
    assert body["seats_not_available"] == []
    assert (await client.get(f"{API}/account", headers=member_headers)).status_code == 200
    assert (await seat_table(client, o.headers))["copilot"]["used"] == 1
    [entry] = await audit_entries(db, o.id, "user.reactivated")
    assert entry.target_id == str(member.id)
    assert entry.after == {"status": "active", "seats": ["copilot"], "seats_not_available": []}


async def test_reactivation_reports_seats_filled_in_the_meantime(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)  # the owner holds a console seat
    member = await person(db, o.account, seats=["copilot", "console"])
    newcomer = await person(db, o.account)
    assert (await client.post(f"{API}/users/{member.id}/deactivate", headers=o.headers)).status_code == 200
    taken = await client.patch(f"{API}/users/{newcomer.id}", json={"seats": ["console"]}, headers=o.headers)
    assert taken.status_code == 200
    await set_limits(client, o.headers, console=2)

    response = await client.post(f"{API}/users/{member.id}/reactivate", headers=o.headers)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "active"
    assert body["seats_not_available"] == ["console"]
    assert body["seats"] == ["copilot"]
    seats = await seat_table(client, o.headers)
    assert (seats["console"]["used"], seats["console"]["limit"]) == (2, 2)
    assert seats["copilot"]["used"] == 1
    assert (await get_user(client, o.headers, member.id))["seats"] == ["copilot"]


async def test_deactivation_and_reactivation_refusals_change_nothing(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    admin = await person(db, o.account, role=UserRole.admin)
    admin_headers = await token_of(db, admin)
    second_owner = await person(db, o.account, role=UserRole.owner)
    active = await person(db, o.account)
    gone = await person(db, o.account, status=UserStatus.deactivated)
    before = await audit_actions(db, o.id)

    cases = {
        "self": await client.post(f"{API}/users/{admin.id}/deactivate", headers=admin_headers),
        "owner_by_admin": await client.post(
            f"{API}/users/{second_owner.id}/deactivate", headers=admin_headers
        ),
        "twice": await client.post(f"{API}/users/{gone.id}/deactivate", headers=o.headers),
        "active": await client.post(f"{API}/users/{active.id}/reactivate", headers=o.headers),
        "unknown": await client.post(f"{API}/users/{uuid.uuid4()}/deactivate", headers=o.headers),
    }

    assert {k: (r.status_code, code(r)) for k, r in cases.items()} == {
        "self": (403, "own_account"),
        "owner_by_admin": (403, "owner_role_restricted"),
        "twice": (409, "already_deactivated"),
        "active": (409, "already_active"),
        "unknown": (404, "user_not_found"),
    }
    assert (await get_user(client, o.headers, second_owner.id))["status"] == "active"
    assert (await get_user(client, o.headers, admin.id))["status"] == "active"
    assert await audit_actions(db, o.id) == before


# ---- seats ----


async def test_seats_show_limit_used_reserved_and_available(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)  # the owner holds a console seat
    await person(db, o.account, seats=["copilot", "compute"])
    await person(db, o.account, seats=["copilot"], status=UserStatus.deactivated)

    response = await client.get(f"{API}/seats", headers=o.headers)

    assert response.status_code == 200
    assert response.json()["items"] == [
        {"product": "copilot", "limit": 25, "used": 1, "reserved": 0, "available": 24},
        {"product": "console", "limit": 25, "used": 1, "reserved": 0, "available": 24},
        {"product": "compute", "limit": 25, "used": 1, "reserved": 0, "available": 24},
    ]


async def test_seat_changes_are_applied_and_audited(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    member = await person(db, o.account, seats=["copilot"])

    response = await client.patch(
        f"{API}/users/{member.id}", json={"seats": ["console", "compute"]}, headers=o.headers
    )

    assert response.status_code == 200
    assert response.json()["seats"] == ["console", "compute"]
    seats = await seat_table(client, o.headers)
    assert [seats[p]["used"] for p in ("copilot", "console", "compute")] == [0, 2, 1]
    [entry] = await audit_entries(db, o.id, "user.seats_changed")
    assert entry.target_id == str(member.id)
    assert (entry.before, entry.after) == ({"seats": ["copilot"]}, {"seats": ["console", "compute"]})


async def test_a_seat_beyond_the_limit_is_refused_and_nothing_changes(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    await person(db, o.account, seats=["copilot"])
    bob = await person(db, o.account, name="Bob")
    await set_limits(client, o.headers, copilot=1)
    before = await audit_actions(db, o.id)

    response = await client.patch(
        f"{API}/users/{bob.id}", json={"name": "Robert", "seats": ["copilot"]}, headers=o.headers
    )

    assert response.status_code == 409
    assert code(response) == "seat_limit_reached"
    unchanged = await get_user(client, o.headers, bob.id)
    assert (unchanged["name"], unchanged["seats"]) == ("Bob", [])
    assert (await seat_table(client, o.headers))["copilot"]["used"] == 1
    assert await audit_actions(db, o.id) == before


async def test_two_users_taking_the_last_seat_at_once_get_one_seat(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    first = await person(db, o.account)
    second = await person(db, o.account)
    await set_limits(client, o.headers, copilot=1)

    responses = await asyncio.gather(
        client.patch(f"{API}/users/{first.id}", json={"seats": ["copilot"]}, headers=o.headers),
        client.patch(f"{API}/users/{second.id}", json={"seats": ["copilot"]}, headers=o.headers),
    )

    seats = await seat_table(client, o.headers)
    assert seats["copilot"]["used"] == 1, f"responses {[r.status_code for r in responses]}"
    assert sorted(r.status_code for r in responses) == [200, 409]


async def test_seat_limits_change_but_never_below_usage(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)  # the owner holds a console seat
    await person(db, o.account, seats=["console"])
    before = await audit_actions(db, o.id)

    below = await client.patch(f"{API}/seats", json={"copilot": 5, "console": 1}, headers=o.headers)

    assert below.status_code == 409
    assert code(below) == "seat_limit_below_usage"
    seats = await seat_table(client, o.headers)
    assert (seats["copilot"]["limit"], seats["console"]["limit"]) == (25, 25)
    assert await audit_actions(db, o.id) == before

    ok = await client.patch(f"{API}/seats", json={"console": 2, "compute": 0}, headers=o.headers)

    assert ok.status_code == 200
    items = {i["product"]: i for i in ok.json()["items"]}
    assert (items["console"]["limit"], items["console"]["available"]) == (2, 0)
    assert (items["compute"]["limit"], items["copilot"]["limit"]) == (0, 25)
    [entry] = await audit_entries(db, o.id, "seats.limits_changed")
    assert (entry.before, entry.after) == ({"console": 25, "compute": 25}, {"console": 2, "compute": 0})


async def test_negative_seat_limits_are_invalid(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)

    response = await client.patch(f"{API}/seats", json={"copilot": -1}, headers=o.headers)

    assert response.status_code == 422
    assert (await seat_table(client, o.headers))["copilot"]["limit"] == 25
