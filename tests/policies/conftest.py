"""Access policy fixtures: an account with a small model catalogue and REST helpers; the gateway's
fixtures (an app that can reach a local upstream, an account with providers and models) are
shared with ``tests/gateway`` for the end-to-end suite."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent
from cockpit.audit.models import AuditEntry
from cockpit.authz.actor import Actor
from cockpit.groups.repository import default_group
from cockpit.integrations.models import AuthType, Integration, IntegrationKind, Transport
from cockpit.policies.models import AccessPolicy
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import bearer, make_account, make_token, make_user
from tests.conftest import TEST_SECRET

# The gateway's fixtures, for the suite that compares the gateway with the API.
from tests.gateway.conftest import (  # noqa: F401
    anthropic_upstream,
    gateway_app,
    gateway_settings,
    org,
    upstream,
)

API = "/api/v1"
POLICIES = f"{API}/policies"
DEFAULTS = f"{API}/policies/defaults"
MODELS = ("gpt-4o", "claude", "mini")


@dataclass
class Team:
    account: Account
    owner: User
    owner_headers: dict[str, str]
    admin: User
    admin_headers: dict[str, str]
    member: User
    member_headers: dict[str, str]
    default_group_id: uuid.UUID
    models: dict[str, uuid.UUID]  # name -> id


async def make_team(db: AsyncSession, *, name: str = "Acme") -> Team:
    """An owner, an admin and a member (all in Default, each with an ``admin``-scope token for the
    REST API) and three models of a simulated provider."""
    account, owner = await make_account(db, name=name)
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, role=UserRole.member)
    actor = Actor.system(account.id)
    provider = await providers.create_provider(
        db, actor, name="Simulated", kind=ProviderKind.simulated, secret_key=TEST_SECRET,
        allow_private=True, settings={"latency_ms": 0, "tokens_per_second": 0},
    )  # fmt: skip
    models: dict[str, uuid.UUID] = {}
    for model_name in MODELS:
        model = await providers.create_model(
            db, actor, name=model_name, provider_id=provider.id, upstream_model=model_name,
            input_price_per_million=Decimal(1), output_price_per_million=Decimal(2),
        )  # fmt: skip
        models[model_name] = model.id
    await db.commit()
    group = await default_group(db, account.id)
    return Team(
        account=account,
        owner=owner,
        owner_headers=bearer(await make_token(db, owner)),
        admin=admin,
        admin_headers=bearer(await make_token(db, admin)),
        member=member,
        member_headers=bearer(await make_token(db, member)),
        default_group_id=group.id,
        models=models,
    )


async def add_agent(db: AsyncSession, account_id: uuid.UUID, slug: str, name: str) -> Agent:
    """An agent of the catalogue (the rows an agent rule names), committed."""
    agent = Agent(account_id=account_id, slug=slug, name=name)
    db.add(agent)
    await db.commit()
    return agent


async def add_integration(db: AsyncSession, account_id: uuid.UUID, slug: str, name: str) -> Integration:
    """An integration of the catalogue (the rows an integration rule names), committed."""
    integration = Integration(
        account_id=account_id, slug=slug, name=name, kind=IntegrationKind.mcp,
        transport=Transport.streamable_http, url=f"https://{slug}.example.com/mcp", auth_type=AuthType.none,
    )  # fmt: skip
    db.add(integration)
    await db.commit()
    return integration


async def make_group(client: AsyncClient, headers: dict[str, str], name: str, *members: uuid.UUID) -> str:
    """A group made through the API, with ``members`` moved into it; its id."""
    response = await client.post(f"{API}/groups", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    group_id = str(response.json()["id"])
    if members:
        moved = await client.post(
            f"{API}/groups/{group_id}/members", json={"user_ids": [str(m) for m in members]}, headers=headers
        )
        assert moved.status_code == 200, moved.text
    return group_id


async def post_rule(client: AsyncClient, headers: dict[str, str], **body: Any) -> Response:
    return await client.post(POLICIES, json=body, headers=headers)


async def add_rule(client: AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """A rule created through the API (201 expected); the rule as the API returns it."""
    response = await post_rule(client, headers, **body)
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()
    return rule


def error_of(response: Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


async def rule_count(db: AsyncSession, account_id: uuid.UUID) -> int:
    await db.commit()  # a fresh snapshot; nothing loaded is expired
    count = await db.scalar(
        select(func.count()).select_from(AccessPolicy).where(AccessPolicy.account_id == account_id)
    )
    return int(count or 0)


async def policy_audit(db: AsyncSession, account_id: uuid.UUID) -> list[AuditEntry]:
    """The account's ``policy.*`` audit entries, oldest first."""
    await db.commit()  # a fresh snapshot; nothing loaded is expired
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id, AuditEntry.action.like("policy.%"))
        .order_by(AuditEntry.seq)
        .execution_options(populate_existing=True)
    )
    return list(rows)
