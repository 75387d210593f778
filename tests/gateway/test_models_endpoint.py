"""GET /v1/models and /v1/models/{id}: the caller's account's enabled models, always current."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import openai
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.providers import service as providers
from cockpit.providers.models import Model, ProviderKind
from tests.builders import make_account, make_token
from tests.conftest import TEST_SECRET
from tests.gateway.conftest import Org, add_model, client_for, records
from tests.gateway.live import fast_passwords  # noqa: F401

ORG_MODELS = ["claude-sonnet", "embed-small", "gpt-4o-mini", "sim-chat"]


async def model_ids(app: Any, token: str) -> list[str]:
    page = await client_for(app, token).models.list()
    return [m.id for m in page.data]


async def test_list_models(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    page = await client_for(gateway_app, org.member_token).models.list()
    assert [m.id for m in page.data] == ORG_MODELS
    owners = {m.id: m.owned_by for m in page.data}
    assert owners == {
        "claude-sonnet": "Local Anthropic",
        "embed-small": "Local OpenAI",
        "gpt-4o-mini": "Local OpenAI",
        "sim-chat": "Simulated",
    }
    assert all(m.object == "model" for m in page.data)
    assert all(abs(m.created - time.time()) < 3600 for m in page.data)
    # Listing is not a metered call.
    assert await records(gateway_app, db, org.account_id) == []


async def test_other_accounts_and_disabled_models_are_not_listed(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    other, other_owner = await make_account(db, name="Other Co")
    provider = await providers.create_provider(
        db, Actor.system(other.id), name="Their sim", kind=ProviderKind.simulated, secret_key=TEST_SECRET,
        allow_private=True,
    )  # fmt: skip
    await providers.create_model(
        db, Actor.system(other.id), name="their-model", provider_id=provider.id, upstream_model="x",
        input_price_per_million=Decimal(1), output_price_per_million=Decimal(1),
    )  # fmt: skip
    await db.commit()
    await add_model(db, org, "gpt-off", org.openai_provider_id, "gpt-4o", enabled=False)

    assert await model_ids(gateway_app, org.member_token) == ORG_MODELS
    other_token = await make_token(db, other_owner, scopes=("gateway",))
    assert await model_ids(gateway_app, other_token) == ["their-model"]

    client = client_for(gateway_app, org.member_token)
    for name in ("their-model", "gpt-off"):
        with pytest.raises(openai.NotFoundError) as caught:
            await client.models.retrieve(name)
        assert caught.value.code == "model_not_found"


async def test_retrieve_model(gateway_app: Any, org: Org) -> None:
    model = await client_for(gateway_app, org.member_token).models.retrieve("claude-sonnet")
    assert (model.id, model.object, model.owned_by) == ("claude-sonnet", "model", "Local Anthropic")


async def test_retrieve_model_with_a_slash_in_its_name(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await add_model(db, org, "meta/llama-3", org.simulated_provider_id)
    model = await client_for(gateway_app, org.member_token).models.retrieve("meta/llama-3")
    assert (model.id, model.owned_by) == ("meta/llama-3", "Simulated")


async def test_retrieve_unknown_model(gateway_app: Any, org: Org) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client_for(gateway_app, org.member_token).models.retrieve("gpt-nope")
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    body = caught.value.response.json()
    assert body["error"]["message"] == "The model 'gpt-nope' does not exist or you do not have access to it."
    assert body["error"]["type"] == "invalid_request_error"


async def test_models_need_a_valid_token(gateway_app: Any, org: Org) -> None:
    client = client_for(gateway_app, "ck_nope")
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()
    with pytest.raises(openai.AuthenticationError):
        await client.models.retrieve("gpt-4o-mini")


async def test_catalogue_changes_are_visible_at_once(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    client = client_for(gateway_app, org.member_token)
    assert [m.id for m in (await client.models.list()).data] == ORG_MODELS  # now cached

    await add_model(db, org, "aaa-new", org.simulated_provider_id)
    assert [m.id for m in (await client.models.list()).data] == ["aaa-new", *ORG_MODELS]
    answer = await client.chat.completions.create(
        model="aaa-new",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert answer.model == "aaa-new"

    model = await db.scalar(
        select(Model).where(Model.account_id == org.account_id, Model.name == "gpt-4o-mini")
    )
    assert model is not None
    await providers.edit_model(db, Actor.system(org.account_id), model.id, changes={"enabled": False})
    await db.commit()
    assert [m.id for m in (await client.models.list()).data] == [
        "aaa-new",
        "claude-sonnet",
        "embed-small",
        "sim-chat",
    ]

    changes = {"name": "gpt-renamed", "enabled": True}
    await providers.edit_model(db, Actor.system(org.account_id), model.id, changes=changes)
    await db.commit()
    renamed = await client.models.retrieve("gpt-renamed")
    assert renamed.owned_by == "Local OpenAI"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-4o-mini")
