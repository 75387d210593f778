"""Gateway content storage: whether inputs/outputs are kept, and for how many days (API and console)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import bearer, console_login, csrf_for, make_account, make_token, make_user


async def _stored(db: AsyncSession, account_id: uuid.UUID) -> tuple[bool, int]:
    db.expire_all()
    account = await db.get(Account, account_id)
    assert account is not None
    result = (account.store_request_content, account.content_retention_days)
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


async def _person(db: AsyncSession, role: UserRole) -> tuple[uuid.UUID, User, str]:
    account, owner = await make_account(db, name="Acme")
    user = owner if role is UserRole.owner else await make_user(db, account, role=role)
    return account.id, user, await make_token(db, user)


# ---- the REST API ----


async def test_the_settings_are_off_and_30_days_by_default(db: AsyncSession, client: AsyncClient) -> None:
    _, _, token = await _person(db, UserRole.member)

    body = (await client.get("/api/v1/account", headers=bearer(token))).json()

    assert (body["store_request_content"], body["content_retention_days"]) == (False, 30)


@pytest.mark.parametrize("role", [UserRole.owner, UserRole.admin])
async def test_an_administrator_turns_storage_on_and_sets_the_period(
    db: AsyncSession, client: AsyncClient, role: UserRole
) -> None:
    account_id, user, token = await _person(db, role)
    user_id = user.id

    response = await client.patch(
        "/api/v1/account",
        json={"store_request_content": True, "content_retention_days": 7},
        headers=bearer(token),
    )

    assert response.status_code == 200, response.text
    assert (response.json()["store_request_content"], response.json()["content_retention_days"]) == (True, 7)
    assert await _stored(db, account_id) == (True, 7)
    body = (await client.get("/api/v1/account", headers=bearer(token))).json()
    assert (body["store_request_content"], body["content_retention_days"]) == (True, 7)
    [entry] = await _updates(db, account_id)
    assert entry.before == {"store_request_content": False, "content_retention_days": 30}
    assert entry.after == {"store_request_content": True, "content_retention_days": 7}
    assert entry.actor_id == user_id


async def test_the_limits_of_the_period_are_accepted(db: AsyncSession, client: AsyncClient) -> None:
    account_id, _, token = await _person(db, UserRole.owner)

    for days in (1, 3650):
        response = await client.patch(
            "/api/v1/account", json={"content_retention_days": days}, headers=bearer(token)
        )
        assert response.status_code == 200, response.text
        assert await _stored(db, account_id) == (False, days)
    entries = await _updates(db, account_id)
    assert [(e.before, e.after) for e in entries] == [
        ({"content_retention_days": 30}, {"content_retention_days": 1}),
        ({"content_retention_days": 1}, {"content_retention_days": 3650}),
    ]


async def test_turning_storage_off_is_recorded_alone(db: AsyncSession, client: AsyncClient) -> None:
    account_id, _, token = await _person(db, UserRole.owner)
    await client.patch("/api/v1/account", json={"store_request_content": True}, headers=bearer(token))

    response = await client.patch(
        "/api/v1/account",
        json={"store_request_content": False, "content_retention_days": 30},
        headers=bearer(token),
    )

    assert response.status_code == 200
    assert await _stored(db, account_id) == (False, 30)
    entries = await _updates(db, account_id)
    assert [(e.before, e.after) for e in entries] == [
        ({"store_request_content": False}, {"store_request_content": True}),
        ({"store_request_content": True}, {"store_request_content": False}),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"content_retention_days": 0},
        {"content_retention_days": -1},
        {"content_retention_days": 5000},
        {"content_retention_days": 3651},
        {"content_retention_days": 2.5},
        {"content_retention_days": "30"},
        {"content_retention_days": True},
        {"content_retention_days": None, "store_request_content": "yes"},
        {"store_request_content": True, "content_retention_days": 0},
    ],
)
async def test_invalid_values_name_the_field_and_change_nothing(
    db: AsyncSession, client: AsyncClient, body: dict[str, Any]
) -> None:
    account_id, _, token = await _person(db, UserRole.owner)

    response = await client.patch("/api/v1/account", json=body, headers=bearer(token))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    bad = next(
        k for k, v in body.items() if v is not None and not (k == "store_request_content" and v is True)
    )
    assert bad in {d["field"] for d in error["details"]}
    assert bad in error["message"]
    assert await _stored(db, account_id) == (False, 30)
    assert await _updates(db, account_id) == []


async def test_a_member_cannot_change_the_settings(db: AsyncSession, client: AsyncClient) -> None:
    account_id, _, token = await _person(db, UserRole.member)

    response = await client.patch(
        "/api/v1/account",
        json={"store_request_content": True, "content_retention_days": 365},
        headers=bearer(token),
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_permitted"
    assert await _stored(db, account_id) == (False, 30)
    assert await _updates(db, account_id) == []


# ---- the console page ----


async def _signed_in(db: AsyncSession, client: AsyncClient, role: UserRole) -> uuid.UUID:
    account_id, user, _ = await _person(db, role)
    login = await console_login(client, user.email)
    assert login.status_code == 303, login.text
    return account_id


async def test_the_page_explains_what_is_kept_and_for_how_long(db: AsyncSession, client: AsyncClient) -> None:
    await _signed_in(db, client, UserRole.admin)

    page = await client.get("/account")

    assert page.status_code == 200
    assert "Store request inputs and outputs" in page.text
    assert "for 30 days and then erased" in page.text
    assert "personal data" in page.text
    assert 'name="content_retention_days" min="1" max="3650"' in page.text
    assert 'name="store_request_content" value="true">' in page.text  # not ticked


async def test_an_admin_saves_the_retention_form(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _signed_in(db, client, UserRole.admin)
    csrf = await csrf_for(client, "/account")

    response = await client.post(
        "/account/content",
        data={"store_request_content": "true", "content_retention_days": "90", "csrf_token": csrf},
        follow_redirects=True,
    )

    assert response.status_code == 200
    assert str(response.url).endswith("/account")
    assert "Data retention settings saved." in response.text
    assert 'name="store_request_content" value="true" checked>' in response.text
    assert 'value="90"' in response.text
    assert "for 90 days and then erased" in response.text
    assert await _stored(db, account_id) == (True, 90)
    [entry] = await _updates(db, account_id)
    assert entry.actor_kind == "user"
    assert entry.after == {"store_request_content": True, "content_retention_days": 90}

    # Unticking the box (the browser then sends nothing for it) turns storage off.
    csrf = await csrf_for(client, "/account")
    response = await client.post(
        "/account/content", data={"content_retention_days": "90", "csrf_token": csrf}, follow_redirects=True
    )
    assert response.status_code == 200
    assert await _stored(db, account_id) == (False, 90)


@pytest.mark.parametrize("typed", ["0", "5000", "2.5", "thirty", "", "-3"])
async def test_a_bad_period_in_the_form_rerenders_with_the_error(
    db: AsyncSession, client: AsyncClient, typed: str
) -> None:
    account_id = await _signed_in(db, client, UserRole.owner)
    csrf = await csrf_for(client, "/account")

    response = await client.post(
        "/account/content",
        data={"store_request_content": "true", "content_retention_days": typed, "csrf_token": csrf},
    )

    assert response.status_code == 422
    assert "The retention period (content_retention_days) must be a whole number of days from 1 to 3650." in (
        response.text
    )
    assert (
        f'name="content_retention_days" min="1" max="3650" step="1" required value="{typed}"' in response.text
    )
    assert 'name="store_request_content" value="true" checked>' in response.text  # kept for correction
    assert await _stored(db, account_id) == (False, 30)
    assert await _updates(db, account_id) == []


async def test_the_retention_form_needs_its_csrf_token(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _signed_in(db, client, UserRole.owner)

    response = await client.post(
        "/account/content", data={"store_request_content": "true", "content_retention_days": "7"}
    )

    assert response.status_code == 403
    assert await _stored(db, account_id) == (False, 30)


async def test_a_member_sees_the_retention_form_disabled_and_cannot_post(
    db: AsyncSession, client: AsyncClient
) -> None:
    account_id = await _signed_in(db, client, UserRole.member)

    page = await client.get("/account")

    assert 'name="store_request_content" value="true" disabled>' in page.text
    assert 'required value="30" disabled>' in page.text
    assert "Save data retention" not in page.text
    assert "Only account administrators can change data retention." in page.text

    response = await client.post(
        "/account/content",
        data={
            "store_request_content": "true",
            "content_retention_days": "7",
            "csrf_token": await csrf_for(client, "/account"),
        },
    )

    assert response.status_code == 403
    assert await _stored(db, account_id) == (False, 30)
    assert await _updates(db, account_id) == []


async def test_an_admin_saves_custom_instructions(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _signed_in(db, client, UserRole.admin)
    csrf = await csrf_for(client, "/account")
    text = 'We are <b>Acme</b> & "friends". Answer briefly.'
    response = await client.post(
        "/account/instructions", data={"custom_instructions": text, "csrf_token": csrf}, follow_redirects=True
    )
    assert response.status_code == 200
    assert "Custom instructions saved." in response.text
    assert (
        "We are &lt;b&gt;Acme&lt;/b&gt; &amp; &#34;friends&#34;. Answer briefly.</textarea>" in response.text
    )
    stored = await db.get(Account, account_id, populate_existing=True)
    assert stored is not None
    assert stored.custom_instructions == text
    await db.commit()

    too_long = await client.post(
        "/account/instructions",
        data={"custom_instructions": "x" * 20_001, "csrf_token": await csrf_for(client, "/account")},
    )
    assert too_long.status_code == 422
    assert "at most 20000 characters" in too_long.text
