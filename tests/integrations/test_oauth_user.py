"""Per-person OAuth 2.0 (authorization code with PKCE) from the console against a real authorization
server and an MCP server that wants its tokens: connect, call as that person, refresh, revocation,
disconnect. On both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.config import Settings
from cockpit.integrations import client as runtime
from cockpit.integrations import service
from cockpit.integrations.client import IntegrationFailure
from cockpit.integrations.models import Integration, IntegrationToken
from cockpit.kit.time import utcnow
from cockpit.users.models import User, UserRole
from tests.builders import bearer, console_login, csrf_for, make_account, make_token, make_user
from tests.integrations import servers
from tests.integrations.conftest import Upstreams

API = "/api/v1/integrations"


async def _create(client: AsyncClient, headers: dict[str, str], upstreams: Upstreams) -> str:
    auth = {
        "type": "oauth2_user",
        "authorize_url": upstreams.oauth + "/authorize",
        "token_url": upstreams.oauth + "/token",
        "client_id": "cockpit",
        "client_secret": servers.CLIENT_SECRET,
        "scope": "tools",
    }
    body = {"name": "Person Tools", "kind": "mcp", "url": upstreams.oauth + "/mcp", "auth": auth}
    created = await client.post(API, json=body, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _connect(client: AsyncClient, integration_id: str) -> httpx.Response:
    """Click "Connect my account", sign in at the service (it approves at once), come back."""
    csrf = await csrf_for(client, "/integrations")
    start = await client.post(f"/integrations/{integration_id}/connect", data={"csrf_token": csrf})
    assert start.status_code == 303, start.text
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(start.headers["location"])
    assert approved.status_code == 302, approved.text
    back = urlsplit(approved.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == "http://testserver/integrations/oauth/callback"
    assert set(parse_qs(back.query)) == {"code", "state"}
    return await client.get(f"{back.path}?{back.query}")


async def _token_row(db: AsyncSession, integration_id: str, user: User) -> IntegrationToken | None:
    await db.commit()
    return await db.scalar(
        select(IntegrationToken)
        .where(
            IntegrationToken.integration_id == uuid.UUID(integration_id), IntegrationToken.user_id == user.id
        )
        .execution_options(populate_existing=True)
    )


async def _call_as(
    db: AsyncSession, settings: Settings, integration_id: str, user: User
) -> runtime.ToolOutcome:
    """What an agent does for this person: a connection (token refreshed if need be), then a call."""
    integration = await db.get(Integration, uuid.UUID(integration_id), populate_existing=True)
    assert integration is not None
    try:
        conn = await service.connection(db, integration, user_id=user.id, settings=settings)
    finally:
        await db.commit()  # the refreshed (or dropped) tokens, as the runner's unit of work would
    return await runtime.call_tool(conn, "add", {"a": 2, "b": 3})


async def _expire(db: AsyncSession, integration_id: str, user: User) -> None:
    row = await _token_row(db, integration_id, user)
    assert row is not None
    row.expires_at = utcnow() - timedelta(minutes=5)
    await db.commit()


async def test_each_person_connects_calls_refreshes_and_disconnects(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams, private_app: Any
) -> None:
    settings: Settings = private_app.state.settings
    server = upstreams.auth_server
    account, _ = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    alice = await make_user(db, account, role=UserRole.member)
    bob = await make_user(db, account, role=UserRole.member)
    integration_id = await _create(private_client, bearer(await make_token(db, admin)), upstreams)

    await console_login(private_client, alice.email)
    page = await private_client.get("/integrations")
    assert page.status_code == 200
    assert "Connect my account" in page.text

    back = await _connect(private_client, integration_id)
    assert back.status_code == 303
    assert back.headers["location"] == "/integrations"
    shown = await private_client.get("/integrations")
    assert "Your account is connected to Person Tools." in shown.text
    assert "Connected" in shown.text
    assert "Disconnect" in shown.text
    assert "Connect my account" not in shown.text

    # Kept encrypted: neither token appears in the row.
    row = await _token_row(db, integration_id, alice)
    assert row is not None
    first_access = server.issued[-1]
    stored = f"{row.access_encrypted} {row.refresh_encrypted} {row.scope}"
    assert first_access not in stored
    assert row.refresh_encrypted is not None
    assert all(refresh not in stored for refresh in server.refresh)

    # Alice's agent calls the tool with Alice's token.
    outcome = await _call_as(db, settings, integration_id, alice)
    assert outcome.ok, outcome
    assert outcome.text == "5"
    assert server.seen[-1] == first_access

    # Bob has not connected.
    with pytest.raises(IntegrationFailure) as caught:
        await _call_as(db, settings, integration_id, bob)
    assert "Connect your account to Person Tools first" in caught.value.message

    # Expired: renewed with the refresh token, and the new access token is the one used.
    refreshed_before = server.refreshed
    await _expire(db, integration_id, alice)
    outcome = await _call_as(db, settings, integration_id, alice)
    assert outcome.ok, outcome
    assert server.refreshed == refreshed_before + 1
    assert server.seen[-1] == server.issued[-1] != first_access
    assert first_access not in server.valid  # the old one would have been refused

    # Disconnect: the tokens are gone, the page offers to connect again.
    csrf = await csrf_for(private_client, "/integrations")
    gone = await private_client.post(f"/integrations/{integration_id}/disconnect", data={"csrf_token": csrf})
    assert gone.status_code == 303
    assert await _token_row(db, integration_id, alice) is None
    again = await private_client.get("/integrations")
    assert "Your account is no longer connected to Person Tools." in again.text
    assert "Connect my account" in again.text
    with pytest.raises(IntegrationFailure) as caught:
        await _call_as(db, settings, integration_id, alice)
    assert "Connect your account" in caught.value.message

    # Connected again, then the service revokes the refresh token: a clear failure, tokens dropped.
    assert (await _connect(private_client, integration_id)).status_code == 303
    server.revoke_refresh_tokens()
    await _expire(db, integration_id, alice)
    with pytest.raises(IntegrationFailure) as caught:
        await _call_as(db, settings, integration_id, alice)
    assert caught.value.kind == "unauthorized"
    assert "connect your account again" in caught.value.message
    assert await _token_row(db, integration_id, alice) is None
    assert "Connect my account" in (await private_client.get("/integrations")).text


async def test_callback_failures_come_back_to_the_page(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams
) -> None:
    account, _ = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    alice = await make_user(db, account, role=UserRole.member)
    integration_id = await _create(private_client, bearer(await make_token(db, admin)), upstreams)
    await console_login(private_client, alice.email)

    refused = await private_client.get(
        "/integrations/oauth/callback", params={"error": "access_denied", "state": "x"}
    )
    assert refused.status_code == 303
    page = await private_client.get("/integrations")
    assert "Your account was not connected: the service said “access_denied”" in page.text

    forged = await private_client.get("/integrations/oauth/callback", params={"state": "forged", "code": "c"})
    assert forged.status_code == 303
    page = await private_client.get("/integrations")
    assert "The sign-in link has expired or is not yours" in page.text

    # A code the server never issued (or already used): the exchange fails, saying so.
    csrf = await csrf_for(private_client, "/integrations")
    start = await private_client.post(f"/integrations/{integration_id}/connect", data={"csrf_token": csrf})
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    bad = await private_client.get("/integrations/oauth/callback", params={"state": state, "code": "made-up"})
    assert bad.status_code == 303
    page = await private_client.get("/integrations")
    assert "Your account was not connected" in page.text
    assert "invalid_grant" in page.text
    assert await _token_row(db, integration_id, alice) is None

    # Signed out: the callback asks to sign in first, then comes back to it.
    await private_client.post("/logout", data={"csrf_token": await csrf_for(private_client, "/integrations")})
    private_client.cookies.clear()
    anonymous = await private_client.get("/integrations/oauth/callback", params={"state": state, "code": "c"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=/integrations/oauth/callback")
