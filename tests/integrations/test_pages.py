"""The Integrations console page: list (tools with their descriptions), add and edit (errors by their
fields, secrets never echoed), test, toggle, remove (naming the agents that use it); members see the
catalogue and connect their own account."""

from __future__ import annotations

import json

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent
from cockpit.users.models import UserRole
from tests.builders import console_login, csrf_for, make_account, make_user
from tests.integrations import servers
from tests.integrations.conftest import Upstreams
from tests.integrations.test_api import audit_rows

SECRET = "page-secret-token-ABCD"


async def test_add_test_toggle_and_remove(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams
) -> None:
    account, _ = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    await console_login(private_client, admin.email)
    page = await private_client.get("/integrations")
    assert page.status_code == 200
    assert "No integrations yet" in page.text
    csrf = await csrf_for(private_client, "/integrations")

    form = {"csrf_token": csrf, "name": "Tools", "kind": "mcp", "url": "http://169.254.169.254/",
            "auth_type": "bearer", "auth_token": SECRET}  # fmt: skip
    refused = await private_client.post("/integrations", data=form)
    assert refused.status_code == 422
    assert "link-local" in refused.text
    assert SECRET not in refused.text

    added = await private_client.post("/integrations", data=form | {"url": upstreams.mcp})
    assert added.status_code in (302, 303)
    listing = await private_client.get("/integrations")
    assert "Tools" in listing.text
    assert "••••ABCD" in listing.text
    assert SECRET not in listing.text
    integration_id = listing.text.split("/integrations/")[1].split("/")[0]

    tested = await private_client.post(f"/integrations/{integration_id}/test", data={"csrf_token": csrf})
    assert tested.status_code in (302, 303)
    after = await private_client.get("/integrations")
    assert "Connected: 4 tools" in after.text
    assert "connected" in after.text

    await private_client.post(f"/integrations/{integration_id}/toggle", data={"csrf_token": csrf})
    assert "disabled" in (await private_client.get("/integrations")).text
    await private_client.post(f"/integrations/{integration_id}/delete", data={"csrf_token": csrf})
    assert "No integrations yet" in (await private_client.get("/integrations")).text


async def _added(client: AsyncClient, form: dict[str, str]) -> str:
    added = await client.post("/integrations", data=form)
    assert added.status_code in (302, 303), added.text
    listing = await client.get("/integrations")
    row = listing.text.split(f'<td class="strong">{form["name"]}<div')[1]
    return row.split('href="/integrations/')[1].split("/")[0]


async def test_edit_form_keeps_the_secret_and_shows_errors_by_their_fields(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams
) -> None:
    account, _ = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    await console_login(private_client, admin.email)
    csrf = await csrf_for(private_client, "/integrations")
    form = {"csrf_token": csrf, "name": "Secure", "kind": "mcp", "url": upstreams.secure,
            "auth_type": "bearer", "auth_token": "wrong-token-WXYZ"}  # fmt: skip
    integration_id = await _added(private_client, form)

    page = await private_client.get(f"/integrations/{integration_id}/edit")
    assert page.status_code == 200
    assert 'value="Secure"' in page.text
    assert "••••WXYZ" in page.text
    assert "Leave blank to keep it" in page.text
    assert "wrong-token" not in page.text

    edit = {"csrf_token": csrf, "name": "Secure tools", "slug": "secure", "url": upstreams.secure,
            "transport": "streamable_http", "auth_type": "bearer", "auth_token": "",
            "timeout_seconds": "20", "price_credits": "0.5"}  # fmt: skip
    bad = await private_client.post(
        f"/integrations/{integration_id}/edit",
        data=edit | {"slug": "Not A Slug", "timeout_seconds": "0", "url": "http://169.254.169.254/"},
    )
    assert bad.status_code == 422
    assert 'data-testid="error-slug"' in bad.text
    assert 'data-testid="error-timeout_seconds"' in bad.text
    assert "A whole number of seconds from 1 to 300." in bad.text
    bad_url = await private_client.post(
        f"/integrations/{integration_id}/edit", data=edit | {"url": "http://169.254.169.254/"}
    )
    assert bad_url.status_code == 422
    assert 'data-testid="error-url"' in bad_url.text
    assert "link-local" in bad_url.text
    other_type = await private_client.post(
        f"/integrations/{integration_id}/edit", data=edit | {"auth_type": "basic", "auth_username": "me"}
    )
    assert other_type.status_code == 422
    assert 'data-testid="error-auth_password"' in other_type.text

    # Saved with the secret left blank: kept (the tools are still not reachable with it).
    saved = await private_client.post(f"/integrations/{integration_id}/edit", data=edit)
    assert saved.status_code == 303, saved.text
    listing = await private_client.get("/integrations")
    assert "Integration “Secure tools” saved." in listing.text
    assert "••••WXYZ" in listing.text
    # The right token typed in: now the test connection lists the tools, names and descriptions.
    saved = await private_client.post(
        f"/integrations/{integration_id}/edit", data=edit | {"auth_token": servers.SECURE_TOKEN}
    )
    assert saved.status_code == 303
    await private_client.post(f"/integrations/{integration_id}/test", data={"csrf_token": csrf})
    listing = await private_client.get("/integrations")
    assert "Connected: 4 tools" in listing.text
    assert '<code class="strong">add</code> — <span>Add two numbers.</span>' in listing.text
    assert "Input schema" in listing.text
    assert "&#34;properties&#34;" in listing.text or '"properties"' in listing.text

    entries = await audit_rows(db, account.id)
    updates = [e for e in entries if e.action == "integration.updated"]
    assert len(updates) == 2
    assert updates[0].after is not None
    assert updates[0].after["name"] == "Secure tools"
    assert updates[-1].after is not None
    assert updates[-1].after["secret"] == "changed"
    assert all(servers.SECURE_TOKEN not in json.dumps([e.before, e.after]) for e in entries)


