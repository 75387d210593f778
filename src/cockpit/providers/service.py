"""Providers and the model catalogue: administrators configure them, every change is audited.

API keys are encrypted before they reach the session and never leave it again: not in responses,
audit entries, logs or error messages (only the last four characters are kept in clear).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from decimal import Decimal
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit import secrets
from cockpit.kit.errors import CockpitError, Conflict, InvalidInput, NotFound
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.text import is_header_name, is_header_value
from cockpit.kit.upstream_http import UpstreamClient
from cockpit.kit.urls import check_upstream_url_async
from cockpit.kit.validation import require_text
from cockpit.providers import repository
from cockpit.providers.models import OUTPUT_LIMIT_FIELDS, Capability, Model, Provider, ProviderKind
from cockpit.providers.pricing import lookup_prices

DEFAULT_BASE_URLS = {
    ProviderKind.openai: "https://api.openai.com/v1",
    ProviderKind.anthropic: "https://api.anthropic.com",
}
ANTHROPIC_VERSION = "2023-06-01"
TEST_TIMEOUT_SECONDS = 10.0
MAX_SETTINGS_BYTES = 10_000


def provider_target(provider: Provider) -> Target:
    return Target("provider", provider.id, provider.name)


def model_target(model: Model) -> Target:
    return Target("model", model.id, model.name)


def _invalid(field: str, message: str, code: str = "invalid_input") -> InvalidInput:
    return InvalidInput(code, message, details=[{"field": field, "message": message}])


# ---- providers ----


async def access_provider(session: AsyncSession, actor: Actor, provider_id: uuid.UUID) -> Provider:
    """The provider of the caller's account; NotFound for another account's (or none)."""
    actor.require(Permission.providers_manage)
    provider = await repository.get_provider(session, actor.account_id, provider_id)
    if provider is None:
        raise NotFound("provider_not_found", "No such provider.")
    return provider


async def list_providers(session: AsyncSession, actor: Actor) -> list[Provider]:
    actor.require(Permission.providers_manage)
    return await repository.list_providers(session, actor.account_id)


async def page_providers(session: AsyncSession, actor: Actor, params: PageParams) -> Page[Provider]:
    actor.require(Permission.providers_manage)
    return await paginate(session, repository.providers_stmt(actor.account_id), params)


async def _check_provider_name(
    session: AsyncSession, account_id: uuid.UUID, name: str, *, current: Provider | None
) -> str:
    name = require_text(name, field="name", label="The provider name", max_length=100)
    existing = await repository.provider_by_name(session, account_id, name)
    if existing is not None and (current is None or existing.id != current.id):
        raise Conflict("provider_name_taken", f"A provider named '{existing.name}' already exists.")
    return name


async def _check_base_url(kind: ProviderKind, base_url: str | None, *, allow_private: bool) -> str | None:
    if kind is ProviderKind.simulated:
        if base_url:
            raise _invalid("base_url", "A simulated provider has no base URL.", "invalid_base_url")
        return None
    url = (base_url or "").strip() or DEFAULT_BASE_URLS[kind]
    return await check_upstream_url_async(url, allow_private=allow_private)


def _check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    try:
        size = len(json.dumps(settings))
    except (TypeError, ValueError):
        raise _invalid("settings", "Settings must be a JSON object.") from None
    if size > MAX_SETTINGS_BYTES:
        raise _invalid("settings", f"Settings have at most {MAX_SETTINGS_BYTES} characters of JSON.")
    header = settings.get("api_key_header")
    if header is not None and (not isinstance(header, str) or not is_header_name(header)):
        raise _invalid(
            "settings.api_key_header",
            "api_key_header must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, at most 100).",
        )
    query = settings.get("query_params")
    if query is not None and (
        not isinstance(query, dict)
        or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in query.values())
    ):
        raise _invalid("settings.query_params", "query_params must map names to strings or numbers.")
    param = settings.get("output_limit_param")
    if param is not None and param not in OUTPUT_LIMIT_FIELDS:
        raise _invalid(
            "settings.output_limit_param",
            f"output_limit_param must be one of {', '.join(OUTPUT_LIMIT_FIELDS)}.",
        )
    return settings


def _set_key(provider: Provider, api_key: str | None, secret_key: str) -> None:
    key = (api_key or "").strip()
    if not key:
        provider.api_key_encrypted, provider.api_key_last4 = None, None
        return
    if not is_header_value(key):
        # The key travels in an HTTP header: only visible ASCII can (a pasted key with a typographic
        # character or a line break would fail every call).
        raise CockpitError(
            "invalid_text",
            "The API key may contain only visible ASCII characters (no spaces, accents or line breaks).",
            details=[{"field": "api_key", "message": "only visible ASCII characters"}],
        )
    provider.api_key_encrypted = secrets.encrypt(key, secret_key)
    provider.api_key_last4 = key[-4:] if len(key) >= 8 else None


def _provider_state(provider: Provider) -> dict[str, Any]:
    # Never the key itself: its presence and last four characters only.
    return {
        "name": provider.name,
        "kind": provider.kind.value,
        "base_url": provider.base_url,
        "has_api_key": provider.api_key_encrypted is not None,
        "settings": provider.settings,
    }


async def create_provider(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str,
    kind: ProviderKind,
    secret_key: str,
    allow_private: bool,
    base_url: str | None = None,
    api_key: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Provider:
    actor.require(Permission.providers_manage)
    name = await _check_provider_name(session, actor.account_id, name, current=None)
    provider = Provider(
        id=uuid.uuid4(),
        account_id=actor.account_id,
        name=name,
        name_key=name.lower(),
        kind=kind,
        base_url=await _check_base_url(kind, base_url, allow_private=allow_private),
        settings=_check_settings(dict(settings or {})),
    )
    _set_key(provider, api_key, secret_key)
    session.add(provider)
    await session.flush()
    after = _provider_state(provider)
    if provider.api_key_encrypted is not None:
        after["api_key"] = "set"
    await audit.record(session, actor, "provider.created", target=provider_target(provider), after=after)
    return provider


async def edit_provider(
    session: AsyncSession,
    actor: Actor,
    provider_id: uuid.UUID,
    *,
    secret_key: str,
    allow_private: bool,
    changes: dict[str, Any],
) -> Provider:
    """Apply the given fields (``name``, ``base_url``, ``api_key``, ``settings``); absent ones stay."""
    provider = await access_provider(session, actor, provider_id)
    before = _provider_state(provider)
    if changes.get("name") is not None and changes["name"].strip() != provider.name:
        provider.name = await _check_provider_name(
            session, actor.account_id, changes["name"], current=provider
        )
        provider.name_key = provider.name.lower()
    if "base_url" in changes:
        provider.base_url = await _check_base_url(
            provider.kind, changes["base_url"], allow_private=allow_private
        )
    if changes.get("settings") is not None:
        provider.settings = _check_settings(dict(changes["settings"]))
    key_changed = False
    if "api_key" in changes:
        old = provider.api_key_encrypted
        _set_key(provider, changes["api_key"], secret_key)
        key_changed = old is not None or provider.api_key_encrypted is not None
    after = _provider_state(provider)
    if key_changed:
        before["api_key"], after["api_key"] = "unchanged", "changed"
    await audit.record_changes(
        session, actor, "provider.updated", target=provider_target(provider), before=before, after=after
    )
    return provider


async def delete_provider(session: AsyncSession, actor: Actor, provider_id: uuid.UUID) -> int:
    """Delete a provider and its models; returns how many models went with it."""
    provider = await access_provider(session, actor, provider_id)
    models = await repository.model_count(session, actor.account_id, provider.id)
    before = _provider_state(provider) | {"models": models}
    await audit.record(session, actor, "provider.deleted", target=provider_target(provider), before=before)
    await session.delete(provider)
    await session.flush()
    return models


def _scrub(text: str, key: str | None) -> str:
    # The key goes before the text is cut: a cut could leave part of it that no longer matches.
    text = " ".join(text.split())
    return (text.replace(key, "[api key]") if key else text)[:300]


def _upstream_error(content: bytes) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return ""


async def check_connection(
    session: AsyncSession,
    actor: Actor,
    provider_id: uuid.UUID,
    *,
    secret_key: str,
    client: UpstreamClient,
) -> tuple[bool, int | None, str]:
    """Ask the upstream for its model list: (ok, HTTP status, message). The key never appears.

    The call goes through the gateway's upstream client, so the address it connects to is the one
    checked against the upstream rules (its host name is not resolved once for a check and again
    for the connection)."""
    provider = await access_provider(session, actor, provider_id)
    if provider.kind is ProviderKind.simulated:
        return True, None, "The simulated provider is built in and always available."
    assert provider.base_url is not None
    key: str | None = None
    if provider.api_key_encrypted is not None:
        try:
            key = secrets.decrypt(provider.api_key_encrypted, secret_key)
        except ValueError:
            return (
                False,
                None,
                "The stored API key cannot be decrypted (the secret key changed); save it again.",
            )
        if not is_header_value(key):  # saved before keys were checked
            return (
                False,
                None,
                "The stored API key has characters that cannot be sent (only visible ASCII); save it again.",
            )
    headers: dict[str, str] = {"accept": "application/json"}
    if provider.kind is ProviderKind.anthropic:
        url = f"{provider.base_url}/v1/models"
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    else:
        url = f"{provider.base_url}/models"
        if key:
            headers["authorization"] = f"Bearer {key}"
    try:
        response = await client.send(
            "GET",
            client.target(url),
            headers=headers,
            timing=aiohttp.ClientTimeout(total=TEST_TIMEOUT_SECONDS, sock_connect=TEST_TIMEOUT_SECONDS),
        )
        try:
            status = response.status
            content = b"" if 200 <= status < 400 else await response.read()
        finally:
            response.release()
    except TimeoutError:
        return False, None, f"The upstream did not answer within {TEST_TIMEOUT_SECONDS:.0f} seconds."
    except aiohttp.ClientError as exc:
        return (
            False,
            None,
            _scrub(f"Could not connect to the upstream: {str(exc) or type(exc).__name__}", key),
        )
    if 200 <= status < 300:
        return True, status, f"Connected: the upstream answered HTTP {status}."
    if 300 <= status < 400:
        return False, status, f"The upstream answered with a redirect (HTTP {status}), which is not followed."
    detail = _upstream_error(content)
    message = f"The upstream answered HTTP {status}" + (f": {detail}" if detail else ".")
    return False, status, _scrub(message, key)


# ---- models ----


async def access_model(session: AsyncSession, actor: Actor, model_id: uuid.UUID) -> Model:
    """A model of the caller's account; members only see enabled ones (NotFound otherwise)."""
    model = await repository.get_model(session, actor.account_id, model_id)
    if model is None or (not model.enabled and not actor.can(Permission.providers_manage)):
        raise NotFound("model_not_found", "No such model.")
    return model


