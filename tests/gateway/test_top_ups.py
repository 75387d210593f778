"""Credits bought or added by hand are spendable at once (issue 17): a top-up raises what the
account may spend in its current cycle, for the gateway's enforcement, the figures and the group
budgets; a plan's included credits and seats become the account's limits."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.billing import service as billing
from cockpit.billing import webhook
from cockpit.config import Settings
from cockpit.credits import allocations, figures
from cockpit.credits import settings as credit_settings
from cockpit.credits.cycles import account_limit, current_cycle
from cockpit.credits.models import EntryKind, LedgerEntry
from cockpit.kit.errors import Conflict
from cockpit.tenancy.models import Account
from tests.gateway.conftest import Org, client_for, fund
from tests.gateway.test_enforcement import assert_reconciled

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


async def _account(db: AsyncSession, org: Org) -> Account:
    await db.rollback()
    account = await db.get(Account, org.account_id, populate_existing=True)
    assert account is not None
    return account


async def test_a_top_up_lets_calls_through_that_the_account_could_not_cover(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    # The account can cover 0.002 credits; the member and the group have plenty.
    await fund(db, org, account="0.002")
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    assert caught.value.status_code == 402
    assert "your organisation's budget" in str(caught.value)

    owner = Actor.system(org.account_id, label="Owner")
    await billing.add_credits_by_hand(db, owner, Decimal(50), "Bought more for the launch")
    await db.commit()

    reply = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    assert reply.choices[0].message.content
    await assert_reconciled(gateway_app, db, org)

    account = await _account(db, org)
    cycle = await current_cycle(db, account)
    numbers = await figures.account_figures(db, account, cycle)
    assert (numbers.per_cycle, numbers.added, numbers.limit) == (
        Decimal("0.002"),
        Decimal(50),
        Decimal("50.002"),
    )
    assert numbers.available == Decimal("50.002") - numbers.used
    assert numbers.used > 0


async def test_concurrent_top_ups_are_all_counted(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await fund(db, org, account="100")
    sessionmaker = gateway_app.state.sessionmaker

    async def add(n: int) -> None:
        async with sessionmaker() as session:
            await billing.add_credits_by_hand(
                session, Actor.system(org.account_id), Decimal(n), f"top-up {n}"
            )
            await session.commit()

    await asyncio.gather(*(add(n) for n in range(1, 11)))
    account = await _account(db, org)
    cycle = await current_cycle(db, account)
    assert cycle.added_credits == Decimal(55)
    assert account_limit(account, cycle) == Decimal(155)


async def test_group_budgets_may_use_the_added_credits(db: AsyncSession, org: Org, gateway_app: Any) -> None:
    await fund(db, org, account="1000", group="1000")
    actor = Actor.system(org.account_id)
    group_id = org.member.group_id
    assert group_id is not None
    with pytest.raises(Conflict) as refused:
        await allocations.set_group_allocation(db, actor, group_id, extra=Decimal(500))
    assert "1,000 credits per cycle by 500" in refused.value.message
    await db.rollback()
    await billing.add_credits_by_hand(db, actor, Decimal(500), "Launch week")
    await db.commit()
    await allocations.set_group_allocation(db, actor, group_id, extra=Decimal(500))
    await db.commit()
    with pytest.raises(Conflict) as refused:
        await allocations.set_group_allocation(db, actor, group_id, extra=Decimal(501))
    assert refused.value.message.endswith("1,500 credits this cycle (500 of them added) by 1.")


async def test_a_plan_change_sets_the_seats_and_credits_per_cycle(
    db: AsyncSession, org: Org, gateway_app: Any, gateway_settings: Settings
) -> None:
    await fund(db, org, account="1000")
    account = await _account(db, org)
    row = await billing._ensure_billing_account(db, account.id)
    row.seat_limit, row.included_credits = 40, 25_000
    await webhook._apply_plan(db, account, row)
    await db.commit()
    account = await _account(db, org)
    cycle = await current_cycle(db, account)
    assert (account.seat_limit_console, account.seat_limit_copilot, account.seat_limit_compute) == (
        40,
        40,
        40,
    )
    assert account.credits_per_cycle == cycle.credits_per_cycle == Decimal(25_000)


async def test_a_new_credits_per_cycle_mid_cycle_is_a_ledger_entry(
    db: AsyncSession, org: Org, gateway_app: Any
) -> None:
    await fund(db, org, account="1000", group="500")
    actor = Actor.system(org.account_id, label="Owner")
    await credit_settings.change_settings(db, actor, credits_per_cycle=Decimal(1500))
    await db.commit()
    await credit_settings.change_settings(db, actor, credits_per_cycle=Decimal(1200))
    await db.commit()
    account = await _account(db, org)
    cycle = await current_cycle(db, account)
    entries = list(
        await db.execute(
            select(LedgerEntry.kind, LedgerEntry.amount)
            .where(
                LedgerEntry.cycle_id == cycle.id,
                LedgerEntry.user_id.is_(None),
                LedgerEntry.group_id.is_(None),
            )
            .order_by(LedgerEntry.created_at)
        )
    )
    # The cycle opened with 1,000; the changes are +500 and -300: the account's entries add up to 1,200.
    assert [(kind, amount) for kind, amount in entries] == [
        (EntryKind.cycle_reset, Decimal(1000)),
        (EntryKind.allocation_set, Decimal(500)),
        (EntryKind.allocation_set, Decimal(-300)),
    ]
    assert cycle.credits_per_cycle == account.credits_per_cycle == Decimal(1200)
