"""The webhooks REST API (/api/v1/webhooks): administration, secrets shown once, audit, tenancy,
the SSRF rules at save, hostile input. On SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.webhooks.models import WebhookEndpoint
from tests.webhooks.conftest import API, Receiver, add_endpoint, make_org

_REAL_GETADDRINFO = socket.getaddrinfo


def fake_dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, str]) -> None:
    """Host names resolving where the test says (e.g. to a private 10.x address)."""

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port or 80))]
        return _REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


async def audit_text(db: AsyncSession, account_id: uuid.UUID) -> tuple[list[str], str]:
    await db.commit()
    rows = list(
        await db.scalars(
            select(AuditEntry).where(AuditEntry.account_id == account_id).order_by(AuditEntry.seq)
        )
    )
    rows = [r for r in rows if r.action.startswith("webhook.")]
    return [r.action for r in rows], " ".join(f"{r.before} {r.after} {r.target_label}" for r in rows)


async def test_the_secret_is_shown_once_and_never_audited(
    db: AsyncSession, hook_client: AsyncClient, receiver: Receiver
) -> None:
    acme = await make_org(db)
    created = await add_endpoint(
        hook_client, acme, receiver, events=["credit_request.created", "cycle.reset"], description="Orders"
    )
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    assert created["events"] == ["credit_request.created", "cycle.reset"]
    assert created["enabled"] is True

    stored = await db.get(WebhookEndpoint, uuid.UUID(created["id"]))
    assert stored is not None
    assert secret not in stored.secret_encrypted
    assert "whsec_" not in stored.secret_encrypted

    rotated = (await hook_client.post(f"{API}/{created['id']}/rotate-secret", headers=acme.admin)).json()
    responses = [
        await hook_client.get(API, headers=acme.admin),
        await hook_client.get(f"{API}/{created['id']}", headers=acme.admin),
        await hook_client.patch(f"{API}/{created['id']}", json={"description": "x"}, headers=acme.admin),
        await hook_client.get(f"{API}/{created['id']}/deliveries", headers=acme.admin),
        await hook_client.post(f"{API}/{created['id']}/test", headers=acme.admin),
    ]
    for response in responses:
        assert response.status_code < 300, response.text
        assert "whsec_" not in response.text
        assert 'secret"' not in response.text
    actions, text = await audit_text(db, acme.id)
    assert actions == ["webhook.created", "webhook.secret_rotated", "webhook.changed", "webhook.test_sent"]
    assert secret not in text
    assert rotated["secret"] not in text
    assert "whsec_" not in text


async def test_update_disable_enable_and_delete(
    db: AsyncSession, hook_client: AsyncClient, receiver: Receiver
) -> None:
    acme = await make_org(db)
    created = await add_endpoint(hook_client, acme, receiver)
    url = f"{API}/{created['id']}"
    body = {"events": ["policy.changed", "cycle.reset"], "enabled": False}
    changed = await hook_client.patch(url, json=body, headers=acme.admin)
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["cycle.reset", "policy.changed"]  # the catalogue's order
    assert changed.json()["enabled"] is False
    assert changed.json()["disabled_reason"]
    replay = await hook_client.post(f"{url}/deliveries/{uuid.uuid4()}/replay", headers=acme.admin)
    assert replay.status_code == 409
    enabled = await hook_client.patch(url, json={"enabled": True}, headers=acme.admin)
    assert enabled.json()["enabled"] is True
    assert enabled.json()["disabled_reason"] is None
    assert (await hook_client.delete(url, headers=acme.admin)).json() == {
        "id": created["id"],
        "deleted": True,
    }
    assert (await hook_client.get(url, headers=acme.admin)).status_code == 404
    actions, _ = await audit_text(db, acme.id)
    assert actions == ["webhook.created", "webhook.changed", "webhook.changed", "webhook.deleted"]


async def test_members_may_not_and_another_accounts_endpoint_is_not_found(
    db: AsyncSession, hook_client: AsyncClient, receiver: Receiver
) -> None:
    acme = await make_org(db)
    other = await make_org(db, "Globex")
    created = await add_endpoint(hook_client, acme, receiver)
    sent = await hook_client.post(f"{API}/{created['id']}/test", headers=acme.admin)
    delivery = sent.json()["id"]
    assert (await hook_client.get(API, headers=acme.member)).status_code == 403
    assert (
        await hook_client.post(API, json={"url": receiver.url, "events": ["*"]}, headers=acme.member)
    ).status_code == 403
    base = f"{API}/{created['id']}"
    calls = [
        ("GET", base, None), ("PATCH", base, {"enabled": False}), ("DELETE", base, None),
        ("POST", f"{base}/rotate-secret", None), ("GET", f"{base}/deliveries", None),
        ("GET", f"{base}/deliveries/{delivery}", None),
        ("POST", f"{base}/deliveries/{delivery}/replay", None), ("POST", f"{base}/test", None),
    ]  # fmt: skip
    for method, url, body in calls:
        response = await hook_client.request(method, url, json=body, headers=other.admin)
        assert response.status_code == 404, (method, url, response.text)
    assert (await hook_client.get(API, headers=other.admin)).json() == {"items": []}
    # A delivery of another endpoint (of the same account) is not found under this one.
    second = await add_endpoint(hook_client, acme, receiver)
    response = await hook_client.get(f"{API}/{second['id']}/deliveries/{delivery}", headers=acme.admin)
    assert response.status_code == 404


async def test_deliveries_are_paged_and_filtered(
    db: AsyncSession, hook_client: AsyncClient, receiver: Receiver
) -> None:
    acme = await make_org(db)
    created = await add_endpoint(hook_client, acme, receiver)
    for _ in range(3):
        await hook_client.post(f"{API}/{created['id']}/test", headers=acme.admin)
    page = await hook_client.get(f"{API}/{created['id']}/deliveries?per_page=2", headers=acme.admin)
    assert page.status_code == 200
    assert len(page.json()["items"]) == 2
    assert page.json()["meta"]["total"] == 3
    item = page.json()["items"][0]
    assert item["status"] == "pending"
    assert item["webhook_id"].startswith("msg_")
    assert item["event"] == "webhook.test"
    none = await hook_client.get(f"{API}/{created['id']}/deliveries?status=succeeded", headers=acme.admin)
    assert none.json()["items"] == []
    bad = await hook_client.get(f"{API}/{created['id']}/deliveries?status=bogus", headers=acme.admin)
    assert bad.status_code == 422
    detail = await hook_client.get(f"{API}/{created['id']}/deliveries/{item['id']}", headers=acme.admin)
    assert detail.json()["payload"]["type"] == "webhook.test"
    assert detail.json()["attempt_log"] == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/",
        "http://localhost/hook",
        "http://127.0.0.1:8080/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "file:///etc/passwd",
        "ftp://example.com/hook",
        "http://user:pass@example.com/hook",
        "http://internal.example.test/hook",
        "gopher://127.0.0.1/",
        "http:///nohost",
    ],
)
async def test_urls_refused_by_the_ssrf_rules(
    db: AsyncSession, client: AsyncClient, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    fake_dns(monkeypatch, {"internal.example.test": "10.1.2.3", "localhost": "127.0.0.1"})
    acme = await make_org(db)
    response = await client.post(API, json={"url": url, "events": ["*"]}, headers=acme.admin)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_url"
    assert "COCKPIT_ALLOW_PRIVATE_UPSTREAMS" not in response.text


async def test_metadata_is_refused_even_where_private_addresses_are_allowed(
    db: AsyncSession, hook_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"metadata.example.test": "169.254.169.254"})
    acme = await make_org(db)
    for url in ("http://169.254.169.254/", "http://metadata.example.test/", "http://100.100.100.200/"):
        response = await hook_client.post(API, json={"url": url, "events": ["*"]}, headers=acme.admin)
        assert response.status_code == 422, url


async def test_a_name_that_starts_resolving_to_a_private_address_is_refused_at_delivery(
    db: AsyncSession,
    client: AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    make_worker: Any,
    hook_settings: Any,
) -> None:
    names = {"hooks.example.test": "93.184.216.34"}  # public when saved
    fake_dns(monkeypatch, names)
    acme = await make_org(db)
    created = await client.post(
        API, json={"url": "http://hooks.example.test/in", "events": ["*"]}, headers=acme.admin
    )
    assert created.status_code == 201, created.text
    names["hooks.example.test"] = "10.0.0.7"  # DNS rebinding
    await client.post(f"{API}/{created.json()['id']}/test", headers=acme.admin)
    await make_worker(hook_settings.model_copy(update={"webhooks_allow_private": False})).run_until_idle()
    deliveries = (await client.get(f"{API}/{created.json()['id']}/deliveries", headers=acme.admin)).json()[
        "items"
    ]
    assert deliveries[0]["status"] == "dead"
    assert deliveries[0]["last_error"].startswith("Refused: The address 10.0.0.7 is private")


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://example.com/h", "events": []},
        {"url": "https://example.com/h", "events": ["no.such.event"]},
        {"url": "https://example.com/h", "events": ["credit_request.created"] * 101},
        {"url": "https://example.com/h", "events": ["*"], "description": "d" * 501},
        {"url": "https://example.com/h\r\nX-Injected: 1", "events": ["*"]},
        {"url": "https://example.com/\u0000", "events": ["*"]},
        {"url": "https://example.com/" + "a" * 2000, "events": ["*"]},
        {"url": "", "events": ["*"]},
        {"url": "https://example.com/h", "events": "*"},
        {"url": "https://example.com/h", "events": ["*"], "secret": "whsec_mine"},
        '{"url": "https://example.com/h", "events": ["*"], "description": "\\ud800"}',
        {"url": ["https://example.com/h"], "events": ["*"]},
    ],
)
async def test_hostile_input_is_refused(db: AsyncSession, client: AsyncClient, body: Any) -> None:
    acme = await make_org(db)
    if isinstance(body, str):  # a lone surrogate, as JSON escapes it
        headers = {**acme.admin, "content-type": "application/json"}
        response = await client.post(API, content=body.encode(), headers=headers)
    else:
        response = await client.post(API, json=body, headers=acme.admin)
    assert response.status_code in (400, 422), response.text
    assert (await client.get(API, headers=acme.admin)).json() == {"items": []}


async def test_bad_ids_are_not_found(db: AsyncSession, client: AsyncClient) -> None:
    acme = await make_org(db)
    assert (await client.get(f"{API}/not-a-uuid", headers=acme.admin)).status_code == 422
    assert (await client.get(f"{API}/{uuid.uuid4()}", headers=acme.admin)).status_code == 404
    assert (
        await client.get(f"{API}/{uuid.uuid4()}/deliveries/{uuid.uuid4()}", headers=acme.admin)
    ).status_code == 404
