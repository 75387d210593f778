"""CONTROL → Notifications → Webhooks in the console: create (the secret shown once), edit, enable
and disable, rotate, delete, the delivery log, replay and test; CSRF and escaping. On both databases."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.jobs.worker import Worker
from cockpit.users.models import UserRole
from cockpit.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.builders import console_login, csrf_for, make_account, make_user
from tests.webhooks.conftest import Receiver

HOSTILE = "<script>alert(1)</script>"


async def signed_in(db: AsyncSession, client: AsyncClient, role: UserRole = UserRole.admin) -> uuid.UUID:
    account, _ = await make_account(db)
    user = await make_user(db, account, role=role)
    await console_login(client, user.email)
    return account.id


async def test_an_admin_manages_an_endpoint_in_the_console(
    db: AsyncSession, hook_client: AsyncClient, receiver: Receiver, make_worker: Callable[..., Worker]
) -> None:
    await signed_in(db, hook_client)
    page = await hook_client.get("/webhooks")
    assert page.status_code == 200
    assert "Add an endpoint" in page.text
    assert "Credit request filed" in page.text
    csrf = await csrf_for(hook_client, "/webhooks")

    refused = await hook_client.post("/webhooks", data={"url": receiver.url, "events": ["*"]})
    assert refused.status_code == 403  # no CSRF token

    bad = await hook_client.post(
        "/webhooks", data={"url": "http://169.254.169.254/", "events": ["*"], "csrf_token": csrf}
    )
    assert bad.status_code == 422
    assert "link-local" in bad.text

    created = await hook_client.post(
        "/webhooks",
        data={
            "url": receiver.url,
            "events": ["credit_request.created", "cycle.reset"],
            "description": HOSTILE,
            "csrf_token": csrf,
        },
    )
    assert created.status_code == 201, created.text
    secret = re.search(r'data-testid="signing-secret">(whsec_[^<]+)<', created.text)
    assert secret is not None
    receiver.secrets.append(secret.group(1))
    assert HOSTILE not in created.text
    assert "&lt;script&gt;" in created.text
    endpoint = await db.scalar(select(WebhookEndpoint))
    assert endpoint is not None
    url = f"/webhooks/{endpoint.id}"

    shown = await hook_client.get(url)
    assert secret.group(1) not in shown.text
    assert "whsec_" not in shown.text
    listed = await hook_client.get("/webhooks")
    assert receiver.url in listed.text
    assert secret.group(1) not in listed.text

    form = {"url": receiver.url, "events": ["cycle.reset"], "description": "Ops", "csrf_token": csrf}
    saved = await hook_client.post(url, data=form)
    assert saved.status_code == 303
    assert (await hook_client.post(f"{url}/disable", data={"csrf_token": csrf})).status_code == 303
    assert "Enable again" in (await hook_client.get(url)).text
    assert (await hook_client.post(f"{url}/enable", data={"csrf_token": csrf})).status_code == 303

    sent = await hook_client.post(f"{url}/test", data={"csrf_token": csrf})
    assert sent.status_code == 303
    await make_worker().run_until_idle()
    delivery = await db.scalar(select(WebhookDelivery))
    assert delivery is not None
    detail = await hook_client.get(f"{url}/deliveries/{delivery.id}")
    assert detail.status_code == 200
    assert "webhook-signature" in detail.text
    assert delivery.message_id in detail.text
    assert "HTTP 204" in detail.text
    assert receiver.received[0].verified

    replayed = await hook_client.post(f"{url}/deliveries/{delivery.id}/replay", data={"csrf_token": csrf})
    assert replayed.status_code == 303
    await make_worker().run_until_idle()
    assert len(receiver.verified()) == 2
    log = await hook_client.get(f"{url}?status=succeeded")
    assert log.status_code == 200
    assert 'data-testid="delivery-row"' in log.text

    rotated = await hook_client.post(f"{url}/rotate", data={"csrf_token": csrf})
    new_secret = re.search(r'data-testid="signing-secret">(whsec_[^<]+)<', rotated.text)
    assert new_secret is not None
    assert new_secret.group(1) != secret.group(1)

    deleted = await hook_client.post(f"{url}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 303
    assert (await hook_client.get(url)).status_code == 404


async def test_members_cannot_open_the_page_and_other_accounts_endpoints_are_not_found(
    db: AsyncSession, hook_client: AsyncClient, receiver: Receiver
) -> None:
    other, _ = await make_account(db, name="Globex")
    endpoint = WebhookEndpoint(account_id=other.id, url=receiver.url, events=["*"], secret_encrypted="x",
                               enabled=True, consecutive_failures=0, description="")  # fmt: skip
    db.add(endpoint)
    await db.commit()
    await signed_in(db, hook_client, UserRole.member)
    assert (await hook_client.get("/webhooks")).status_code == 403
    await hook_client.post("/logout", data={"csrf_token": await csrf_for(hook_client, "/")})
    hook_client.cookies.clear()
    await signed_in(db, hook_client)
    assert (await hook_client.get(f"/webhooks/{endpoint.id}")).status_code == 404
    assert (await hook_client.get("/webhooks/not-an-id")).status_code == 404
    csrf = await csrf_for(hook_client, "/webhooks")
    assert (
        await hook_client.post(f"/webhooks/{endpoint.id}/delete", data={"csrf_token": csrf})
    ).status_code == 404
