"""The REST API: my notifications and mutes, the account's templates."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.kit.errors import InvalidInput
from cockpit.notifications import service
from cockpit.notifications.models import Channel
from cockpit.users.models import UserRole
from tests.builders import bearer, make_account, make_token, make_user
from tests.notifications.conftest import emit_event, run_jobs

API = "/api/v1"
T = f"{API}/notification-templates"
REQUEST = {"person_name": "Mia Member", "person_email": "mia@example.com", "amount": "500", "reason": "demo"}


async def test_my_notifications_unread_count_and_mark_read(
    app: Any, settings: Settings, db: AsyncSession, client: AsyncClient
) -> None:
    account, owner = await make_account(db)
    headers = bearer(await make_token(db, owner))
    _other, other_owner = await make_account(db, name="Other")
    other_headers = bearer(await make_token(db, other_owner))
    for amount in ("1", "2", "3"):
        await emit_event(db, account.id, "credit_request.created", {**REQUEST, "amount": amount})
    await run_jobs(app, settings)

    listed = (await client.get(f"{API}/notifications", headers=headers)).json()
    assert listed["unread_count"] == 3
    assert listed["meta"]["total"] == 3
    first = listed["items"][0]["id"]
    assert (await client.get(f"{API}/notifications", headers=other_headers)).json()["items"] == []
    # another account's person cannot mark mine read
    marked = await client.post(f"{API}/notifications/read", json={"ids": [first]}, headers=other_headers)
    assert marked.json()["marked"] == 0

    marked = await client.post(f"{API}/notifications/read", json={"ids": [first]}, headers=headers)
    assert marked.json() == {"marked": 1, "unread_count": 2}
    unread = (await client.get(f"{API}/notifications?unread=true", headers=headers)).json()
    assert first not in [i["id"] for i in unread["items"]]
    assert unread["meta"]["total"] == 2
    assert (await client.post(f"{API}/notifications/read", json={"all": True}, headers=headers)).json() == {
        "marked": 2,
        "unread_count": 0,
    }
    assert (await client.post(f"{API}/notifications/read", json={}, headers=headers)).status_code == 422


async def test_templates_default_custom_reset_and_preview(db: AsyncSession, client: AsyncClient) -> None:
    _, owner = await make_account(db)
    headers = bearer(await make_token(db, owner))
    listed = (await client.get(T, headers=headers)).json()["items"]
    assert len(listed) == 2 * len({i["event"] for i in listed})
    one = next(i for i in listed if i["event"] == "credit_request.created" and i["channel"] == "email")
    assert one["default"] is True
    assert {"amount", "account_name"} <= {v["name"] for v in one["variables"]}

    saved = await client.put(
        f"{T}/credit_request.created/email",
        json={
            "subject": "{{ amount }} asked {{ nope }}",
            "recipients": ["person"],
            "addresses": ["x@example.com"],
        },
        headers=headers,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["default"] is False
    assert saved.json()["warnings"] == ["Unknown variable: nope"]
    got = (await client.get(f"{T}/credit_request.created/email", headers=headers)).json()
    assert got["subject"] == "{{ amount }} asked {{ nope }}"
    assert got["addresses"] == ["x@example.com"]

    preview = await client.post(
        f"{T}/credit_request.created/email/preview",
        json={"subject": "Hi {{ person_name }}", "body": "{{ reason }}"},
        headers=headers,
    )
    assert preview.json()["subject"] == "Hi Ada Lovelace"
    assert preview.json()["body"] == "A customer demo on Friday"
    broken = await client.post(
        f"{T}/credit_request.created/email/preview", json={"subject": "{% if %}"}, headers=headers
    )
    assert broken.json()["error"]
    assert broken.json()["line"] == 1

    reset = await client.post(f"{T}/credit_request.created/email/reset", headers=headers)
    assert reset.json()["default"] is True
    entries = await db.scalars(
        select(AuditEntry.action).where(AuditEntry.action.like("notification_template.%"))
    )
    assert sorted(entries) == ["notification_template.changed", "notification_template.reset"]
    assert (await client.delete(f"{T}/credit_request.created/email", headers=headers)).json()[
        "default"
    ] is True


async def test_invalid_and_hostile_templates_are_refused(db: AsyncSession, client: AsyncClient) -> None:
    _, owner = await make_account(db)
    headers = bearer(await make_token(db, owner))
    url = f"{T}/credit_request.created/in_app"
    syntax = await client.put(url, json={"body": "ok\n{% for %}"}, headers=headers)
    assert syntax.status_code == 422
    assert "line 2" in syntax.json()["error"]["message"]
    macro = await client.put(url, json={"body": "{% macro m() %}{% endmacro %}"}, headers=headers)
    assert macro.status_code == 422
    assert macro.json()["error"]["code"] == "invalid_template"
    # NUL and lone surrogates never reach the route: the API's guard refuses them (400, invalid_text).
    for raw in ('{"body": "a\\u0000b"}', '{"body": "\\ud800"}'):
        response = await client.put(url, content=raw, headers={**headers, "content-type": "application/json"})
        assert response.status_code in (400, 422)
        assert response.json()["error"]["code"] == "invalid_text"
    assert (await client.put(url, json={"recipients": ["everyone"]}, headers=headers)).status_code == 422
    assert (await client.put(url, json={"addresses": ["not an address"]}, headers=headers)).status_code == 422
    assert (await client.get(f"{T}/no.such/in_app", headers=headers)).status_code == 404
    assert (await client.get(f"{T}/credit_request.created/sms", headers=headers)).status_code == 404


async def test_members_cannot_manage_templates_but_manage_their_mutes(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account, role=UserRole.member)
    headers = bearer(await make_token(db, member))
    assert (await client.get(T, headers=headers)).status_code == 403
    prefs = await client.put(
        f"{API}/me/notification-preferences", json={"muted": ["credit_request.approved"]}, headers=headers
    )
    assert prefs.status_code == 200
    assert prefs.json()["muted"] == ["credit_request.approved"]
    assert "budget.threshold_crossed" in prefs.json()["mandatory"]
    refused = await client.put(
        f"{API}/me/notification-preferences", json={"muted": ["budget.threshold_crossed"]}, headers=headers
    )
    assert refused.status_code == 422
    got = await client.get(f"{API}/me/notification-preferences", headers=headers)
    assert got.json()["muted"] == ["credit_request.approved"]


async def test_the_service_refuses_unstorable_text_with_422(db: AsyncSession) -> None:
    _, owner = await make_account(db)
    for body in ("a\u0000b", "x\ud800"):
        with pytest.raises(InvalidInput) as caught:
            await service.save_template(db, Actor.for_user(owner), "cycle.reset", Channel.in_app, body=body)
        assert caught.value.status == 422
        assert caught.value.code == "invalid_text"
