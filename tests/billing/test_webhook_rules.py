"""Stripe's webhook under the rules a real account meets: a payment must be the price asked for,
delayed payments credit once, a subscription's limits apply only while it is paid for and are
given back when it ends, the newer of two concurrent plan changes wins, and the credits per cycle a
plan sets are a ledger entry."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.billing.models import BillingEvent
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import EntryKind, LedgerEntry
from cockpit.tenancy.models import Account
from tests.billing.test_billing import customer_of, paid_event, signed, stripe_server, sub_event, top_ups
from tests.credits.helpers import API, audit, org

__all__ = ["stripe_server"]  # the fixture, shared with test_billing


async def post(client: AsyncClient, event: dict[str, Any]) -> str:
    payload, headers = signed(event)
    response = await client.post(f"{API}/billing/webhook", content=payload, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["result"])


async def account_of(db: AsyncSession, account_id: uuid.UUID) -> Account:
    await db.rollback()
    account = await db.get(Account, account_id, populate_existing=True)
    assert account is not None
    return account


async def test_a_payment_that_is_not_the_price_asked_for_adds_nothing(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    account_id = o.account.id
    customer = await customer_of(client, db, o.headers, account_id)
    cheap = paid_event(account_id, customer, 50_000, eid="evt_cheap")
    cheap["data"]["object"]["amount_total"] = 1  # a coupon, a hand-made session: not what was asked
    other_currency = paid_event(account_id, customer, 1000, eid="evt_jpy")
    other_currency["data"]["object"]["currency"] = "jpy"
    junk = paid_event(account_id, customer, 1000, eid="evt_junk")
    junk["data"]["object"]["metadata"]["credits"] = "1e9"
    assert [await post(client, e) for e in (cheap, other_currency, junk)] == ["unmatched"] * 3
    assert await top_ups(db, account_id) == []
    assert len(await audit(db, account_id, "billing.payment_unmatched")) == 3


async def test_a_delayed_payment_credits_once_when_it_succeeds(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    account_id = o.account.id
    customer = await customer_of(client, db, o.headers, account_id)
    pending = paid_event(account_id, customer, 1000, eid="evt_pending")
    pending["data"]["object"]["payment_status"] = "unpaid"
    assert await post(client, pending) == "ignored"
    assert await top_ups(db, account_id) == []
    succeeded = paid_event(account_id, customer, 1000, eid="evt_succeeded")
    succeeded["type"] = "checkout.session.async_payment_succeeded"
    assert await post(client, succeeded) == "applied"
    # The same session's "completed, paid" (were it to come too) does not credit it again.
    again = paid_event(account_id, customer, 1000, eid="evt_completed_late")
    assert await post(client, again) == "duplicate"
    assert await top_ups(db, account_id) == [Decimal(1000)]


async def test_a_plan_applies_while_paid_for_and_its_limits_go_back_when_it_ends(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    account_id = o.account.id
    account = await account_of(db, account_id)
    account.credits_per_cycle = Decimal(300)
    await current_cycle(db, account)
    await db.commit()
    own = (account.seat_limit_console, Decimal(300))
    customer = await customer_of(client, db, o.headers, account_id)
    now = int(time.time())

    incomplete = sub_event(customer, "evt_incomplete", now - 30, "Business", 50)
    incomplete["data"]["object"]["status"] = "incomplete"
    assert await post(client, incomplete) == "applied"
    account = await account_of(db, account_id)
    assert (account.seat_limit_console, account.credits_per_cycle) == own  # not paid yet

    assert await post(client, sub_event(customer, "evt_active", now - 20, "Business", 50)) == "applied"
    account = await account_of(db, account_id)
    assert (account.seat_limit_console, account.seat_limit_compute, account.credits_per_cycle) == (
        50, 50, Decimal(5000),
    )  # fmt: skip
    # The change is in the ledger: the account's cycle shows 300 + 4,700.
    cycle = await current_cycle(db, account)
    changes = await db.scalars(
        select(LedgerEntry.amount).where(
            LedgerEntry.cycle_id == cycle.id,
            LedgerEntry.kind == EntryKind.allocation_set,
            LedgerEntry.user_id.is_(None),
            LedgerEntry.group_id.is_(None),
        )
    )
    assert list(changes) == [Decimal(4700)]

    ended = sub_event(customer, "evt_deleted", now - 10, "Business", 50)
    ended["type"] = "customer.subscription.deleted"
    ended["data"]["object"]["status"] = "canceled"
    assert await post(client, ended) == "applied"
    account = await account_of(db, account_id)
    assert (account.seat_limit_console, account.credits_per_cycle) == own
    body = (await client.get(f"{API}/billing", headers=o.headers)).json()
    assert (body["plan"], body["seat_limit"]) == ("Standard", None)


async def test_of_two_concurrent_plan_changes_the_newer_wins(
    client: AsyncClient, db: AsyncSession, stripe_server: list[str]
) -> None:
    o = await org(db)
    account_id = o.account.id
    customer = await customer_of(client, db, o.headers, account_id)
    now = int(time.time())
    for attempt in range(3):
        newer = sub_event(customer, f"evt_new_{attempt}", now + 10 * attempt + 5, "Business", 50)
        older = sub_event(customer, f"evt_old_{attempt}", now + 10 * attempt, "Team", 10)
        results = await asyncio.gather(post(client, older), post(client, newer))
        assert results[1] == "applied"
        body = (await client.get(f"{API}/billing", headers=o.headers)).json()
        assert (body["plan"], body["seat_limit"]) == ("Business", 50), (attempt, results)
        account = await account_of(db, account_id)
        assert account.seat_limit_console == 50
    outcomes = {
        e.stripe_event_id: e.outcome
        for e in await db.scalars(select(BillingEvent).where(BillingEvent.account_id == account_id))
    }
    assert all(outcomes[f"evt_new_{i}"] == "applied" for i in range(3))