async def list_models(session: AsyncSession, actor: Actor) -> list[Model]:
    """Enabled models for everyone; administrators also see disabled ones."""
    enabled_only = not actor.can(Permission.providers_manage)
    return await repository.list_models(session, actor.account_id, enabled_only=enabled_only)


async def model_names(session: AsyncSession, account_id: uuid.UUID) -> list[str]:
    """Every model name of the account, disabled ones too (filters of logs that outlive a model)."""
    return [m.name for m in await repository.list_models(session, account_id, enabled_only=False)]


async def page_models(session: AsyncSession, actor: Actor, params: PageParams) -> Page[Model]:
    """``list_models``, a page at a time."""
    enabled_only = not actor.can(Permission.providers_manage)
    return await paginate(
        session, repository.models_stmt(actor.account_id, enabled_only=enabled_only), params
    )


async def _model_provider(session: AsyncSession, actor: Actor, provider_id: uuid.UUID) -> Provider:
    provider = await repository.get_provider(session, actor.account_id, provider_id)
    if provider is None:
        raise _invalid("provider_id", "No such provider in this account.", "unknown_provider")
    return provider


async def _check_model_name(
    session: AsyncSession, account_id: uuid.UUID, name: str, *, current: Model | None
) -> str:
    name = require_text(name, field="name", label="The model name", max_length=200)
    existing = await repository.model_by_name(session, account_id, name)
    if existing is not None and (current is None or existing.id != current.id):
        raise Conflict("model_name_taken", f"A model named '{existing.name}' already exists.")
    return name


