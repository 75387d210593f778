"""The integrations catalogue: administrators (``integrations:manage``) add, change, test and remove
integrations; every change is audited. Every member may read the catalogue (to see which tools
exist) and connect their own account to an ``oauth2_user`` integration.

Secrets are encrypted before they reach the session and never leave it again: not in responses,
audit entries, logs or error messages (only the last four characters are kept in clear).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.integrations import client, documents, oauth, repository
from cockpit.integrations.client import Connection, IntegrationFailure, ToolSpec
from cockpit.integrations.models import AuthType, Integration, IntegrationKind, Transport
from cockpit.kit import secrets
from cockpit.kit.errors import Conflict, InvalidInput, NotFound
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.text import is_header_value
from cockpit.kit.time import utcnow
from cockpit.kit.urls import check_upstream_url_async
from cockpit.kit.validation import require_text

# The field of the auth body that holds the secret, per type.
SECRET_FIELDS = {
    AuthType.api_key: "value",
    AuthType.bearer: "token",
    AuthType.basic: "password",
    AuthType.oauth2_client_credentials: "client_secret",
    AuthType.oauth2_user: "client_secret",
}
SECRET_REQUIRED = {AuthType.api_key, AuthType.bearer, AuthType.basic, AuthType.oauth2_client_credentials}
PUBLIC_AUTH_FIELDS = ("in", "name", "username", "token_url", "authorize_url", "client_id", "scope")


def integration_target(integration: Integration) -> Target:
    return Target("integration", integration.id, integration.name)


def _invalid(field: str, message: str, code: str = "invalid_input") -> InvalidInput:
    return InvalidInput(code, message, details=[{"field": field, "message": message}])


def _secret_key(settings: Settings) -> str:
    return settings.resolved_secret_key()


# ---- reading ----


async def access_integration(session: AsyncSession, actor: Actor, integration_id: uuid.UUID) -> Integration:
    """An integration of the caller's account; NotFound for another account's (or none)."""
    integration = await repository.get(session, actor.account_id, integration_id)
    if integration is None:
        raise NotFound("integration_not_found", "No such integration.")
    return integration


async def _manageable(session: AsyncSession, actor: Actor, integration_id: uuid.UUID) -> Integration:
    actor.require(Permission.integrations_manage)
    return await access_integration(session, actor, integration_id)


get_integration = access_integration


async def list_integrations(
    session: AsyncSession,
    actor: Actor,
    params: PageParams,
    *,
    search: str | None = None,
    enabled: bool | None = None,
) -> Page[Integration]:
    """The account's integrations by name, a page at a time (every member may read them)."""
    text = (search or "").strip()[:100] or None
    return await paginate(
        session, repository.list_stmt(actor.account_id, search=text, enabled=enabled), params
    )


