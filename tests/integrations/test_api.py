"""Integrations over the REST API (/api/v1/integrations), on both databases."""

from __future__ import annotations

import json
import uuid
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.config import Settings
from cockpit.integrations import client as runtime
from cockpit.integrations import service
from cockpit.integrations.models import Integration, IntegrationToken
from cockpit.users.models import UserRole
from tests.builders import bearer, make_account, make_token, make_user
from tests.integrations import servers
from tests.integrations.conftest import Upstreams

API = "/api/v1/integrations"
SECRET = "sk-integration-secret-QRST"


class Org:
    def __init__(self, account_id: uuid.UUID, admin: dict[str, str], member: dict[str, str]) -> None:
        self.id, self.admin, self.member = account_id, admin, member


async def org(db: AsyncSession, name: str = "Acme") -> Org:
    account, _ = await make_account(db, name=name)
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, role=UserRole.member)
    return Org(account.id, bearer(await make_token(db, admin)), bearer(await make_token(db, member)))


def code(response: Response) -> str:
    return str(response.json()["error"]["code"])


async def audit_rows(db: AsyncSession, account_id: uuid.UUID) -> list[AuditEntry]:
    await db.commit()
    rows = list(
        await db.scalars(
            select(AuditEntry)
            .where(AuditEntry.account_id == account_id)
            .order_by(AuditEntry.seq)
            .execution_options(populate_existing=True)
        )
    )
    await db.commit()
    return rows


def mcp_body(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "Tools Server", "kind": "mcp", "url": url} | extra


async def test_crud_with_audit_and_masked_secret(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams
) -> None:
    acme = await org(db)
    body = mcp_body(upstreams.secure, auth={"type": "bearer", "token": SECRET}, price_credits="0.125")
    created = await private_client.post(API, json=body, headers=acme.admin)
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["slug"] == "tools-server"
    assert item["transport"] == "streamable_http"
    assert item["has_secret"] is True
    assert item["secret_last4"] == "QRST"
    assert item["price_credits"] == "0.125000"

    renamed = await private_client.patch(
        f"{API}/{item['id']}", json={"name": "Renamed", "enabled": False}, headers=acme.admin
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Renamed"
    assert renamed.json()["has_secret"] is True
    # auth sent again without the token: the stored one is kept
    kept = await private_client.patch(
        f"{API}/{item['id']}", json={"auth": {"type": "bearer"}}, headers=acme.admin
    )
    assert kept.status_code == 200
    assert kept.json()["secret_last4"] == "QRST"

    listed = await private_client.get(API, headers=acme.member)  # members may read the catalogue
    assert [i["name"] for i in listed.json()["items"]] == ["Renamed"]
    assert (await private_client.get(API, params={"enabled": "true"}, headers=acme.admin)).json()[
        "items"
    ] == []
    assert (await private_client.get(API, params={"search": "renam"}, headers=acme.admin)).json()["meta"][
        "total"
    ] == 1
    assert (
        await private_client.post(API, json=mcp_body(upstreams.mcp), headers=acme.member)
    ).status_code == 403

    responses = [
        created,
        renamed,
        kept,
        listed,
        await private_client.get(f"{API}/{item['id']}", headers=acme.admin),
        await private_client.get("/api/v1/audit", headers=acme.admin),
    ]
    for response in responses:
        assert SECRET not in response.text
    deleted = await private_client.delete(f"{API}/{item['id']}", headers=acme.admin)
    assert deleted.status_code == 200
    assert (await private_client.get(f"{API}/{item['id']}", headers=acme.admin)).status_code == 404

    entries = await audit_rows(db, acme.id)
    actions = [e.action for e in entries]
    assert actions[-3:] == ["integration.created", "integration.updated", "integration.deleted"]
    assert all(SECRET not in json.dumps([e.before, e.after]) for e in entries)
    assert entries[-3].after is not None
    assert entries[-3].after["has_secret"] is True


async def test_another_accounts_integration_is_not_found(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams
) -> None:
    acme, other = await org(db), await org(db, "Other")
    item = (await private_client.post(API, json=mcp_body(upstreams.mcp), headers=acme.admin)).json()
    for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/test"), ("GET", "/tools")):
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
        response = await private_client.request(
            method, f"{API}/{item['id']}{path}", headers=other.admin, **kwargs
        )
        assert response.status_code == 404, (method, path, response.text)
    assert (await private_client.get(API, headers=other.admin)).json()["items"] == []


async def test_forbidden_urls_and_stdio_are_refused(client: AsyncClient, db: AsyncSession) -> None:
    acme = await org(db)
    for url in (
        "http://169.254.169.254/latest",
        "file:///etc/passwd",
        "http://127.0.0.1:8080/mcp",
        "gopher://x",
    ):
        response = await client.post(API, json=mcp_body(url), headers=acme.admin)
        assert response.status_code == 422, (url, response.text)
        assert code(response) == "invalid_url"
    stdio = await client.post(API, json=mcp_body("python server.py", transport="stdio"), headers=acme.admin)
    assert stdio.status_code == 422
    assert code(stdio) == "stdio_not_allowed"
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(Integration)) == 0