def _capabilities(values: list[Capability] | list[str]) -> list[str]:
    wanted = {Capability(v).value for v in values}
    return [c.value for c in Capability if c.value in wanted]


def _model_state(model: Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "provider_id": str(model.provider_id),
        "upstream_model": model.upstream_model,
        "input_price_per_million": str(model.input_price_per_million),
        "output_price_per_million": str(model.output_price_per_million),
        "cached_input_price_per_million": str(model.cached_input_price_per_million),
        "prices_source": model.prices_source,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "capabilities": list(model.capabilities),
        "enabled": model.enabled,
    }


PRICE_FIELDS = ("input_price_per_million", "output_price_per_million", "cached_input_price_per_million")


async def create_model(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str,
    provider_id: uuid.UUID,
    upstream_model: str,
    input_price_per_million: Decimal | None = None,
    output_price_per_million: Decimal | None = None,
    cached_input_price_per_million: Decimal | None = None,
    context_window: int | None = None,
    max_output_tokens: int | None = None,
    capabilities: list[Capability] | None = None,
    enabled: bool = True,
) -> Model:
    """Add a model; without any price, the prices genai-prices knows for the upstream model are used."""
    actor.require(Permission.providers_manage)
    name = await _check_model_name(session, actor.account_id, name, current=None)
    provider = await _model_provider(session, actor, provider_id)
    upstream_model = require_text(
        upstream_model, field="upstream_model", label="The upstream model", max_length=200
    )
    prices = (input_price_per_million, output_price_per_million, cached_input_price_per_million)
    source = "manual"
    if all(p is None for p in prices):
        known = lookup_prices(upstream_model, provider.kind, provider.base_url)
        if known is None:
            source, prices = "unknown", (Decimal(0), Decimal(0), Decimal(0))
        else:
            source, prices = "genai-prices", (known.input, known.output, known.cached_input)
    model = Model(
        id=uuid.uuid4(),
        account_id=actor.account_id,
        provider_id=provider.id,
        name=name,
        upstream_model=upstream_model,
        input_price_per_million=prices[0] if prices[0] is not None else Decimal(0),
        output_price_per_million=prices[1] if prices[1] is not None else Decimal(0),
        cached_input_price_per_million=prices[2] if prices[2] is not None else Decimal(0),
        prices_source=source,
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        capabilities=_capabilities(capabilities if capabilities is not None else [Capability.chat]),
        enabled=enabled,
    )
    session.add(model)
    await session.flush()
    await audit.record(session, actor, "model.created", target=model_target(model), after=_model_state(model))
    return model


