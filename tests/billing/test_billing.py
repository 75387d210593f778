"""Billing (issue 17): a local server speaking Stripe's API, webhooks signed as Stripe signs them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.billing.models import BillingAccount, BillingEvent
from cockpit.config import Settings
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import EntryKind, LedgerEntry
from cockpit.tenancy.models import Account
from cockpit.users.models import UserRole
from tests.builders import bearer, make_token, make_user
from tests.credits.helpers import API, audit, org

SECRET = "whsec_test_secret"


@pytest.fixture
async def stripe_server(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[str]]:
    calls: list[str] = []

    async def customers(request: web.Request) -> web.Response:
        calls.append("customers")
        return web.json_response({"id": f"cus_{uuid.uuid4().hex[:10]}", "object": "customer"})

    async def checkout(request: web.Request) -> web.Response:
        form = await request.post()
        calls.append(f"checkout:{form.get('metadata[credits]')}:{form.get('mode')}")
        return web.json_response({"id": "cs_1", "object": "checkout.session", "url": "https://pay.test/cs_1"})

    async def portal(request: web.Request) -> web.Response:
        calls.append("portal")
        return web.json_response(
            {"id": "bps_1", "object": "billing_portal.session", "url": "https://pay.test/p"}
        )

    async def invoices(request: web.Request) -> web.Response:
        calls.append("invoices")
        data = [
            {
                "id": "in_1",
                "object": "invoice",
                "number": "A-1",
                "amount_due": 1000,
                "currency": "usd",
                "status": "paid",
                "created": 1,
                "hosted_invoice_url": "https://pay.test/in_1",
            }
        ]
        return web.json_response({"object": "list", "data": data, "has_more": False, "url": "/v1/invoices"})

    app = web.Application()
    app.router.add_post("/v1/customers", customers)
    app.router.add_post("/v1/checkout/sessions", checkout)
    app.router.add_post("/v1/billing_portal/sessions", portal)
    app.router.add_get("/v1/invoices", invoices)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setattr(settings, "stripe_secret_key", SecretStr("sk_test_local"))
    monkeypatch.setattr(settings, "stripe_webhook_secret", SecretStr(SECRET))
    monkeypatch.setattr(settings, "stripe_api_base", f"http://127.0.0.1:{port}")
    try:
        yield calls
    finally:
        await runner.cleanup()


def signed(event: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(event).encode()
    ts = int(time.time())
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, {"Stripe-Signature": f"t={ts},v1={mac}", "Content-Type": "application/json"}


def paid_event(
    account_id: uuid.UUID, customer: str, credits: int = 1000, eid: str = "evt_paid"
) -> dict[str, Any]:
    obj = {
        "id": "cs_1",
        "object": "checkout.session",
        "customer": customer,
        "payment_status": "paid",
        "amount_total": 1000,
        "currency": "usd",
        "metadata": {
            "account_id": str(account_id),
            "credits": str(credits),
            "price_cents": "1000",
            "currency": "usd",
        },
    }
    return {
        "id": eid,
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {"object": obj},
    }


def sub_event(customer: str, eid: str, created: int, plan: str, seats: int) -> dict[str, Any]:
    obj = {
        "id": "sub_1",
        "object": "subscription",
        "customer": customer,
        "status": "active",
        "items": {
            "data": [
                {"quantity": seats, "price": {"id": "price_1", "metadata": {"plan": plan, "credits": "5000"}}}
            ]
        },
    }
    return {
        "id": eid,
        "object": "event",
        "type": "customer.subscription.updated",
        "created": created,
        "data": {"object": obj},
    }


async def top_ups(db: AsyncSession, account_id: uuid.UUID) -> list[Decimal]:
    await db.commit()
    rows = await db.scalars(
        select(LedgerEntry.amount).where(
            LedgerEntry.account_id == account_id,
            LedgerEntry.kind == EntryKind.extra_granted,
            LedgerEntry.user_id.is_(None),
            LedgerEntry.group_id.is_(None),
        )
    )
    return list(rows)


async def customer_of(
    client: AsyncClient, db: AsyncSession, headers: dict[str, str], account_id: uuid.UUID
) -> str:
    response = await client.post(f"{API}/billing/portal", headers=headers)
    assert response.status_code == 200, response.text
    await db.commit()
    row = await db.scalar(select(BillingAccount).where(BillingAccount.account_id == account_id))
    assert row is not None
    assert row.stripe_customer_id
    return row.stripe_customer_id


async def test_checkout_portal_and_invoices(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    response = await client.post(f"{API}/billing/checkout", json={"pack": 1}, headers=o.headers)
    assert response.status_code == 200, response.text
    assert response.json()["url"] == "https://pay.test/cs_1"
    assert "checkout:5000:payment" in stripe_server
    assert (await client.post(f"{API}/billing/portal", headers=o.headers)).json()[
        "url"
    ] == "https://pay.test/p"
    assert stripe_server.count("customers") == 1  # the customer is created once
    body = (await client.get(f"{API}/billing", headers=o.headers)).json()
    assert body["connected"] is True
    assert body["invoices"][0]["url"] == "https://pay.test/in_1"
    assert (await client.post(f"{API}/billing/portal", headers=o.member_headers)).status_code == 403


async def test_paid_checkout_replayed_adds_credits_once(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    customer = await customer_of(client, db, o.headers, o.account.id)
    payload, headers = signed(paid_event(o.account.id, customer, 1000))
    for _ in range(2):
        response = await client.post(f"{API}/billing/webhook", content=payload, headers=headers)
        assert response.status_code == 200, response.text
    account_id = o.account.id
    assert await top_ups(db, account_id) == [Decimal(1000)]
    await db.rollback()
    account = await db.get(Account, account_id, populate_existing=True)
    assert account is not None
    cycle = await current_cycle(db, account)
    assert cycle.added_credits == Decimal(1000)  # spendable this cycle, on top of the credits per cycle
    assert [e.action for e in await audit(db, account_id, "billing.credits_bought")] == [
        "billing.credits_bought"
    ]
    body = (await client.get(f"{API}/billing", headers=o.headers)).json()
    assert Decimal(body["top_ups"]) == Decimal(1000)


async def test_bad_signature_is_refused_and_changes_nothing(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    customer = await customer_of(client, db, o.headers, o.account.id)
    payload, _ = signed(paid_event(o.account.id, customer), secret="whsec_wrong")
    _, headers = signed(paid_event(o.account.id, customer), secret="whsec_wrong")
    response = await client.post(f"{API}/billing/webhook", content=payload, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_signature"
    assert await top_ups(db, o.account.id) == []
    assert (await db.scalars(select(BillingEvent))).all() == []


async def test_older_subscription_update_is_ignored(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    account_id = o.account.id
    customer = await customer_of(client, db, o.headers, account_id)
    now = int(time.time())
    for event in (
        sub_event(customer, "evt_new", now, "Business", 50),
        sub_event(customer, "evt_old", now - 60, "Team", 10),
    ):
        payload, headers = signed(event)
        assert (
            await client.post(f"{API}/billing/webhook", content=payload, headers=headers)
        ).status_code == 200
    body = (await client.get(f"{API}/billing", headers=o.headers)).json()
    assert (body["plan"], body["seat_limit"], body["included_credits"]) == ("Business", 50, 5000)
    # The plan's limits are the account's: its seats for every product, its credits per cycle.
    await db.rollback()
    account = await db.get(Account, account_id, populate_existing=True)
    assert account is not None
    assert (account.seat_limit_console, account.seat_limit_copilot, account.seat_limit_compute) == (
        50,
        50,
        50,
    )
    assert account.credits_per_cycle == Decimal(5000)


async def test_a_plan_with_unreadable_metadata_changes_no_limit(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    account_id = o.account.id
    customer = await customer_of(client, db, o.headers, account_id)
    event = sub_event(customer, "evt_junk", int(time.time()), "Odd", 0)
    price = event["data"]["object"]["items"]["data"][0]["price"]
    price["metadata"] = {"plan": "Odd", "seats": "lots", "credits": "-5"}
    await db.rollback()
    before = await db.get(Account, account_id, populate_existing=True)
    assert before is not None
    limits = (before.seat_limit_console, before.credits_per_cycle)
    payload, headers = signed(event)
    response = await client.post(f"{API}/billing/webhook", content=payload, headers=headers)
    assert response.status_code == 200, response.text
    body = (await client.get(f"{API}/billing", headers=o.headers)).json()
    assert (body["plan"], body["seat_limit"], body["included_credits"]) == ("Odd", None, None)
    await db.rollback()
    after = await db.get(Account, account_id, populate_existing=True)
    assert after is not None
    assert (after.seat_limit_console, after.credits_per_cycle) == limits


async def test_another_accounts_event_cannot_credit_this_account(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    other = await org(db, name="Other")
    customer = await customer_of(client, db, o.headers, o.account.id)
    payload, headers = signed(paid_event(other.account.id, customer, 9999, eid="evt_x"))
    assert (await client.post(f"{API}/billing/webhook", content=payload, headers=headers)).status_code == 200
    assert await top_ups(db, o.account.id) == []
    assert await top_ups(db, other.account.id) == []


async def test_not_connected_and_manual_top_up(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    admin = await make_user(db, o.account, role=UserRole.admin)
    admin_headers = bearer(await make_token(db, admin))
    body = (await client.get(f"{API}/billing", headers=admin_headers)).json()
    assert body["connected"] is False
    assert body["invoices"] == []
    response = await client.post(f"{API}/billing/checkout", json={"pack": 0}, headers=o.headers)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "billing_not_connected")
    assert (await client.post(f"{API}/billing/portal", headers=o.headers)).status_code == 409
    top_up = {"credits": "500.25", "reason": "Goodwill for the outage"}
    for headers in (admin_headers, o.member_headers):
        assert (await client.post(f"{API}/credits/top-ups", json=top_up, headers=headers)).status_code == 403
    response = await client.post(f"{API}/credits/top-ups", json=top_up, headers=o.headers)
    assert response.status_code == 201, response.text
    assert await top_ups(db, o.account.id) == [Decimal("500.25")]
    entries = await audit(db, o.account.id, "billing.")
    assert [(e.action, e.after) for e in entries] == [
        ("billing.credits_added", {"credits": "500.25", "reason": "Goodwill for the outage"})
    ]
    bad = {"credits": "-1", "reason": "x"}
    assert (await client.post(f"{API}/credits/top-ups", json=bad, headers=o.headers)).status_code == 422


async def test_the_same_paid_event_delivered_concurrently_adds_credits_once(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    account_id = o.account.id
    customer = await customer_of(client, db, o.headers, account_id)
    payload, headers = signed(paid_event(account_id, customer, 700, eid="evt_race"))

    async def deliver() -> int:
        return (await client.post(f"{API}/billing/webhook", content=payload, headers=headers)).status_code

    statuses = await asyncio.gather(*(deliver() for _ in range(8)))
    assert set(statuses) == {200}
    assert await top_ups(db, account_id) == [Decimal(700)]
    await db.rollback()
    account = await db.get(Account, account_id, populate_existing=True)
    assert account is not None
    assert (await current_cycle(db, account)).added_credits == Decimal(700)
