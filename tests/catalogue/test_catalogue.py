"""The model catalogue for everyone (issue 17, section 5): a person sees the models the access
policies let them use with exact prices in USD and credits; administrators also see who is denied
what; another account's models never show."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.policies import service as policies
from cockpit.policies.models import Effect, ResourceType, Scope
from cockpit.providers import service as providers
from cockpit.providers.models import Capability, ProviderKind
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import bearer, console_login, make_account, make_token, make_user
from tests.conftest import TEST_SECRET

API = "/api/v1/models/catalogue"
PAGE = "/models/catalogue"


@dataclass
class Org:
    account: Account
    owner: User
    member: User
    models: dict[str, uuid.UUID]


async def _org(db: AsyncSession, *, name: str = "Acme", factor: Decimal = Decimal(0)) -> Org:
    account, owner = await make_account(db, name=name)
    member = await make_user(db, account, role=UserRole.member)
    member.name = "Mia Member"
    account.credit_factor = factor
    actor = Actor.system(account.id)
    provider = await providers.create_provider(
        db, actor, name=f"{name} Cloud", kind=ProviderKind.simulated, secret_key=TEST_SECRET,
        allow_private=True, settings={"latency_ms": 0, "tokens_per_second": 0},
    )  # fmt: skip
    models: dict[str, uuid.UUID] = {}
    specs = [
        ("gpt-small", Decimal("0.15"), Decimal("0.6"), [Capability.chat, Capability.tools], 128_000),
        ("claude-big", Decimal("3"), Decimal("15"), [Capability.chat, Capability.vision], 200_000),
        ("embed", Decimal("0.02"), Decimal(0), [Capability.embeddings], None),
    ]
    for model_name, input_price, output_price, capabilities, window in specs:
        model = await providers.create_model(
            db, actor, name=f"{name.lower()}-{model_name}", provider_id=provider.id,
            upstream_model=model_name,
            input_price_per_million=input_price, output_price_per_million=output_price,
            capabilities=capabilities, context_window=window,
        )  # fmt: skip
        models[model_name] = model.id
    await db.commit()
    return Org(account, owner, member, models)


async def _deny(db: AsyncSession, org: Org, model: str, user: User) -> None:
    await policies.create_policy(
        db, Actor.system(org.account.id), scope=Scope.user, scope_id=user.id,
        resource_type=ResourceType.model, resource=str(org.models[model]), effect=Effect.deny,
    )  # fmt: skip
    await db.commit()


async def test_a_member_sees_only_the_models_allowed_to_them(client: AsyncClient, db: AsyncSession) -> None:
    org = await _org(db)
    await _org(db, name="Other")
    await _deny(db, org, "claude-big", org.member)
    response = await client.get(API, headers=bearer(await make_token(db, org.member)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [m["name"] for m in body["items"]] == ["acme-embed", "acme-gpt-small"]
    assert body["denied"] is None
    assert all(m["denied_to"] is None for m in body["items"])
    assert all(m["provider"] == "Acme Cloud" for m in body["items"])

    # The owner is not denied anything, and sees who is denied what.
    owner = (await client.get(API, headers=bearer(await make_token(db, org.owner)))).json()
    assert [m["name"] for m in owner["items"]] == ["acme-claude-big", "acme-embed", "acme-gpt-small"]
    assert [(m["name"], m["allowed"], m["denied_to"]) for m in owner["denied"]] == [
        ("acme-claude-big", True, {"count": 1, "names": ["Mia Member"]})
    ]
    assert all(not m["name"].startswith("other-") for m in owner["items"] + owner["denied"])


async def test_prices_are_exact_in_usd_and_credits(client: AsyncClient, db: AsyncSession) -> None:
    org = await _org(db, factor=Decimal("1000"))
    body = (await client.get(API, headers=bearer(await make_token(db, org.member)))).json()
    assert body["credits_enabled"] is True
    small = next(m for m in body["items"] if m["name"] == "acme-gpt-small")
    prices = {k: Decimal(str(v)) if v is not None else None for k, v in small["prices_per_million"].items()}
    assert prices == {
        "input_usd": Decimal("0.15"), "output_usd": Decimal("0.6"), "cached_input_usd": Decimal(0),
        "input_credits": Decimal(150), "output_credits": Decimal(600), "cached_input_credits": Decimal(0),
    }  # fmt: skip
    assert small["context_window"] == 128_000
    assert small["capabilities"] == ["chat", "tools"]

    # Credits off: no credit prices.
    org.account.credit_factor = Decimal(0)
    await db.commit()
    off = (await client.get(API, headers=bearer(await make_token(db, org.member)))).json()
    assert off["credits_enabled"] is False
    assert off["items"][0]["prices_per_million"]["input_credits"] is None


async def test_filter_by_capability_and_search(client: AsyncClient, db: AsyncSession) -> None:
    org = await _org(db)
    headers = bearer(await make_token(db, org.member))
    vision = (await client.get(API, params={"capability": "vision"}, headers=headers)).json()
    assert [m["name"] for m in vision["items"]] == ["acme-claude-big"]
    found = (await client.get(API, params={"search": "EMB"}, headers=headers)).json()
    assert [m["name"] for m in found["items"]] == ["acme-embed"]


async def test_admin_sees_models_denied_to_themselves_too(client: AsyncClient, db: AsyncSession) -> None:
    org = await _org(db)
    admin = await make_user(db, org.account, role=UserRole.admin)
    await _deny(db, org, "embed", admin)
    body = (await client.get(API, headers=bearer(await make_token(db, admin)))).json()
    assert "acme-embed" not in [m["name"] for m in body["items"]]
    denied = {m["name"]: m for m in body["denied"]}
    assert denied["acme-embed"]["allowed"] is False
    assert denied["acme-embed"]["denied_to"]["count"] == 1


async def test_the_page_renders_for_a_member(client: AsyncClient, db: AsyncSession) -> None:
    org = await _org(db, factor=Decimal("100"))
    await _org(db, name="Other")
    await _deny(db, org, "claude-big", org.member)
    assert (await console_login(client, org.member.email)).status_code == 303
    response = await client.get(PAGE)
    assert response.status_code == 200, response.text
    text = response.text
    assert 'data-model="acme-gpt-small"' in text
    assert 'data-model="acme-embed"' in text
    assert "acme-claude-big" not in text
    assert "other-" not in text
    assert "$0.15" in text  # USD per million
    assert ">15.00</span> cr" in text  # and credits: 0.15 x 100
    assert ">60.00</span> cr" in text  # output: 0.6 x 100
    assert 'data-testid="denied-section"' not in text
    assert 'data-testid="manage-models"' not in text

    filtered = (await client.get(PAGE, params={"capability": "vision"})).text
    assert "No model matches" in filtered


async def test_the_page_shows_an_admin_who_is_denied(client: AsyncClient, db: AsyncSession) -> None:
    org = await _org(db)
    await _deny(db, org, "claude-big", org.member)
    assert (await console_login(client, org.owner.email)).status_code == 303
    text = (await client.get(PAGE)).text
    assert 'data-testid="denied-section"' in text
    assert "Mia Member" in text
    assert 'data-testid="manage-models"' in text


async def test_the_page_needs_a_sign_in(client: AsyncClient, db: AsyncSession) -> None:
    response = await client.get(PAGE)
    assert response.status_code in (302, 303, 401)
