"""Conversations fixtures: an account with a simulated provider and two models (one disabled), two
members, agents (account-wide, inactive, and one of a project the member is not in), and a
second account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent, AgentStatus, Visibility
from cockpit.authz.actor import Actor
from cockpit.projects import service as projects
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import bearer, make_account, make_token, make_user
from tests.conftest import TEST_SECRET

CONVERSATIONS = "/api/v1/conversations"


@dataclass
class Org:
    account: Account
    owner: User
    member: User
    other_member: User  # same account, another person
    member_headers: dict[str, str]
    other_member_headers: dict[str, str]
    stranger_headers: dict[str, str]  # the owner of another account
    models: dict[str, uuid.UUID]


async def make_org(db: AsyncSession) -> Org:
    account, owner = await make_account(db, name="Acme")
    member = await make_user(db, account, role=UserRole.member)
    other_member = await make_user(db, account, role=UserRole.member)
    actor = Actor.system(account.id)
    provider = await providers.create_provider(
        db, actor, name="Simulated", kind=ProviderKind.simulated, secret_key=TEST_SECRET,
        allow_private=True, settings={"latency_ms": 0, "tokens_per_second": 0},
    )  # fmt: skip
    models: dict[str, uuid.UUID] = {}
    for name in ("gpt-4o", "off"):
        model = await providers.create_model(
            db, actor, name=name, provider_id=provider.id, upstream_model=name,
            input_price_per_million=Decimal(1), output_price_per_million=Decimal(2), enabled=name != "off",
        )  # fmt: skip
        models[name] = model.id
    research = await projects.create_project(db, actor, name="Research")
    db.add_all(
        [
            Agent(account_id=account.id, name="Helper", slug="helper", model_id=models["gpt-4o"]),
            Agent(
                account_id=account.id,
                name="Retired",
                slug="retired",
                model_id=models["gpt-4o"],
                status=AgentStatus.inactive,
            ),
            Agent(
                account_id=account.id,
                project_id=research.id,
                name="Lab",
                slug="lab",
                model_id=models["gpt-4o"],
                visibility=Visibility.project,
            ),
        ]
    )
    await db.commit()
    _, stranger = await make_account(db, name="Other Inc")
    return Org(
        account=account,
        owner=owner,
        member=member,
        other_member=other_member,
        member_headers=bearer(await make_token(db, member)),
        other_member_headers=bearer(await make_token(db, other_member)),
        stranger_headers=bearer(await make_token(db, stranger)),
        models=models,
    )


async def start(client: AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """A conversation started through the API (201 expected), as the API returns it."""
    if "agent" not in body:
        body.setdefault("model", "gpt-4o")
    response = await client.post(CONVERSATIONS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    conversation: dict[str, Any] = response.json()
    return conversation


def error_of(response: Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error
