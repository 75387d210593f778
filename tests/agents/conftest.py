"""Agents fixtures: an account with people of each role, a small model catalogue, a project with a
member, and two integrations (one that listed its tools, one that did not)."""

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
from cockpit.integrations.models import AuthType, Integration, IntegrationKind, Transport
from cockpit.projects import service as projects
from cockpit.projects.models import ProjectRole
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import bearer, make_account, make_token, make_user
from tests.conftest import TEST_SECRET

AGENTS = "/api/v1/agents"
TOOLS = [
    {"name": "search", "description": "Search the wiki", "input_schema": {"type": "object"}},
    {"name": "create_page", "description": "Create a page", "input_schema": {"type": "object"}},
]


@dataclass
class Team:
    account: Account
    owner: User
    admin: User
    member: User  # in the project "Support"
    outsider: User  # a member of no project
    owner_headers: dict[str, str]
    admin_headers: dict[str, str]
    member_headers: dict[str, str]
    outsider_headers: dict[str, str]
    models: dict[str, uuid.UUID]  # name -> id ("off" is disabled)
    project_id: uuid.UUID
    other_project_id: uuid.UUID
    wiki_id: uuid.UUID  # listed its tools
    crm_id: uuid.UUID  # has not listed any


async def make_team(db: AsyncSession, *, name: str = "Acme") -> Team:
    account, owner = await make_account(db, name=name)
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, role=UserRole.member)
    outsider = await make_user(db, account, role=UserRole.member)
    actor = Actor.system(account.id)
    provider = await providers.create_provider(
        db, actor, name="Simulated", kind=ProviderKind.simulated, secret_key=TEST_SECRET,
        allow_private=True, settings={"latency_ms": 0, "tokens_per_second": 0},
    )  # fmt: skip
    models: dict[str, uuid.UUID] = {}
    for model_name in ("gpt-4o", "claude", "off"):
        model = await providers.create_model(
            db, actor, name=model_name, provider_id=provider.id, upstream_model=model_name,
            input_price_per_million=Decimal(1), output_price_per_million=Decimal(2),
            enabled=model_name != "off",
        )  # fmt: skip
        models[model_name] = model.id
    project = await projects.create_project(db, actor, name="Support")
    other = await projects.create_project(db, actor, name="Research")
    await projects.set_member(db, actor, project.id, member.id, role=ProjectRole.project_member)
    wiki = Integration(
        account_id=account.id, name="Wiki", slug="wiki", kind=IntegrationKind.mcp,
        transport=Transport.streamable_http, url="https://wiki.example.com/mcp", auth_type=AuthType.none,
        tools=TOOLS,
    )  # fmt: skip
    crm = Integration(
        account_id=account.id, name="CRM", slug="crm", kind=IntegrationKind.openapi, transport=Transport.http,
        url="https://crm.example.com", auth_type=AuthType.none, tools=[],
    )  # fmt: skip
    db.add_all([wiki, crm])
    await db.commit()
    return Team(
        account=account,
        owner=owner,
        admin=admin,
        member=member,
        outsider=outsider,
        owner_headers=bearer(await make_token(db, owner)),
        admin_headers=bearer(await make_token(db, admin)),
        member_headers=bearer(await make_token(db, member)),
        outsider_headers=bearer(await make_token(db, outsider)),
        models=models,
        project_id=project.id,
        other_project_id=other.id,
        wiki_id=wiki.id,
        crm_id=crm.id,
    )


async def create(client: AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """An agent created through the API (201 expected); as the API returns it."""
    body.setdefault("model", "gpt-4o")
    response = await client.post(AGENTS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    agent: dict[str, Any] = response.json()
    return agent


def error_of(response: Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


async def agent_count(db: AsyncSession, account_id: uuid.UUID) -> int:
    await db.commit()  # a fresh snapshot
    count = await db.scalar(select(func.count()).select_from(Agent).where(Agent.account_id == account_id))
    return int(count or 0)


async def stored(db: AsyncSession, agent_id: str | uuid.UUID) -> Agent | None:
    await db.commit()
    agent = await db.get(Agent, uuid.UUID(str(agent_id)), populate_existing=True)
    await db.commit()
    return agent


async def agent_audit(db: AsyncSession, account_id: uuid.UUID) -> list[AuditEntry]:
    """The account's ``agent.*`` audit entries, oldest first."""
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id, AuditEntry.action.like("agent.%"))
        .order_by(AuditEntry.seq)
        .execution_options(populate_existing=True)
    )
    return list(rows)