async def test_hostile_and_bad_values_are_refused(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams
) -> None:
    acme = await org(db)
    bad = [
        mcp_body(upstreams.mcp, name="bad\x00name"),
        mcp_body(upstreams.mcp, description="lone \ud800 surrogate"),
        mcp_body(upstreams.mcp, auth={"type": "bearer", "token": "tok\x00en"}),
        mcp_body(upstreams.mcp, slug="Not A Slug"),
        mcp_body(upstreams.mcp, timeout_seconds=0),
        mcp_body(upstreams.mcp, price_credits="-1"),
        mcp_body(upstreams.mcp, price_credits="0.0000001"),
        mcp_body(upstreams.mcp, auth={"type": "bearer"}),
        mcp_body(upstreams.mcp, auth={"type": "api_key", "in": "cookie", "name": "k", "value": "v"}),
        mcp_body(upstreams.mcp, name="x" * 101),
        {"name": "Pets", "kind": "openapi", "url": upstreams.api},
        {"name": "Pets", "kind": "openapi", "url": upstreams.api, "openapi_document": {"swagger": "2.0"}},
    ]
    for body in bad:
        raw = json.dumps(body)  # the escapes \u0000 and \ud800 as a client sends them
        response = await private_client.post(
            API, content=raw, headers=acme.admin | {"content-type": "application/json"}
        )
        hostile = "\x00" in raw or "\\u0000" in raw or "\\ud800" in raw
        # Unstorable text is refused by the app's request guard before any route (400 invalid_text).
        expected = (400, "invalid_text") if hostile else (422, None)
        assert response.status_code == expected[0], (body, response.text)
        assert expected[1] is None or code(response) == expected[1]
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(Integration)) == 0


async def test_test_connection_lists_tools_or_says_what_failed(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams
) -> None:
    acme = await org(db)
    good = (await private_client.post(API, json=mcp_body(upstreams.mcp), headers=acme.admin)).json()
    tested = await private_client.post(f"{API}/{good['id']}/test", headers=acme.admin)
    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is True
    assert tested.json()["message"] == "Connected: 4 tools"
    tools = await private_client.get(f"{API}/{good['id']}/tools", headers=acme.member)
    assert {t["name"] for t in tools.json()["items"]} == {"add", "boom", "hang", "huge"}
    shown = (await private_client.get(f"{API}/{good['id']}", headers=acme.admin)).json()
    assert shown["last_test_ok"] is True
    assert len(shown["tools"]) == 4

    wrong = mcp_body(upstreams.secure, name="Secure", auth={"type": "bearer", "token": "wrong-token-1234"})
    secure = (await private_client.post(API, json=wrong, headers=acme.admin)).json()
    refused = (await private_client.post(f"{API}/{secure['id']}/test", headers=acme.admin)).json()
    assert refused["ok"] is False
    assert "401" in refused["message"]
    assert "wrong-token" not in refused["message"]

    closed = (
        await private_client.post(
            API, json=mcp_body("http://127.0.0.1:9/mcp", name="Closed"), headers=acme.admin
        )
    ).json()
    failed = (await private_client.post(f"{API}/{closed['id']}/test", headers=acme.admin)).json()
    assert failed["ok"] is False
    assert "refused" in failed["message"]

    doc = {
        "name": "Pets",
        "kind": "openapi",
        "url": upstreams.api,
        "openapi_document": servers.OPENAPI_DOCUMENT,
        "auth": {"type": "api_key", "in": "header", "name": "x-api-key", "value": servers.API_KEY},
    }
    pets = await private_client.post(API, json=doc, headers=acme.admin)
    assert pets.status_code == 201, pets.text
    assert pets.json()["transport"] == "http"
    listed = (await private_client.post(f"{API}/{pets.json()['id']}/test", headers=acme.admin)).json()
    assert listed["ok"] is True
    assert {t["name"] for t in listed["tools"]} == {"getPet", "post_pets", "big"}


async def test_client_credentials_token_is_fetched_once_and_reused(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams, private_app: Any
) -> None:
    acme = await org(db)
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": upstreams.cc + "/token",
        "client_id": "cockpit",
        "client_secret": servers.CLIENT_SECRET,
        "scope": "tools",
    }
    created = await private_client.post(
        API, json=mcp_body(upstreams.cc + "/mcp", auth=auth), headers=acme.admin
    )
    assert created.status_code == 201, created.text
    # Creating it listed its tools, with a token fetched for that.
    assert created.json()["last_test_ok"] is True, created.json()
    assert len(created.json()["tools"]) > 0
    before = upstreams.tokens.issued
    first = (await private_client.post(f"{API}/{created.json()['id']}/test", headers=acme.admin)).json()
    second = (await private_client.post(f"{API}/{created.json()['id']}/test", headers=acme.admin)).json()
    assert first["ok"], first
    assert second["ok"], second
    assert upstreams.tokens.issued == before  # the token fetched at creation is reused
    await db.commit()
    row = await db.scalar(select(IntegrationToken))
    assert row is not None
    assert row.user_id is None
    assert servers.CC_TOKEN not in row.access_encrypted

    # The agent runner's path: a connection, then a call.
    settings: Settings = private_app.state.settings
    integration = await db.get(Integration, uuid.UUID(created.json()["id"]))
    assert integration is not None
    conn = await service.connection(db, integration, user_id=None, settings=settings)
    outcome = await runtime.call_tool(conn, "add", {"a": 1, "b": 2})
    assert outcome.ok
    assert outcome.text == "3"
    assert upstreams.tokens.issued == before  # still the same token
    await db.rollback()