async def test_removal_names_the_agents_that_use_it(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams
) -> None:
    account, _ = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    await console_login(private_client, admin.email)
    csrf = await csrf_for(private_client, "/integrations")
    base = {"csrf_token": csrf, "kind": "mcp", "url": upstreams.mcp, "auth_type": "none"}
    used_id = await _added(private_client, base | {"name": "Used"})
    await _added(private_client, base | {"name": "Unused"})
    db.add(Agent(account_id=account.id, name="Support bot", slug="support", integration_ids=[used_id]))
    await db.commit()

    page = await private_client.get("/integrations")
    dialog = page.text.split(f'id="remove-integration-{used_id}"')[1].split("</dialog>")[0]
    assert "1 agent uses it and will no longer be able to call its tools" in dialog
    assert "<li>Support bot</li>" in dialog
    assert page.text.count("No agent uses it.") == 1  # the other one

    removed = await private_client.post(f"/integrations/{used_id}/delete", data={"csrf_token": csrf})
    assert removed.status_code == 303
    assert "Integration “Used” removed." in (await private_client.get("/integrations")).text


async def test_members_see_the_catalogue_and_connect_their_account(
    private_client: AsyncClient, db: AsyncSession, upstreams: Upstreams
) -> None:
    account, _ = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, role=UserRole.member)
    await console_login(private_client, admin.email)
    csrf = await csrf_for(private_client, "/integrations")
    per_person = {"csrf_token": csrf, "name": "Per person", "kind": "mcp", "url": upstreams.oauth + "/mcp",
                  "auth_type": "oauth2_user", "auth_authorize_url": upstreams.oauth + "/authorize",
                  "auth_token_url": upstreams.oauth + "/token", "auth_client_id": "cockpit",
                  "auth_client_secret": servers.CLIENT_SECRET}  # fmt: skip
    integration_id = await _added(private_client, per_person)
    shared = {"csrf_token": csrf, "name": "Shared", "kind": "mcp", "url": upstreams.secure,
              "auth_type": "bearer", "auth_token": servers.SECURE_TOKEN}  # fmt: skip
    await _added(private_client, shared)
    await private_client.post("/logout", data={"csrf_token": csrf})
    private_client.cookies.clear()

    await console_login(private_client, member.email)
    page = await private_client.get("/integrations")
    assert page.status_code == 200
    assert "Per person" in page.text
    assert "Shared" in page.text
    assert page.text.count("Connect my account") == 1  # the shared one needs no sign-in
    assert "not connected" in page.text
    for hidden in ("Add integration", "Test connection", "/edit", "Remove integration", "••••"):
        assert hidden not in page.text
    csrf = await csrf_for(private_client, "/integrations")
    start = await private_client.post(f"/integrations/{integration_id}/connect", data={"csrf_token": csrf})
    assert start.status_code == 303
    assert start.headers["location"].startswith(upstreams.oauth + "/authorize?")
    for path, method in ((f"/integrations/{integration_id}/edit", "GET"), ("/integrations", "POST")):
        response = await private_client.request(
            method, path, data={"csrf_token": csrf} if method == "POST" else None
        )
        assert response.status_code in (403, 404), (path, response.status_code)
