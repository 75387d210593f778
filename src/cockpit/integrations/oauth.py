"""OAuth 2.0 for integrations: client-credentials tokens fetched and cached, per-person tokens from
the authorization code flow with PKCE, refreshed when they expire.

Tokens are kept encrypted in ``integration_tokens`` (the integration's own: ``user_id`` NULL).

The authorization flow keeps no row while it is under way: its ``state`` parameter *is* the pending
flow — integration, person, PKCE verifier, redirect URI and expiry, encrypted with the secret key
(Fernet: authenticated, so it cannot be forged or read by the browser that carries it), valid for
``STATE_TTL_SECONDS``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as pysecrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.integrations import repository
from cockpit.integrations.client import IntegrationFailure, tls_context
from cockpit.integrations.models import Integration, IntegrationToken
from cockpit.kit import secrets
from cockpit.kit.time import utcnow
from cockpit.kit.urls import check_upstream_url_async

STATE_TTL_SECONDS = 600
EXPIRY_MARGIN_SECONDS = 30  # a token this close to expiry is refreshed before use
DEFAULT_LIFETIME_SECONDS = 3600  # when the server does not say (expires_in)
TOKEN_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class PendingFlow:
    integration_id: uuid.UUID
    account_id: uuid.UUID
    user_id: uuid.UUID
    verifier: str
    redirect_uri: str


def pkce_pair() -> tuple[str, str]:
    verifier = pysecrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def seal_state(flow: PendingFlow, secret_key: str) -> str:
    payload = {
        "i": str(flow.integration_id),
        "a": str(flow.account_id),
        "u": str(flow.user_id),
        "v": flow.verifier,
        "r": flow.redirect_uri,
        "e": int(utcnow().timestamp()) + STATE_TTL_SECONDS,
    }
    return secrets.encrypt(json.dumps(payload), secret_key)


def open_state(state: str, secret_key: str) -> PendingFlow | None:
    """The pending flow, or None when the state is forged, damaged or expired."""
    try:
        payload = json.loads(secrets.decrypt(state, secret_key))
        if int(payload["e"]) < utcnow().timestamp():
            return None
        return PendingFlow(
            uuid.UUID(payload["i"]),
            uuid.UUID(payload["a"]),
            uuid.UUID(payload["u"]),
            payload["v"],
            payload["r"],
        )
    except (ValueError, KeyError, TypeError):
        return None


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        from datetime import UTC

        return value.replace(tzinfo=UTC)
    return value


async def request_token(
    integration: Integration, form: dict[str, str], *, client_secret: str | None, allow_private: bool
) -> dict[str, Any]:
    """POST the form to the token endpoint (client_secret_post); the JSON answer or IntegrationFailure."""
    token_url = str(integration.auth_settings.get("token_url") or "")
    try:
        await check_upstream_url_async(token_url, allow_private=allow_private)
    except Exception as exc:  # InvalidInput: the address is not allowed
        raise IntegrationFailure("refused", f"The token URL cannot be used: {exc}") from None
    data = dict(form, client_id=str(integration.auth_settings.get("client_id") or ""))
    if client_secret:
        data["client_secret"] = client_secret
    try:
        async with httpx.AsyncClient(
            timeout=TOKEN_TIMEOUT_SECONDS, follow_redirects=False, verify=tls_context()
        ) as http:
            response = await http.post(token_url, data=data, headers={"accept": "application/json"})
    except httpx.TimeoutException:
        raise IntegrationFailure("timeout", "The token endpoint did not answer in time.") from None
    except httpx.HTTPError:
        raise IntegrationFailure("refused", "The token endpoint cannot be reached.") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if (
        response.status_code >= 400
        or not isinstance(body, dict)
        or not isinstance(body.get("access_token"), str)
    ):
        detail = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else ""
        suffix = f" ({detail[:100]})" if detail else ""
        raise IntegrationFailure(
            "unauthorized", f"The token endpoint refused the request: HTTP {response.status_code}{suffix}."
        )
    return body


def store_token(
    session: AsyncSession,
    integration: Integration,
    body: dict[str, Any],
    *,
    user_id: uuid.UUID | None,
    secret_key: str,
    row: IntegrationToken | None,
) -> IntegrationToken:
    lifetime = body.get("expires_in")
    seconds = (
        int(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else DEFAULT_LIFETIME_SECONDS
    )
    refresh = body.get("refresh_token")
    if row is None:
        row = IntegrationToken(
            id=uuid.uuid4(), account_id=integration.account_id, integration_id=integration.id, user_id=user_id
        )
        session.add(row)
    row.access_encrypted = secrets.encrypt(str(body["access_token"]), secret_key)
    if isinstance(refresh, str) and refresh:
        row.refresh_encrypted = secrets.encrypt(refresh, secret_key)
    row.expires_at = utcnow() + timedelta(seconds=seconds)
    row.scope = str(body.get("scope") or integration.auth_settings.get("scope") or "")[:1000]
    return row


def _fresh(row: IntegrationToken) -> bool:
    expires = _aware(row.expires_at)
    return expires is None or expires - timedelta(seconds=EXPIRY_MARGIN_SECONDS) > utcnow()


async def client_credentials_token(
    session: AsyncSession,
    integration: Integration,
    *,
    client_secret: str | None,
    secret_key: str,
    allow_private: bool,
) -> str:
    """The integration's cached token, or a new one fetched and cached (encrypted)."""
    row = await repository.token(session, integration.account_id, integration.id, None)
    if row is not None and _fresh(row):
        try:
            return secrets.decrypt(row.access_encrypted, secret_key)
        except ValueError:
            pass  # the secret key changed: fetch a new token
    form = {"grant_type": "client_credentials"}
    scope = str(integration.auth_settings.get("scope") or "")
    if scope:
        form["scope"] = scope
    body = await request_token(integration, form, client_secret=client_secret, allow_private=allow_private)
    store_token(session, integration, body, user_id=None, secret_key=secret_key, row=row)
    await session.flush()
    return str(body["access_token"])


