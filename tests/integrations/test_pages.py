"""The Integrations console page: list, add (errors shown, secrets not echoed), test, toggle, remove."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.users.models import UserRole
from tests.builders import console_login, csrf_for, make_account, make_user
from tests.integrations.conftest import Upstreams

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


async def test_members_cannot_open_the_page(private_client: AsyncClient, db: AsyncSession) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account, role=UserRole.member)
    await console_login(private_client, member.email)
    response = await private_client.get("/integrations")
    assert response.status_code in (403, 404)
