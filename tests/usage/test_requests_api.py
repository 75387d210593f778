"""The request log over the REST API: filters, order, pagination, exact costs and who sees what."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.projects.models import Project
from cockpit.usage.models import UsageRecord
from cockpit.users.models import UserRole
from tests.builders import bearer, make_account, make_token, make_user

NOW = datetime.now(UTC).replace(microsecond=0)


def usage_record(account_id: uuid.UUID, *, minutes_ago: float = 0, **fields: Any) -> UsageRecord:
    """A gateway call as the recorder writes it; every required column set, overridable."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "account_id": account_id,
        "created_at": NOW - timedelta(minutes=minutes_ago),
        "user_id": None,
        "group_id": None,
        "project_id": None,
        "agent_id": None,
        "api_token_id": None,
        "model_id": None,
        "model": "gpt-4o-mini",
        "provider_id": None,
        "provider_kind": "openai",
        "operation": "chat",
        "stream": False,
        "status": "success",
        "error_type": None,
        "error_message": None,
        "http_status": 200,
        "latency_ms": 420,
        "ttft_ms": None,
        "input_tokens": 100,
        "output_tokens": 20,
        "cached_tokens": 0,
        "tokens_estimated": False,
        "cost_usd": Decimal("0.000027"),
        "upstream_id": None,
        "request_content": None,
        "response_content": None,
        "content_expires_at": None,
    }
    values.update(fields)
    return UsageRecord(**values)


@dataclass
class Org:
    account_id: uuid.UUID
    owner_token: str
    admin_id: uuid.UUID
    admin_token: str
    member_id: uuid.UUID
    member_email: str
    member_token: str
    other_member_id: uuid.UUID
    project_id: uuid.UUID


async def _org(db: AsyncSession) -> Org:
    account, owner = await make_account(db, name="Usage Co")
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, email="member@example.com")
    other = await make_user(db, account)
    project = Project(account_id=account.id, name="Search", name_key="search", description="")
    db.add(project)
    await db.commit()
    return Org(
        account.id,
        await make_token(db, owner),
        admin.id,
        await make_token(db, admin),
        member.id,
        member.email,
        await make_token(db, member),
        other.id,
        project.id,
    )


async def _add(db: AsyncSession, *records: UsageRecord) -> list[uuid.UUID]:
    db.add_all(records)
    await db.commit()
    return [r.id for r in records]


