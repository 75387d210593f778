"""Usage debits: the ledger gets one entry per recorded call that cost credits, written with it."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits import ledger
from cockpit.credits.models import CreditCycle, EntryKind, LedgerEntry
from cockpit.credits.usage import debit_id
from cockpit.gateway.service import credits_of
from cockpit.usage.recorder import Recorder, journal_line
from tests.gateway.conftest import Org, add_model, client_for, fund, records
from tests.gateway.live import fast_passwords  # noqa: F401

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


async def set_factor(db: AsyncSession, org: Org, factor: str) -> None:
    await fund(db, org, factor=factor)


async def debits(db: AsyncSession, account_id: uuid.UUID) -> list[LedgerEntry]:
    await db.rollback()
    rows = await db.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.usage_debit)
        .order_by(LedgerEntry.created_at)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


def test_credits_are_the_cost_times_the_factor_rounded_half_up() -> None:
    assert credits_of(Decimal("0.0000675"), Decimal(100)) == Decimal("0.006750")
    assert credits_of(Decimal("0.0000000025"), Decimal(1000)) == Decimal("0.000003")  # 2.5e-6 rounds up
    assert credits_of(Decimal("0.0000000024"), Decimal(1000)) == Decimal("0.000002")
    assert credits_of(Decimal("1.5"), Decimal(0)) == Decimal(0)  # tracking off


async def test_no_debits_while_credit_tracking_is_off(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    [row] = await records(gateway_app, db, org.account_id)
    assert row.credits == Decimal(0)
    assert await debits(db, org.account_id) == []


async def test_each_call_is_debited_once_with_its_credits(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    await set_factor(db, org, "100")
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    assert [chunk async for chunk in stream]
    calls = [(c.id, c.credits, c.cost_usd) for c in await records(gateway_app, db, org.account_id)]
    await gateway_app.state.gateway.keeper.return_idle(everything=True)  # unused held credits go back
    member = (org.member.id, org.member.group_id)
    entries = await debits(db, org.account_id)

    # 7 input tokens at $2.50/M + 5 output at $10/M = $0.0000675 -> 0.00675 credits at 100 per $.
    assert calls[0][1] == Decimal("0.00675")
    assert calls[1][1] == Decimal("0.02175")  # the stream: 7 in, 20 out
    assert {e.usage_request_id: e.amount for e in entries} == {cid: -credits for cid, credits, _ in calls}
    assert sum(-e.amount for e in entries) == sum(credits for _, credits, _ in calls)  # reconciles
    assert {(e.user_id, e.group_id) for e in entries} == {member}
    assert entries[0].usd == calls[0][2]
    assert (entries[0].model, entries[0].input_tokens, entries[0].output_tokens) == ("gpt-4o-mini", 7, 5)
    # The account's first cycle was opened for them.
    cycle = await db.scalar(select(CreditCycle).where(CreditCycle.account_id == org.account_id))
    assert cycle is not None
    assert {e.cycle_id for e in entries} == {cycle.id}
    # Balances are sums over the ledger: the member's, the group's and the account's used credits.
    total = Decimal("0.0285")
    assert await ledger.used(db, cycle.id, user_id=member[0]) == total
    assert await ledger.used(db, cycle.id, group_id=member[1]) == total
    assert await ledger.used(db, cycle.id) == total
    assert await ledger.held(db, cycle.id, user_id=member[0]) == Decimal(0)


async def test_failed_calls_cost_nothing(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await set_factor(db, org, "100")
    await add_model(db, org, "broken", org.openai_provider_id, "gpt-4o-mini-error-500")
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="broken", messages=HELLO)
    [call] = await records(gateway_app, db, org.account_id)
    assert (call.http_status, call.credits) == (502, Decimal(0))
    assert await debits(db, org.account_id) == []


async def test_a_replayed_journal_does_not_debit_twice(
    gateway_app: Any, db: AsyncSession, org: Org, database_url: str, tmp_path: Path
) -> None:
    await set_factor(db, org, "100")
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    [call] = await records(gateway_app, db, org.account_id)
    call_id = call.id
    # The same record again, as a journal left by a process that died after its flush committed.
    record = {c.name: getattr(call, c.name) for c in call.__table__.columns}
    (tmp_path / "999-feedbeef-0.jsonl").write_bytes(journal_line(record))
    recorder = Recorder(gateway_app.state.sessionmaker, tmp_path)
    assert await recorder.recover() == 1

    entries = await debits(db, org.account_id)
    assert [e.id for e in entries] == [debit_id(call_id)]
    count = await db.scalar(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.usage_request_id == call_id)
    )
    assert count == 1