async def edit_model(
    session: AsyncSession, actor: Actor, model_id: uuid.UUID, *, changes: dict[str, Any]
) -> Model:
    """Apply the given fields; a price given here makes the prices manual."""
    actor.require(Permission.providers_manage)
    model = await access_model(session, actor, model_id)
    before = _model_state(model)
    if changes.get("name") is not None:
        model.name = await _check_model_name(session, actor.account_id, changes["name"], current=model)
    if changes.get("provider_id") is not None:
        model.provider_id = (await _model_provider(session, actor, changes["provider_id"])).id
    if changes.get("upstream_model") is not None:
        model.upstream_model = require_text(
            changes["upstream_model"], field="upstream_model", label="The upstream model", max_length=200
        )
    for field in PRICE_FIELDS:
        if changes.get(field) is not None:
            setattr(model, field, Decimal(changes[field]))
            model.prices_source = "manual"
    for field in ("context_window", "max_output_tokens"):
        if field in changes:
            setattr(model, field, changes[field])
    if changes.get("capabilities") is not None:
        model.capabilities = _capabilities(changes["capabilities"])
    if changes.get("enabled") is not None:
        model.enabled = bool(changes["enabled"])
    await session.flush()
    after = _model_state(model)
    # Compare prices as numbers: "0.15" and "0.150000" are the same price.
    for field in PRICE_FIELDS:
        if Decimal(before[field]) == Decimal(after[field]):
            after[field] = before[field]
    await audit.record_changes(
        session, actor, "model.updated", target=model_target(model), before=before, after=after
    )
    return model


async def delete_model(session: AsyncSession, actor: Actor, model_id: uuid.UUID) -> None:
    actor.require(Permission.providers_manage)
    model = await access_model(session, actor, model_id)
    await audit.record(
        session, actor, "model.deleted", target=model_target(model), before=_model_state(model)
    )
    await session.delete(model)
    await session.flush()


async def model_names_of(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The names of these models of the account (others' and deleted ids are left out)."""
    return await repository.model_names(session, account_id, ids)


async def provider_names_of(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The names of these providers of the account (others' and deleted ids are left out)."""
    return await repository.provider_names(session, account_id, ids)
