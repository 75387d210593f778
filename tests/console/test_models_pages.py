"""The Models page: providers and the model catalogue through the console forms."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.providers.models import Model, Provider
from cockpit.users.models import User, UserRole
from tests.builders import console_login, csrf_for, make_account, make_user

BANNER_ERROR = re.compile(r'<div class="banner banner-error"[^>]*>.*?<span>([^<]*)</span>', re.S)
FLASH = re.compile(
    r'<div class="banner banner-(success|error|info)" role="status"[^>]*>.*?<span>([^<]*)</span>', re.S
)
API_KEY = "sk-test-very-secret-key-9876"


async def _login(client: AsyncClient, user: User) -> None:
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text


async def _post(client: AsyncClient, url: str, data: dict[str, object]) -> Response:
    return await client.post(url, data={**data, "csrf_token": await csrf_for(client, "/models")})


async def _follow(client: AsyncClient, response: Response) -> tuple[str, str, str]:
    assert response.status_code == 303, response.text
    page = await client.get(response.headers["location"])
    assert page.status_code == 200, page.text
    match = FLASH.search(page.text)
    assert match, "no flash message"
    return page.text, match.group(1), match.group(2)


async def _count(db: AsyncSession, table: type[Provider] | type[Model], account_id: uuid.UUID) -> int:
    count = await db.scalar(select(func.count()).select_from(table).where(table.account_id == account_id))
    await db.commit()
    return count or 0


async def _provider(db: AsyncSession, account_id: uuid.UUID, name: str) -> Provider:
    provider = await db.scalar(
        select(Provider)
        .where(Provider.account_id == account_id, Provider.name == name)
        .execution_options(populate_existing=True)
    )
    await db.commit()
    assert provider is not None
    return provider


async def _model(db: AsyncSession, account_id: uuid.UUID, name: str) -> Model | None:
    model = await db.scalar(
        select(Model)
        .where(Model.account_id == account_id, Model.name == name)
        .execution_options(populate_existing=True)
    )
    await db.commit()
    return model


async def _simulated(client: AsyncClient, name: str = "Sim") -> None:
    response = await _post(client, "/models/providers", {"name": name, "kind": "simulated"})
    _, kind, message = await _follow(client, response)
    assert (kind, message) == ("success", f"Provider “{name}” added.")


async def _add_model(client: AsyncClient, provider_id: uuid.UUID, name: str = "sim-small") -> Response:
    return await _post(
        client,
        "/models",
        {
            "name": name,
            "provider_id": str(provider_id),
            "upstream_model": "sim-1",
            "input_price": "0.15",
            "output_price": "0.6",
            "cached_price": "",
            "context_window": "128000",
            "capabilities": ["chat", "tools"],
            "enabled": "true",
        },
    )


async def test_empty_page_and_create_provider_and_model(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    await _login(client, owner)
    page = await client.get("/models")
    assert page.status_code == 200
    assert "No providers yet" in page.text
    assert "No models yet" in page.text
    assert 'data-testid="gateway-snippet"' not in page.text

    await _simulated(client)
    provider = await _provider(db, account.id, "Sim")
    response = await _add_model(client, provider.id)
    html, kind, message = await _follow(client, response)
    assert (kind, message) == ("success", "Model “sim-small” added.")
    model = await _model(db, account.id, "sim-small")
    assert model is not None
    assert model.provider_id == provider.id
    assert model.upstream_model == "sim-1"
    assert str(model.input_price_per_million) in ("0.15", "0.150000")
    assert model.capabilities == ["chat", "tools"]
    assert model.context_window == 128000
    assert model.enabled
    assert "$0.15" in html
    assert "$0.60" in html
    assert 'id="models-table"' in html
    # How to call it: the gateway URL of this deployment and the model's name.
    assert 'data-testid="gateway-snippet"' in html
    assert 'base_url="http://testserver/v1"' in html
    assert 'model="sim-small"' in html


async def test_api_key_never_shown(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    await _login(client, owner)
    response = await _post(
        client,
        "/models/providers",
        {"name": "OpenAI", "kind": "openai", "base_url": "https://1.1.1.1/v1", "api_key": API_KEY},
    )
    html, kind, _ = await _follow(client, response)
    assert kind == "success"
    assert API_KEY not in html
    assert "••••9876" in html
    provider = await _provider(db, account.id, "OpenAI")
    assert provider.api_key_last4 == "9876"
    assert API_KEY not in (provider.api_key_encrypted or "")

    # An error on the edit form re-renders the page: the new key is not echoed either.
    other_key = "sk-other-secret-key-5555"
    await _simulated(client, "Sim")
    failed = await _post(
        client, f"/models/providers/{provider.id}", {"name": "sim", "base_url": "", "api_key": other_key}
    )
    assert failed.status_code == 409
    assert other_key not in failed.text
    assert API_KEY not in failed.text
    assert (await _provider(db, account.id, "OpenAI")).api_key_last4 == "9876"

    # Removing the key.
    response = await _post(
        client,
        f"/models/providers/{provider.id}",
        {"name": "OpenAI", "base_url": "https://1.1.1.1/v1", "remove_key": "true"},
    )
    html, kind, _ = await _follow(client, response)
    assert kind == "success"
    assert "No key" in html
    assert (await _provider(db, account.id, "OpenAI")).api_key_encrypted is None


async def test_bad_base_url_creates_nothing(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    await _login(client, owner)
    response = await _post(
        client,
        "/models/providers",
        {"name": "Metadata", "kind": "openai", "base_url": "http://169.254.169.254", "api_key": API_KEY},
    )
    assert response.status_code == 422
    match = BANNER_ERROR.search(response.text)
    assert match
    assert "169.254.169.254" in match.group(1)
    # The dialog opens again with the values kept, but not the key.
    assert (
        'id="new-provider-dialog" class="modal modal-wide" aria-labelledby="new-provider-title" x-data'
        in response.text
    )
    assert 'value="Metadata"' in response.text
    assert API_KEY not in response.text
    assert await _count(db, Provider, account.id) == 0


async def test_duplicate_model_name_and_invalid_price(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    await _login(client, owner)
    await _simulated(client)
    provider = await _provider(db, account.id, "Sim")
    await _follow(client, await _add_model(client, provider.id))

    response = await _add_model(client, provider.id)
    assert response.status_code == 409
    match = BANNER_ERROR.search(response.text)
    assert match
    assert "already exists" in match.group(1)
    assert 'aria-labelledby="new-model-title" x-data' in response.text

    response = await _post(
        client,
        "/models",
        {"name": "cheap", "provider_id": str(provider.id), "upstream_model": "x", "input_price": "-1"},
    )
    assert response.status_code == 422
    match = BANNER_ERROR.search(response.text)
    assert match
    assert "input price" in match.group(1)
    assert 'value="cheap"' in response.text
    assert await _count(db, Model, account.id) == 1


async def test_toggle_edit_and_delete(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    await _login(client, owner)
    await _simulated(client)
    provider = await _provider(db, account.id, "Sim")
    await _follow(client, await _add_model(client, provider.id))
    model = await _model(db, account.id, "sim-small")
    assert model is not None

    _, kind, message = await _follow(client, await _post(client, f"/models/{model.id}/toggle", {}))
    assert (kind, message) == ("success", "Model “sim-small” disabled.")
    model = await _model(db, account.id, "sim-small")
    assert model is not None
    assert not model.enabled
    _html, _, message = await _follow(client, await _post(client, f"/models/{model.id}/toggle", {}))
    assert message == "Model “sim-small” enabled."

    response = await _post(
        client,
        f"/models/{model.id}",
        {
            "name": "sim-large",
            "provider_id": str(provider.id),
            "upstream_model": "sim-2",
            "input_price": "1",
            "output_price": "2",
            "cached_price": "0.5",
            "capabilities": ["chat"],
        },
    )
    _, kind, _ = await _follow(client, response)
    assert kind == "success"
    model = await _model(db, account.id, "sim-large")
    assert model is not None
    assert model.prices_source == "manual"
    assert model.cached_input_price_per_million == Decimal("0.5")
    assert model is not None
    assert model.upstream_model == "sim-2"
    assert not model.enabled

    _, kind, message = await _follow(client, await _post(client, f"/models/{model.id}/delete", {}))
    assert (kind, message) == ("success", "Model “sim-large” deleted.")
    assert await _count(db, Model, account.id) == 0

    await _follow(client, await _add_model(client, provider.id))
    _, kind, message = await _follow(
        client, await _post(client, f"/models/providers/{provider.id}/delete", {})
    )
    assert (kind, message) == ("success", "Provider “Sim” and its model deleted.")
    assert await _count(db, Provider, account.id) == 0
    assert await _count(db, Model, account.id) == 0


async def test_simulated_connection_test(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    await _login(client, owner)
    await _simulated(client)
    provider = await _provider(db, account.id, "Sim")
    _, kind, message = await _follow(client, await _post(client, f"/models/providers/{provider.id}/test", {}))
    assert kind == "success"
    assert "Connection OK" in message


async def test_member_gets_403(client: AsyncClient, db: AsyncSession) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account, role=UserRole.member)
    await _login(client, member)
    assert (await client.get("/models")).status_code == 403
    page = await client.get("/")
    assert 'href="/models"' not in page.text
    response = await client.post(
        "/models/providers", data={"name": "x", "kind": "simulated", "csrf_token": await csrf_for(client)}
    )
    assert response.status_code == 403


async def test_other_accounts_provider_is_404(client: AsyncClient, db: AsyncSession) -> None:
    _, other_owner = await make_account(db, name="Other")
    account, owner = await make_account(db)
    await _login(client, other_owner)
    await _simulated(client, "Theirs")
    theirs = await db.scalar(select(Provider).where(Provider.name == "Theirs"))
    await db.commit()
    assert theirs is not None
    await client.post("/logout", data={"csrf_token": await csrf_for(client)})
    client.cookies.clear()
    await _login(client, owner)
    for url in (
        f"/models/providers/{theirs.id}",
        f"/models/providers/{theirs.id}/test",
        f"/models/providers/{theirs.id}/delete",
    ):
        assert (await _post(client, url, {"name": "Mine"})).status_code == 404
    assert (await _post(client, "/models/providers/not-a-uuid/delete", {})).status_code == 404
    # Nor can a model be routed to it.
    response = await _add_model(client, theirs.id)
    assert response.status_code == 422
    assert await _count(db, Model, account.id) == 0
    assert (await _provider(db, theirs.account_id, "Theirs")).name == "Theirs"