async def user_token(
    session: AsyncSession,
    integration: Integration,
    user_id: uuid.UUID | None,
    *,
    client_secret: str | None,
    secret_key: str,
    allow_private: bool,
) -> str:
    """This person's token, refreshed when it has expired; IntegrationFailure when there is none."""
    row = (
        None
        if user_id is None
        else await repository.token(session, integration.account_id, integration.id, user_id)
    )
    if row is None:
        raise IntegrationFailure(
            "unauthorized", f"Connect your account to {integration.name} first (Integrations page)."
        )
    if _fresh(row):
        try:
            return secrets.decrypt(row.access_encrypted, secret_key)
        except ValueError:
            pass
    refresh = None
    if row.refresh_encrypted:
        try:
            refresh = secrets.decrypt(row.refresh_encrypted, secret_key)
        except ValueError:
            refresh = None
    if refresh is None:
        raise IntegrationFailure(
            "unauthorized", f"Your connection to {integration.name} has expired: connect your account again."
        )
    try:
        body = await request_token(
            integration,
            {"grant_type": "refresh_token", "refresh_token": refresh},
            client_secret=client_secret,
            allow_private=allow_private,
        )
    except IntegrationFailure as failure:
        if failure.kind != "unauthorized":
            raise  # unreachable or slow: the connection may still be good, try again later
        # Refused (revoked, expired, the client changed): the tokens are worth nothing any more, and
        # the Integrations page offers to connect again.
        await session.delete(row)
        await session.flush()
        raise IntegrationFailure(
            "unauthorized",
            f"{integration.name} refused to renew your connection (it was revoked or has expired): "
            "connect your account again (Integrations page).",
        ) from None
    store_token(session, integration, body, user_id=user_id, secret_key=secret_key, row=row)
    await session.flush()
    return str(body["access_token"])