async def test_user_oauth_needs_a_connected_account(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams, private_app: Any
) -> None:
    acme = await org(db)
    auth = {
        "type": "oauth2_user",
        "authorize_url": "https://auth.example.com/authorize",
        "token_url": upstreams.cc + "/token",
        "client_id": "cockpit",
    }
    created = await private_client.post(
        API, json=mcp_body(upstreams.cc + "/mcp", auth=auth), headers=acme.admin
    )
    assert created.status_code == 201, created.text
    tested = (await private_client.post(f"{API}/{created.json()['id']}/test", headers=acme.admin)).json()
    assert tested["ok"] is False
    assert "Connect your account" in tested["message"]
    start = await private_client.get(f"{API}/{created.json()['id']}/oauth/connect", headers=acme.member)
    assert start.status_code == 303
    location = start.headers["location"]
    assert location.startswith("https://auth.example.com/authorize?")
    assert "code_challenge_method=S256" in location
    # The person comes back to the console (their browser has no API token): sent on, unchanged.
    assert "redirect_uri=http%3A%2F%2Ftestserver%2Fintegrations%2Foauth%2Fcallback" in location
    forwarded = await private_client.get(f"{API}/oauth/callback", params={"state": "s", "code": "c"})
    assert forwarded.status_code == 303
    assert forwarded.headers["location"] == "/integrations/oauth/callback?state=s&code=c"


async def test_openapi_document_is_fetched_from_its_url(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams, private_app: Any
) -> None:
    acme = await org(db)
    auth = {"type": "api_key", "in": "header", "name": "x-api-key", "value": servers.API_KEY}
    body = {"name": "Pets", "kind": "openapi", "url": upstreams.api + "/openapi.json", "auth": auth}
    created = await private_client.post(API, json=body, headers=acme.admin)
    assert created.status_code == 201, created.text
    item = created.json()
    # The document's server ("/v1") resolved against where the document was served.
    assert item["url"] == upstreams.api + "/v1"
    assert item["has_openapi_document"] is True
    await db.commit()
    stored = await db.get(Integration, uuid.UUID(item["id"]))
    assert stored is not None
    assert stored.openapi_document is not None
    assert set(stored.openapi_document["paths"]) == set(servers.OPENAPI_DOCUMENT["paths"])
    assert stored.openapi_document["servers"][0]["url"] == upstreams.api + "/v1"
    await db.commit()

    tested = (await private_client.post(f"{API}/{item['id']}/test", headers=acme.admin)).json()
    assert tested["ok"] is True, tested
    assert {t["name"] for t in tested["tools"]} == {"getPet", "post_pets", "big"}
    integration = await db.get(Integration, uuid.UUID(item["id"]))
    assert integration is not None
    conn = await service.connection(db, integration, user_id=None, settings=private_app.state.settings)
    outcome = await runtime.call_tool(conn, "getPet", {"pet_id": "12"})
    assert outcome.ok, outcome
    assert '"id":"12"' in outcome.text
    await db.rollback()


async def test_openapi_document_urls_that_cannot_be_used(
    private_client: AsyncClient, client: AsyncClient, db: AsyncSession, upstreams: Upstreams
) -> None:
    acme = await org(db)
    cases = {
        upstreams.api + "/openapi.yaml": "YAML",
        upstreams.api + "/huge.json": "larger than 2 MiB",
        upstreams.api + "/v1": "not valid JSON",
        upstreams.api + "/nowhere.json": "HTTP 404",
        "http://127.0.0.1:9/openapi.json": "cannot be reached",
        "http://169.254.169.254/openapi.json": "link-local",
    }
    for url, expected in cases.items():
        body = {"name": "Pets", "kind": "openapi", "url": url}
        response = await private_client.post(API, json=body, headers=acme.admin)
        assert response.status_code == 422, (url, response.text)
        assert expected in response.json()["error"]["message"], (url, response.text)
    # Without COCKPIT_ALLOW_PRIVATE_UPSTREAMS the local document is not even fetched.
    body = {"name": "Pets", "kind": "openapi", "url": upstreams.api + "/openapi.json"}
    refused = await client.post(API, json=body, headers=acme.admin)
    assert refused.status_code == 422
    assert code(refused) == "invalid_url"
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(Integration)) == 0
