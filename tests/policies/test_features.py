"""Platform features governed by access policies outside the gateway: creating API tokens, asking
for credits, exporting reports (audit trail CSV, statement CSV)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import ApiToken
from cockpit.credits.models import CreditRequest, GroupBudget
from tests.policies.conftest import API, DEFAULTS, POLICIES, add_rule, error_of, make_team

TOKENS = f"{API}/tokens"
CREDIT_REQUESTS = f"{API}/credit-requests"
AUDIT_EXPORT = f"{API}/audit/export"
STATEMENT = f"{API}/credits/statement"


async def count(db: AsyncSession, model: Any, user_id: uuid.UUID) -> int:
    await db.commit()
    return int(await db.scalar(select(func.count()).select_from(model).where(model.user_id == user_id)) or 0)


def refused_by(response: Any, rule_id: str) -> None:
    assert response.status_code == 403, response.text
    error = error_of(response)
    assert error["code"] == "feature_not_allowed"
    assert rule_id in error["message"]
    assert "denied" in error["message"]


async def test_a_denied_user_cannot_create_api_tokens(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    rule = await add_rule(
        client, t.owner_headers, scope="user", scope_id=str(t.member.id), resource_type="feature",
        resource="api_tokens.create", effect="deny",
    )  # fmt: skip
    body = {"name": "laptop", "scopes": ["gateway"]}
    before = await count(db, ApiToken, t.member.id)

    refused_by(await client.post(TOKENS, json=body, headers=t.member_headers), rule["id"])
    assert await count(db, ApiToken, t.member.id) == before
    # Others are not concerned.
    created = await client.post(TOKENS, json=body, headers=t.admin_headers)
    assert created.status_code == 201, created.text

    await client.delete(f"{POLICIES}/{rule['id']}", headers=t.owner_headers)
    allowed = await client.post(TOKENS, json=body, headers=t.member_headers)
    assert allowed.status_code == 201, allowed.text
    assert await count(db, ApiToken, t.member.id) == before + 1


async def test_an_account_rule_applies_to_owners_unless_exempt(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    rule = await add_rule(
        client, t.owner_headers, scope="account", resource_type="feature", resource="api_tokens.create",
        effect="deny",
    )  # fmt: skip
    body = {"name": "ci", "scopes": ["gateway"]}
    refused_by(await client.post(TOKENS, json=body, headers=t.owner_headers), rule["id"])
    refused_by(await client.post(TOKENS, json=body, headers=t.admin_headers), rule["id"])
    await client.patch(DEFAULTS, json={"admins_exempt": True}, headers=t.owner_headers)
    assert (await client.post(TOKENS, json=body, headers=t.owner_headers)).status_code == 201
    assert (await client.post(TOKENS, json=body, headers=t.admin_headers)).status_code == 201
    refused_by(await client.post(TOKENS, json=body, headers=t.member_headers), rule["id"])


async def test_a_features_default_of_deny_refuses_naming_the_default(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    await client.patch(DEFAULTS, json={"feature": "deny"}, headers=t.owner_headers)
    response = await client.post(TOKENS, json={"name": "x", "scopes": ["gateway"]}, headers=t.member_headers)
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "feature_not_allowed"
    assert "default" in error["message"]
    # A rule allowing it at the group level wins over the default.
    await add_rule(
        client, t.owner_headers, scope="group", scope_id=str(t.default_group_id), resource_type="feature",
        resource="api_tokens.create", effect="allow",
    )  # fmt: skip
    again = await client.post(TOKENS, json={"name": "x", "scopes": ["gateway"]}, headers=t.member_headers)
    assert again.status_code == 201, again.text


async def test_a_denied_user_cannot_ask_for_credits(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    db.add(
        GroupBudget(
            group_id=t.default_group_id, account_id=t.account.id, monthly=Decimal(1000), extra=Decimal(0),
            auto_approve_limit=Decimal(0),
        )
    )  # fmt: skip
    await db.commit()
    rule = await add_rule(
        client, t.owner_headers, scope="group", scope_id=str(t.default_group_id), resource_type="feature",
        resource="credit_requests.create", effect="deny",
    )  # fmt: skip
    body = {"amount": "50", "reason": "A big batch job"}

    refused_by(await client.post(CREDIT_REQUESTS, json=body, headers=t.member_headers), rule["id"])
    assert await count(db, CreditRequest, t.member.id) == 0

    await client.delete(f"{POLICIES}/{rule['id']}", headers=t.owner_headers)
    filed = await client.post(CREDIT_REQUESTS, json=body, headers=t.member_headers)
    assert filed.status_code == 201, filed.text
    assert await count(db, CreditRequest, t.member.id) == 1


async def test_exports_are_refused_while_the_json_statement_still_works(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    owner_rule = await add_rule(
        client, t.owner_headers, scope="user", scope_id=str(t.owner.id), resource_type="feature",
        resource="export.reports", effect="deny",
    )  # fmt: skip
    member_rule = await add_rule(
        client, t.owner_headers, scope="user", scope_id=str(t.member.id), resource_type="feature",
        resource="export.reports", effect="deny",
    )  # fmt: skip
    own = {"user_id": str(t.member.id)}

    refused_by(await client.get(AUDIT_EXPORT, headers=t.owner_headers), owner_rule["id"])
    refused_by(
        await client.get(STATEMENT, params={"format": "csv"}, headers=t.owner_headers), owner_rule["id"]
    )
    refused_by(
        await client.get(STATEMENT, params={**own, "format": "csv"}, headers=t.member_headers),
        member_rule["id"],
    )
    for headers in (t.owner_headers, t.member_headers):
        statement = await client.get(STATEMENT, params=own, headers=headers)
        assert statement.status_code == 200, statement.text
        assert statement.json()["user_id"] == str(t.member.id)
    # The admin has no such rule.
    exported = await client.get(AUDIT_EXPORT, headers=t.admin_headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "policy.created" in exported.text

    for rule in (owner_rule, member_rule):
        assert (await client.delete(f"{POLICIES}/{rule['id']}", headers=t.admin_headers)).status_code == 200
    audit_csv = await client.get(AUDIT_EXPORT, headers=t.owner_headers)
    assert audit_csv.status_code == 200
    assert "policy.deleted" in audit_csv.text
    statement_csv = await client.get(STATEMENT, params={**own, "format": "csv"}, headers=t.member_headers)
    assert statement_csv.status_code == 200, statement_csv.text
    assert statement_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in statement_csv.headers["content-disposition"]
