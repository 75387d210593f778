"""The organisation profile: GET/PATCH /api/v1/account and the console page /account."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import bearer, console_login, csrf_for, make_account, make_token, make_user


async def _stored(db: AsyncSession, account_id: uuid.UUID) -> tuple[str, str]:
    db.expire_all()
    account = await db.get(Account, account_id)
    assert account is not None
    result = (account.name, account.timezone)
    await db.commit()
    return result


async def _updates(db: AsyncSession, account_id: uuid.UUID) -> list[AuditEntry]:
    db.expire_all()
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id, AuditEntry.action == "account.updated")
        .order_by(AuditEntry.seq)
    )
    entries = list(rows)
    await db.commit()
    return entries


async def _entry_count(db: AsyncSession, account_id: uuid.UUID) -> int:
    count = await db.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.account_id == account_id)
    )
    await db.commit()
    return int(count or 0)


async def _person(db: AsyncSession, role: UserRole) -> tuple[uuid.UUID, User, str]:
    """An account named Acme in UTC and a user of ``role`` in it with an admin-scope token."""
    account, owner = await make_account(db, name="Acme")
    user = owner if role is UserRole.owner else await make_user(db, account, role=role)
    return account.id, user, await make_token(db, user)


# ---- the REST API ----


@pytest.mark.parametrize("role", [UserRole.owner, UserRole.admin, UserRole.member])
async def test_everyone_can_read_the_profile(db: AsyncSession, client: AsyncClient, role: UserRole) -> None:
    account_id, _, token = await _person(db, role)

    response = await client.get("/api/v1/account", headers=bearer(token))

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["name"], body["timezone"]) == (str(account_id), "Acme", "UTC")
    assert "created_at" in body


@pytest.mark.parametrize("role", [UserRole.owner, UserRole.admin])
async def test_owner_and_admin_rename_and_move_the_organisation(
    db: AsyncSession, client: AsyncClient, role: UserRole
) -> None:
    account_id, user, token = await _person(db, role)
    user_id, email = user.id, user.email

    response = await client.patch(
        "/api/v1/account",
        json={"name": "  Acme Robotics  ", "timezone": "Europe/Paris"},
        headers=bearer(token),
    )

    assert response.status_code == 200
    assert response.json()["name"] == "Acme Robotics"
    assert response.json()["timezone"] == "Europe/Paris"
    assert await _stored(db, account_id) == ("Acme Robotics", "Europe/Paris")
    assert (await client.get("/api/v1/account", headers=bearer(token))).json()["name"] == "Acme Robotics"
    [entry] = await _updates(db, account_id)
    assert entry.before == {"name": "Acme", "timezone": "UTC"}
    assert entry.after == {"name": "Acme Robotics", "timezone": "Europe/Paris"}
    assert (entry.actor_id, entry.actor_label) == (user_id, email)
    assert (entry.target_type, entry.target_id) == ("account", str(account_id))


async def test_only_the_changed_field_is_recorded(db: AsyncSession, client: AsyncClient) -> None:
    account_id, _, token = await _person(db, UserRole.owner)

    response = await client.patch("/api/v1/account", json={"timezone": "Asia/Tokyo"}, headers=bearer(token))

    assert response.status_code == 200
    assert await _stored(db, account_id) == ("Acme", "Asia/Tokyo")
    [entry] = await _updates(db, account_id)
    assert (entry.before, entry.after) == ({"timezone": "UTC"}, {"timezone": "Asia/Tokyo"})


@pytest.mark.parametrize(
    "body",
    [
        {"timezone": "Mars/Olympus_Mons"},
        {"timezone": "../../etc/passwd"},
        {"name": "Should Not Stick", "timezone": "Not/AZone"},
    ],
)
async def test_an_unknown_time_zone_changes_nothing(
    db: AsyncSession, client: AsyncClient, body: dict[str, str]
) -> None:
    account_id, _, token = await _person(db, UserRole.owner)
    entries_before = await _entry_count(db, account_id)

    response = await client.patch("/api/v1/account", json=body, headers=bearer(token))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_timezone"
    assert error["details"] == [{"field": "timezone", "message": "unknown time zone"}]
    assert await _stored(db, account_id) == ("Acme", "UTC")
    assert await _updates(db, account_id) == []
    assert await _entry_count(db, account_id) == entries_before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan": "enterprise"}, "plan"),
        ({"name": "N" * 201}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None, "timezone": ""}, "timezone"),
        ({"name": 42}, "name"),
    ],
)
async def test_invalid_bodies_are_refused(
    db: AsyncSession, client: AsyncClient, body: dict[str, Any], field: str
) -> None:
    account_id, _, token = await _person(db, UserRole.owner)

    response = await client.patch("/api/v1/account", json=body, headers=bearer(token))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in {d["field"] for d in error["details"]}
    assert await _stored(db, account_id) == ("Acme", "UTC")
    assert await _updates(db, account_id) == []


async def test_an_unknown_field_is_named(db: AsyncSession, client: AsyncClient) -> None:
    _, _, token = await _person(db, UserRole.owner)
    response = await client.patch("/api/v1/account", json={"name": "X", "plan": "pro"}, headers=bearer(token))
    assert response.status_code == 422
    assert {"field": "plan", "message": "unknown field"} in response.json()["error"]["details"]


async def test_a_name_of_200_characters_is_accepted(db: AsyncSession, client: AsyncClient) -> None:
    account_id, _, token = await _person(db, UserRole.owner)
    response = await client.patch("/api/v1/account", json={"name": "N" * 200}, headers=bearer(token))
    assert response.status_code == 200
    assert await _stored(db, account_id) == ("N" * 200, "UTC")


async def test_a_member_cannot_change_the_profile(db: AsyncSession, client: AsyncClient) -> None:
    account_id, _, token = await _person(db, UserRole.member)

    response = await client.patch("/api/v1/account", json={"name": "Hijacked"}, headers=bearer(token))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_permitted"
    assert await _stored(db, account_id) == ("Acme", "UTC")
    assert await _updates(db, account_id) == []


async def test_changes_stay_in_the_callers_account(db: AsyncSession, client: AsyncClient) -> None:
    account_id, _, token = await _person(db, UserRole.owner)
    other, _ = await make_account(db, name="Other Org")
    other_id = other.id

    response = await client.patch("/api/v1/account", json={"name": "Mine"}, headers=bearer(token))

    assert response.status_code == 200
    assert await _stored(db, account_id) == ("Mine", "UTC")
    assert await _stored(db, other_id) == ("Other Org", "UTC")


# ---- the console page ----


async def _signed_in(db: AsyncSession, client: AsyncClient, role: UserRole) -> uuid.UUID:
    account_id, user, _ = await _person(db, role)
    login = await console_login(client, user.email)
    assert login.status_code == 303, login.text
    return account_id


async def test_an_admin_saves_the_profile_form(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _signed_in(db, client, UserRole.admin)
    csrf = await csrf_for(client, "/account")

    response = await client.post(
        "/account", data={"name": "Acme Robotics", "timezone": "America/New_York", "csrf_token": csrf},
        follow_redirects=True,
    )  # fmt: skip

    assert response.status_code == 200
    assert str(response.url).endswith("/account")
    assert "Organisation profile saved." in response.text
    assert 'value="Acme Robotics"' in response.text
    assert '<option value="America/New_York" selected>' in response.text
    assert await _stored(db, account_id) == ("Acme Robotics", "America/New_York")
    [entry] = await _updates(db, account_id)
    assert entry.actor_kind == "user"
    assert entry.after == {"name": "Acme Robotics", "timezone": "America/New_York"}
    # The flash is shown once.
    assert "Organisation profile saved." not in (await client.get("/account")).text


async def test_a_bad_time_zone_in_the_form_rerenders_with_the_error(
    db: AsyncSession, client: AsyncClient
) -> None:
    account_id = await _signed_in(db, client, UserRole.owner)
    csrf = await csrf_for(client, "/account")

    response = await client.post(
        "/account", data={"name": "Renamed Anyway", "timezone": "Atlantis/Capital", "csrf_token": csrf}
    )

    assert response.status_code == 422
    assert "is not a known time zone" in response.text
    assert "Atlantis/Capital" in response.text
    assert 'value="Renamed Anyway"' in response.text  # what was typed is kept for correction
    assert await _stored(db, account_id) == ("Acme", "UTC")
    assert await _updates(db, account_id) == []


async def test_the_form_needs_its_csrf_token(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _signed_in(db, client, UserRole.owner)

    response = await client.post("/account", data={"name": "Forged", "timezone": "UTC"})

    assert response.status_code == 403
    assert await _stored(db, account_id) == ("Acme", "UTC")


async def test_a_member_sees_the_form_disabled_and_cannot_post(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _signed_in(db, client, UserRole.member)

    page = await client.get("/account")

    assert page.status_code == 200
    assert 'value="Acme" disabled' in page.text
    assert '<select class="input" name="timezone" disabled>' in page.text
    assert "Save changes" not in page.text
    assert "Only account administrators can change the organisation profile." in page.text

    response = await client.post(
        "/account",
        data={"name": "Member Was Here", "timezone": "UTC", "csrf_token": await csrf_for(client, "/account")},
    )

    assert response.status_code == 403
    assert "Member Was Here" not in response.text
    assert await _stored(db, account_id) == ("Acme", "UTC")
    assert await _updates(db, account_id) == []


async def test_custom_instructions_are_set_audited_and_bounded(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await make_account(db, name="Instructions Co")
    headers = bearer(await make_token(db, owner, scopes=("admin",)))
    text = "We are Instructions Co. Be brief."
    response = await client.patch("/api/v1/account", json={"custom_instructions": text}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["custom_instructions"] == text
    entry = await db.scalar(
        select(AuditEntry).where(AuditEntry.account_id == account.id, AuditEntry.action == "account.updated")
    )
    assert entry is not None
    assert entry.after is not None
    assert entry.after["custom_instructions"] == text
    too_long = await client.patch(
        "/api/v1/account", json={"custom_instructions": "x" * 20_001}, headers=headers
    )
    assert too_long.status_code == 422
    cleared = await client.patch("/api/v1/account", json={"custom_instructions": "  "}, headers=headers)
    assert cleared.json()["custom_instructions"] == ""