async def names_of(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The names of these integrations of the account (others' and deleted ids are left out)."""
    return await repository.names(session, account_id, ids)


async def by_ids(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> list[Integration]:
    """These integrations of the account, by name (others' and deleted ids are left out)."""
    return await repository.by_ids(session, account_id, ids)


async def tools_of(session: AsyncSession, actor: Actor, integration_id: uuid.UUID) -> list[ToolSpec]:
    """The tools stored when the integration was last tested."""
    integration = await access_integration(session, actor, integration_id)
    return [_spec(t) for t in integration.tools or []]


def _spec(tool: dict[str, Any]) -> ToolSpec:
    return ToolSpec(
        str(tool.get("name", "")), str(tool.get("description", "")), dict(tool.get("input_schema") or {})
    )


# ---- validation ----


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return re.sub(r"-{2,}", "-", slug)[:100].strip("-_") or "integration"


async def _check_slug(
    session: AsyncSession, account_id: uuid.UUID, slug: str, *, current: Integration | None
) -> str:
    existing = await repository.by_slug(session, account_id, slug)
    if existing is not None and (current is None or existing.id != current.id):
        raise Conflict(
            "integration_slug_taken", f"An integration with the identifier '{slug}' already exists."
        )
    return slug


def _transport(kind: IntegrationKind, transport: Transport | None, settings: Settings) -> Transport:
    if kind is IntegrationKind.openapi:
        if transport not in (None, Transport.http):
            raise _invalid(
                "transport", "An OpenAPI integration uses the http transport.", "invalid_transport"
            )
        return Transport.http
    chosen = transport or Transport.streamable_http
    if chosen is Transport.http:
        raise _invalid(
            "transport", "An MCP integration uses streamable_http, sse or stdio.", "invalid_transport"
        )
    if chosen is Transport.stdio and not settings.allow_stdio_integrations:
        raise _invalid(
            "transport",
            "Local (stdio) integrations are off; set COCKPIT_ALLOW_STDIO_INTEGRATIONS=true to allow them.",
            "stdio_not_allowed",
        )
    return chosen


async def _check_url(url: str, transport: Transport, settings: Settings, field: str = "url") -> str:
    if transport is Transport.stdio:
        return require_text(url, field=field, label="The command line", max_length=2000)
    try:
        return await check_upstream_url_async(url.strip(), allow_private=settings.allow_private_upstreams)
    except InvalidInput as exc:
        message = exc.message.replace("base URL", "URL").replace("API key field", "authentication settings")
        raise _invalid(field, message, "invalid_url") from None


def _browser_url(url: str, field: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(field, "The URL must start with http:// or https://.", "invalid_url")
    return url.strip()


async def _auth_settings(auth: dict[str, Any], settings: Settings) -> dict[str, Any]:
    kind = AuthType(auth["type"])
    public: dict[str, Any] = {}
    for key in PUBLIC_AUTH_FIELDS:
        value = auth.get("in_" if key == "in" else key, auth.get(key))
        if value is not None:
            public[key] = value
    if "token_url" in public:
        public["token_url"] = await _check_url(
            public["token_url"], Transport.http, settings, "auth.token_url"
        )
    if "authorize_url" in public:
        public["authorize_url"] = _browser_url(public["authorize_url"], "auth.authorize_url")
    if kind is AuthType.api_key:
        public.setdefault("in", "header")
    return public


def _set_secret(integration: Integration, value: str | None, secret_key: str, field: str) -> None:
    text = (value or "").strip()
    if not text:
        integration.secret_encrypted, integration.secret_last4 = None, None
        return
    if integration.auth_type is not AuthType.basic and not is_header_value(text):
        # It travels in a header or a query: only visible ASCII can.
        raise _invalid(
            f"auth.{field}", "The secret may contain only visible ASCII characters.", "invalid_text"
        )
    integration.secret_encrypted = secrets.encrypt(text, secret_key)
    integration.secret_last4 = text[-4:] if len(text) >= 8 else None


def _check_document(kind: IntegrationKind, document: dict[str, Any] | None) -> dict[str, Any] | None:
    if kind is IntegrationKind.openapi and document is None:
        raise _invalid(
            "openapi_document",
            "Upload the service's OpenAPI 3 document (JSON) or give its URL.",
            "openapi_document_required",
        )
    if kind is IntegrationKind.mcp and document is not None:
        raise _invalid("openapi_document", "An MCP integration has no OpenAPI document.")
    return document


def state_of(integration: Integration) -> dict[str, Any]:
    """What the audit log keeps: never the secret, only whether there is one."""
    return {
        "name": integration.name,
        "slug": integration.slug,
        "description": integration.description,
        "kind": integration.kind.value,
        "transport": integration.transport.value,
        "url": integration.url,
        "auth_type": integration.auth_type.value,
        "auth_settings": dict(integration.auth_settings or {}),
        "has_secret": integration.secret_encrypted is not None,
        "has_openapi_document": integration.openapi_document is not None,
        "price_credits": str(Decimal(integration.price_credits).normalize()),
        "timeout_seconds": integration.timeout_seconds,
        "enabled": integration.enabled,
    }


# ---- writing ----


async def create_integration(
    session: AsyncSession,
    actor: Actor,
    *,
    settings: Settings,
    name: str,
    kind: IntegrationKind,
    url: str,
    auth: dict[str, Any],
    slug: str | None = None,
    description: str = "",
    transport: Transport | None = None,
    openapi_document: dict[str, Any] | None = None,
    price_credits: Decimal = Decimal(0),
    timeout_seconds: int = 30,
    enabled: bool = True,
) -> Integration:
    """Add an integration. ``auth`` is the auth body as a dict (``type`` plus its fields, the secret
    in clear); the secret is encrypted here."""
    actor.require(Permission.integrations_manage)
    name = require_text(name, field="name", label="The name", max_length=100)
    chosen = _transport(kind, transport, settings)
    auth_type = AuthType(auth["type"])
    secret_field = SECRET_FIELDS.get(auth_type)
    secret = auth.get(secret_field) if secret_field else None
    if auth_type in SECRET_REQUIRED and not secret:
        raise _invalid(
            f"auth.{secret_field}", f"The {secret_field} is required for {auth_type.value} authentication."
        )
    slug = await _check_slug(session, actor.account_id, slug or slugify(name), current=None)
    if kind is IntegrationKind.openapi and openapi_document is None and chosen is Transport.http:
        # No document uploaded: the URL is the document's address; the service's comes from it.
        fetched = await documents.fetch_openapi_document(
            url, allow_private=settings.allow_private_upstreams, timeout_seconds=float(timeout_seconds)
        )
        openapi_document, url = fetched.document, fetched.base_url
    integration = Integration(
        id=uuid.uuid4(),
        account_id=actor.account_id,
        name=name,
        slug=slug,
        description=(description or "").strip()[:1000],
        kind=kind,
        transport=chosen,
        url=await _check_url(url, chosen, settings),
        openapi_document=_check_document(kind, openapi_document),
        auth_type=auth_type,
        auth_settings=await _auth_settings(auth, settings),
        enabled=enabled,
        price_credits=Decimal(price_credits),
        timeout_seconds=timeout_seconds,
        tools=[],
        created_by=actor.user_id,
    )
    _set_secret(integration, secret, _secret_key(settings), secret_field or "secret")
    session.add(integration)
    await session.flush()
    await audit.record(
        session,
        actor,
        "integration.created",
        target=integration_target(integration),
        after=state_of(integration),
    )
    return integration


async def update_integration(
    session: AsyncSession,
    actor: Actor,
    integration_id: uuid.UUID,
    *,
    settings: Settings,
    changes: dict[str, Any],
) -> Integration:
    """Apply the given fields; ``auth`` without its secret keeps the stored one (same type)."""
    integration = await _manageable(session, actor, integration_id)
    before = state_of(integration)
    if changes.get("name") is not None:
        integration.name = require_text(changes["name"], field="name", label="The name", max_length=100)
    if changes.get("slug") is not None:
        integration.slug = await _check_slug(session, actor.account_id, changes["slug"], current=integration)
    if changes.get("description") is not None:
        integration.description = changes["description"].strip()[:1000]
    if changes.get("transport") is not None:
        integration.transport = _transport(integration.kind, changes["transport"], settings)
    if changes.get("url") is not None or changes.get("transport") is not None:
        integration.url = await _check_url(
            changes.get("url") or integration.url, integration.transport, settings
        )
    if changes.get("openapi_document") is not None:
        integration.openapi_document = _check_document(integration.kind, changes["openapi_document"])
    secret_changed = False
    auth = changes.get("auth")
    if auth is not None:
        auth_type = AuthType(auth["type"])
        secret_field = SECRET_FIELDS.get(auth_type)
        secret = auth.get(secret_field) if secret_field else None
        same_type = auth_type is integration.auth_type
        if auth_type in SECRET_REQUIRED and not secret and not (same_type and integration.secret_encrypted):
            raise _invalid(
                f"auth.{secret_field}",
                f"The {secret_field} is required for {auth_type.value} authentication.",
            )
        integration.auth_settings = await _auth_settings(auth, settings)
        integration.auth_type = auth_type
        if secret or not same_type or secret_field is None:
            secret_changed = secret is not None or integration.secret_encrypted is not None
            _set_secret(integration, secret, _secret_key(settings), secret_field or "secret")
        if not same_type or secret or before["auth_settings"] != integration.auth_settings:
            # Tokens obtained with other settings are no good any more.
            await repository.drop_tokens(session, actor.account_id, integration.id, every=True)
    for field in ("price_credits", "timeout_seconds", "enabled"):
        if changes.get(field) is not None:
            setattr(integration, field, changes[field])
    await session.flush()
    after = state_of(integration)
    if secret_changed:
        before["secret"], after["secret"] = "unchanged", "changed"
    await audit.record_changes(
        session,
        actor,
        "integration.updated",
        target=integration_target(integration),
        before=before,
        after=after,
    )
    return integration


async def remove_integration(session: AsyncSession, actor: Actor, integration_id: uuid.UUID) -> None:
    integration = await _manageable(session, actor, integration_id)
    await audit.record(
        session,
        actor,
        "integration.deleted",
        target=integration_target(integration),
        before=state_of(integration),
    )
    await session.delete(integration)
    await session.flush()


# ---- connecting ----


async def connection(
    session: AsyncSession, integration: Integration, *, user_id: uuid.UUID | None, settings: Settings
) -> Connection:
    """The integration decrypted and ready to call, with its credentials as headers or query
    parameters (OAuth tokens fetched, cached or refreshed here; flushed, committed by the caller).
    Raises IntegrationFailure when it cannot be used (a secret that cannot be decrypted, no
    connected account for ``oauth2_user``, stdio turned off)."""
    key = _secret_key(settings)
    secret: str | None = None
    if integration.secret_encrypted is not None:
        try:
            secret = secrets.decrypt(integration.secret_encrypted, key)
        except ValueError:
            raise IntegrationFailure(
                "unauthorized",
                "The stored secret cannot be decrypted (the secret key changed); save it again.",
            ) from None
    if integration.transport is Transport.stdio and not settings.allow_stdio_integrations:
        raise IntegrationFailure("refused", "Local (stdio) integrations are turned off on this server.")
    allow_private = settings.allow_private_upstreams
    auth = integration.auth_settings or {}
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    kind = integration.auth_type
    if kind is AuthType.api_key and secret:
        (query if auth.get("in") == "query" else headers)[str(auth.get("name"))] = secret
    elif kind is AuthType.bearer and secret:
        headers["authorization"] = f"Bearer {secret}"
    elif kind is AuthType.basic:
        pair = f"{auth.get('username', '')}:{secret or ''}".encode()
        headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif kind is AuthType.oauth2_client_credentials:
        token = await oauth.client_credentials_token(
            session, integration, client_secret=secret, secret_key=key, allow_private=allow_private
        )
        headers["authorization"] = f"Bearer {token}"
    elif kind is AuthType.oauth2_user:
        token = await oauth.user_token(
            session, integration, user_id, client_secret=secret, secret_key=key, allow_private=allow_private
        )
        headers["authorization"] = f"Bearer {token}"
    return Connection(
        integration_id=integration.id,
        kind=integration.kind,
        transport=integration.transport,
        url=integration.url,
        openapi_document=integration.openapi_document,
        headers=headers,
        query=query,
        timeout_seconds=float(integration.timeout_seconds),
        max_response_bytes=client.MAX_RESPONSE_BYTES,
        allow_private=allow_private,
    )


@dataclass(frozen=True)
class TestOutcome:
    ok: bool
    message: str
    tools: list[ToolSpec]


def _scrub(message: str, conn_secrets: Collection[str]) -> str:
    for value in conn_secrets:
        if value and len(value) >= 4:
            message = message.replace(value, "[secret]")
    return message[:500]


async def test_integration(
    session: AsyncSession, actor: Actor, integration_id: uuid.UUID, *, settings: Settings
) -> TestOutcome:
    """List the tools with the stored credentials; store them and the result (``last_test_*``)."""
    integration = await _manageable(session, actor, integration_id)
    known: list[str] = []
    try:
        conn = await connection(session, integration, user_id=actor.user_id, settings=settings)
        known = [*conn.headers.values(), *conn.query.values()]
        if integration.kind is IntegrationKind.openapi:
            await client.check_reachable(conn)
        tools = await client.list_tools(conn)
    except IntegrationFailure as failure:
        integration.last_test_ok = False
        integration.last_test_message = _scrub(f"Failed ({failure.kind}): {failure.message}", known)
        await session.flush()
        return TestOutcome(False, integration.last_test_message, [])
    integration.tools = [
        {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in tools
    ]
    integration.tools_listed_at = utcnow()
    integration.last_test_ok = True
    integration.last_test_message = f"Connected: {len(tools)} tool{'' if len(tools) == 1 else 's'}"
    await session.flush()
    return TestOutcome(True, integration.last_test_message, tools)


# ---- one person's OAuth connection ----


async def _user_integration(session: AsyncSession, actor: Actor, integration_id: uuid.UUID) -> Integration:
    integration = await access_integration(session, actor, integration_id)
    if integration.auth_type is not AuthType.oauth2_user:
        raise Conflict("integration_not_per_user", "This integration does not use per-person sign-in.")
    if actor.user_id is None:
        raise Conflict("integration_needs_person", "Only a person can connect their account.")
    return integration


async def start_user_connection(
    session: AsyncSession, actor: Actor, integration_id: uuid.UUID, *, redirect_uri: str, settings: Settings
) -> str:
    """The authorization URL to send the person to (code flow with PKCE; see ``oauth`` for the state)."""
    integration = await _user_integration(session, actor, integration_id)
    assert actor.user_id is not None
    verifier, challenge = oauth.pkce_pair()
    flow = oauth.PendingFlow(integration.id, actor.account_id, actor.user_id, verifier, redirect_uri)
    params = {
        "response_type": "code",
        "client_id": str(integration.auth_settings.get("client_id") or ""),
        "redirect_uri": redirect_uri,
        "state": oauth.seal_state(flow, _secret_key(settings)),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    scope = str(integration.auth_settings.get("scope") or "")
    if scope:
        params["scope"] = scope
    base = str(integration.auth_settings.get("authorize_url") or "")
    return base + ("&" if "?" in base else "?") + urlencode(params)


async def finish_user_connection(
    session: AsyncSession, actor: Actor, state: str, code: str, *, settings: Settings
) -> Integration:
    """Exchange the code for the person's tokens and keep them (encrypted)."""
    key = _secret_key(settings)
    flow = oauth.open_state(state, key)
    if flow is None or flow.account_id != actor.account_id or flow.user_id != actor.user_id:
        raise InvalidInput(
            "invalid_oauth_state", "The sign-in link has expired or is not yours; start again."
        )
    integration = await _user_integration(session, actor, flow.integration_id)
    secret = secrets.decrypt(integration.secret_encrypted, key) if integration.secret_encrypted else None
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier}  # fmt: skip
    try:
        body = await oauth.request_token(
            integration, form, client_secret=secret, allow_private=settings.allow_private_upstreams
        )
    except IntegrationFailure as failure:
        raise Conflict("oauth_exchange_failed", failure.message) from None
    row = await repository.token(session, actor.account_id, integration.id, actor.user_id)
    oauth.store_token(session, integration, body, user_id=actor.user_id, secret_key=key, row=row)
    await audit.record(session, actor, "integration.user_connected", target=integration_target(integration))
    await session.flush()
    return integration


async def disconnect_user(session: AsyncSession, actor: Actor, integration_id: uuid.UUID) -> None:
    """Forget the person's tokens for this integration."""
    integration = await _user_integration(session, actor, integration_id)
    await repository.drop_tokens(session, actor.account_id, integration.id, user_id=actor.user_id)
    await audit.record(
        session, actor, "integration.user_disconnected", target=integration_target(integration)
    )
    await session.flush()


async def user_connected(session: AsyncSession, actor: Actor, integration: Integration) -> bool:
    if actor.user_id is None or integration.auth_type is not AuthType.oauth2_user:
        return False
    return await repository.token(session, actor.account_id, integration.id, actor.user_id) is not None