async def _list(client: AsyncClient, token: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/usage/requests", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _ids(client: AsyncClient, token: str, **params: Any) -> list[str]:
    return [item["id"] for item in (await _list(client, token, **params))["items"]]


async def test_items_come_newest_first_with_every_field(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    token_id = uuid.uuid4()
    older, newest, middle = await _add(
        db,
        usage_record(org.account_id, minutes_ago=30),
        usage_record(
            org.account_id, minutes_ago=1, user_id=org.member_id, project_id=org.project_id,
            agent_id="support-bot", api_token_id=token_id, stream=True, ttft_ms=85,
            input_tokens=450, output_tokens=0, cached_tokens=128, tokens_estimated=True,
            cost_usd=Decimal("0.000067500000"), upstream_id="chatcmpl-1",
            request_content={"messages": [{"role": "user", "content": "hi"}]},
        ),
        usage_record(org.account_id, minutes_ago=10),
    )  # fmt: skip

    body = await _list(client, org.owner_token)

    assert [i["id"] for i in body["items"]] == [str(newest), str(middle), str(older)]
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 3, "pages": 1}
    item = body["items"][0]
    assert item["cost_usd"] == "0.0000675"
    assert item["user_email"] == "member@example.com"
    assert item["project_name"] == "Search"
    assert item["agent_id"] == "support-bot"
    assert item["api_token_id"] == str(token_id)
    assert (item["stream"], item["ttft_ms"], item["tokens_estimated"]) == (True, 85, True)
    assert (item["input_tokens"], item["output_tokens"], item["cached_tokens"]) == (450, 0, 128)
    assert item["status"] == "success"
    assert item["http_status"] == 200
    # The list leaves the stored content out.
    assert "request_content" not in item
    assert "response_content" not in item
    assert set(item) == {
        "id", "created_at", "model", "model_id", "provider_id", "provider_kind", "operation", "stream",
        "status", "error_type", "error_message", "http_status", "input_tokens", "output_tokens",
        "cached_tokens", "tokens_estimated", "cost_usd", "credits", "latency_ms", "ttft_ms", "user_id",
        "user_email", "group_id", "project_id", "project_name", "agent_id", "api_token_id", "upstream_id",
    }  # fmt: skip
    assert item["credits"] == "0"


async def test_ties_on_time_are_ordered_by_id(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    ids = await _add(db, *(usage_record(org.account_id, minutes_ago=5) for _ in range(4)))

    assert await _ids(client, org.owner_token) == sorted((str(i) for i in ids), reverse=True)


async def test_each_filter_narrows_the_list(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    token_id = uuid.uuid4()
    base, by_model, by_user, by_project, by_agent, by_token, failed, gone, old = await _add(
        db,
        usage_record(org.account_id, minutes_ago=1),
        usage_record(org.account_id, minutes_ago=2, model="claude-sonnet"),
        usage_record(org.account_id, minutes_ago=3, user_id=org.member_id),
        usage_record(org.account_id, minutes_ago=4, project_id=org.project_id),
        usage_record(org.account_id, minutes_ago=5, agent_id="triage"),
        usage_record(org.account_id, minutes_ago=6, api_token_id=token_id),
        usage_record(
            org.account_id, minutes_ago=7, status="error", http_status=502,
            error_type="upstream_error", error_message="Bad gateway",
        ),
        usage_record(org.account_id, minutes_ago=8, status="client_disconnected", http_status=499),
        usage_record(org.account_id, minutes_ago=60 * 24 * 3),
    )  # fmt: skip
    token = org.owner_token

    assert await _ids(client, token, model="claude-sonnet") == [str(by_model)]
    assert await _ids(client, token, user_id=str(org.member_id)) == [str(by_user)]
    assert await _ids(client, token, project_id=str(org.project_id)) == [str(by_project)]
    assert await _ids(client, token, agent_id="triage") == [str(by_agent)]
    assert await _ids(client, token, api_token_id=str(token_id)) == [str(by_token)]
    assert await _ids(client, token, status="error") == [str(failed)]
    assert await _ids(client, token, status="client_disconnected") == [str(gone)]
    assert len(await _ids(client, token, status="success")) == 7
    day_ago = (NOW - timedelta(days=1)).isoformat()
    assert await _ids(client, token, until=day_ago) == [str(old)]
    recent = await _ids(client, token, since=day_ago)
    assert str(old) not in recent
    assert len(recent) == 8
    # since is inclusive, until exclusive
    window = await _ids(
        client, token,
        since=(NOW - timedelta(minutes=3)).isoformat(), until=(NOW - timedelta(minutes=1)).isoformat(),
    )  # fmt: skip
    assert window == [str(by_model), str(by_user)]
    assert await _ids(client, token, model="claude-sonnet", status="error") == []
    assert base  # the unfiltered newest row exists


async def test_pagination_splits_the_log(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    ids = await _add(db, *(usage_record(org.account_id, minutes_ago=i) for i in range(5)))

    first = await _list(client, org.owner_token, per_page=2)
    third = await _list(client, org.owner_token, per_page=2, page=3)

    assert [i["id"] for i in first["items"]] == [str(ids[0]), str(ids[1])]
    assert first["meta"] == {"page": 1, "per_page": 2, "total": 5, "pages": 3}
    assert [i["id"] for i in third["items"]] == [str(ids[4])]
    assert third["meta"]["page"] == 3


async def test_costs_are_exact_decimal_strings(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    await _add(
        db,
        usage_record(org.account_id, minutes_ago=1, cost_usd=Decimal("0.000067500000")),
        usage_record(org.account_id, minutes_ago=2, cost_usd=Decimal("12.345678901234")),
        usage_record(org.account_id, minutes_ago=3, cost_usd=Decimal("3")),
        usage_record(org.account_id, minutes_ago=4, cost_usd=Decimal(0)),
        usage_record(org.account_id, minutes_ago=5, cost_usd=Decimal("0.000000000001")),
    )

    items = (await _list(client, org.owner_token))["items"]

    assert [i["cost_usd"] for i in items] == ["0.0000675", "12.345678901234", "3", "0", "0.000000000001"]


async def test_a_member_sees_only_their_own_calls(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    mine, theirs, nobody = await _add(
        db,
        usage_record(org.account_id, minutes_ago=1, user_id=org.member_id),
        usage_record(org.account_id, minutes_ago=2, user_id=org.other_member_id),
        usage_record(org.account_id, minutes_ago=3),
    )

    assert await _ids(client, org.member_token) == [str(mine)]
    assert await _ids(client, org.member_token, user_id=str(org.member_id)) == [str(mine)]
    # Asking for someone else's calls gives an empty list, not their data.
    other = await _list(client, org.member_token, user_id=str(org.other_member_id))
    assert other["items"] == []
    assert other["meta"]["total"] == 0
    # Detail: one's own call yes, anyone else's is not found.
    assert (
        await client.get(f"/api/v1/usage/requests/{mine}", headers=bearer(org.member_token))
    ).status_code == 200
    for record_id in (theirs, nobody):
        response = await client.get(f"/api/v1/usage/requests/{record_id}", headers=bearer(org.member_token))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "request_not_found"


async def test_admins_see_every_call_of_their_account_only(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    other_account, other_owner = await make_account(db, name="Elsewhere")
    other_token = await make_token(db, other_owner)
    ours = await _add(
        db,
        usage_record(org.account_id, minutes_ago=1, user_id=org.member_id),
        usage_record(org.account_id, minutes_ago=2, user_id=org.other_member_id),
        usage_record(org.account_id, minutes_ago=3),
    )
    [theirs] = await _add(db, usage_record(other_account.id, minutes_ago=0, user_id=other_owner.id))

    assert await _ids(client, org.admin_token) == [str(i) for i in ours]
    assert await _ids(client, org.owner_token) == [str(i) for i in ours]
    assert await _ids(client, other_token) == [str(theirs)]
    # Another account's record is not found, even by its id or its user's id.
    response = await client.get(f"/api/v1/usage/requests/{theirs}", headers=bearer(org.owner_token))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "request_not_found"
    assert await _ids(client, org.owner_token, user_id=str(other_owner.id)) == []


async def test_detail_includes_stored_content(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    expires = NOW + timedelta(days=30)
    stored, bare = await _add(
        db,
        usage_record(
            org.account_id, minutes_ago=1, user_id=org.member_id, cost_usd=Decimal("0.000067500000"),
            request_content={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]},
            response_content="Hi there!", content_expires_at=expires,
        ),
        usage_record(
            org.account_id, minutes_ago=2, status="error", http_status=429, error_type="rate_limited"
        ),
    )  # fmt: skip

    full = (await client.get(f"/api/v1/usage/requests/{stored}", headers=bearer(org.admin_token))).json()
    empty = (await client.get(f"/api/v1/usage/requests/{bare}", headers=bearer(org.admin_token))).json()

    assert full["request_content"] == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hello"}],
    }
    assert full["response_content"] == "Hi there!"
    assert datetime.fromisoformat(full["content_expires_at"]) == expires
    assert full["cost_usd"] == "0.0000675"
    assert full["user_email"] == "member@example.com"
    assert (empty["request_content"], empty["response_content"], empty["content_expires_at"]) == (
        None,
        None,
        None,
    )
    assert (empty["status"], empty["http_status"], empty["error_type"]) == ("error", 429, "rate_limited")


async def test_names_of_deleted_users_and_projects_are_null(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    [record_id] = await _add(
        db, usage_record(org.account_id, user_id=uuid.uuid4(), project_id=uuid.uuid4(), group_id=uuid.uuid4())
    )

    item = (await _list(client, org.owner_token))["items"][0]

    assert item["id"] == str(record_id)
    assert item["user_email"] is None
    assert item["project_name"] is None
    assert item["user_id"] is not None
    assert item["project_id"] is not None


async def test_invalid_filters_name_the_field(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    cases = {
        "status": {"status": "exploded"},
        "user_id": {"user_id": "not-a-uuid"},
        "project_id": {"project_id": "42"},
        "api_token_id": {"api_token_id": "x"},
        "since": {"since": "yesterday"},
        "until": {"until": "2026-11-01T00:00:00"},  # no time zone
        "per_page": {"per_page": 1000},
    }
    for field, params in cases.items():
        response = await client.get("/api/v1/usage/requests", params=params, headers=bearer(org.owner_token))
        assert response.status_code == 422, (field, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        assert [d["field"] for d in error["details"]] == [field], field
    backwards = await client.get(
        "/api/v1/usage/requests",
        params={"since": NOW.isoformat(), "until": (NOW - timedelta(hours=1)).isoformat()},
        headers=bearer(org.owner_token),
    )
    assert backwards.status_code == 422
    assert backwards.json()["error"]["details"][0]["field"] == "since"
    malformed = await client.get("/api/v1/usage/requests/not-an-id", headers=bearer(org.owner_token))
    assert malformed.status_code == 422


async def test_the_api_needs_an_admin_scope_token(db: AsyncSession, client: AsyncClient) -> None:
    _account, owner = await make_account(db)
    gateway_only = await make_token(db, owner, scopes=("gateway",))

    assert (await client.get("/api/v1/usage/requests")).status_code == 401
    refused = await client.get("/api/v1/usage/requests", headers=bearer(gateway_only))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "token_scope_missing"
