"""Budget thresholds: crossed by real gateway calls, announced once per threshold, scope and cycle,
however many debits cross them at once; the thresholds are an account setting."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.authz.actor import Actor
from cockpit.credits import balances, thresholds
from cockpit.credits import settings as credit_settings
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind, GroupBudget, LedgerEntry, MemberAllocation
from cockpit.credits.usage import debit_usage
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.errors import InvalidInput
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from cockpit.users.models import UserRole
from tests.builders import bearer, make_account, make_token, make_user
from tests.events.helpers import events_of
from tests.gateway.conftest import Org, add_model, client_for, fund, records

EVENT = "budget.threshold_crossed"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


def crossed(events: list[Any]) -> list[tuple[str, int]]:
    return sorted((e.data["scope"], e.data["threshold"]) for e in events)


# ---- real gateway calls ----


async def test_gateway_calls_cross_each_threshold_once_for_the_member_its_group_and_the_account(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    account_id, member_id, group_id = org.account_id, org.member.id, org.member.group_id
    # Output only, $10 per million tokens: each call answers 5 tokens = $0.00005 = 0.005 credits at
    # 100 credits per $, so 10 calls use exactly the 0.05 credits of the member, the group and the account.
    await add_model(
        db, org, "flat", org.openai_provider_id, "gpt-4o-mini", input_price_per_million=Decimal(0),
        output_price_per_million=Decimal(10), cached_input_price_per_million=Decimal(0),
    )  # fmt: skip
    await fund(db, org, factor="100", account="0.05", group="0.05", members={member_id: "0.05"})
    client = client_for(gateway_app, org.member_token)
    seen: list[list[tuple[str, int]]] = []
    for _ in range(10):
        await client.chat.completions.create(model="flat", messages=HELLO)
        await records(gateway_app, db, account_id)  # written (and debited) call by call
        seen.append(crossed(await events_of(db, account_id, EVENT)))

    calls = await records(gateway_app, db, account_id)
    assert [c.credits for c in calls] == [Decimal("0.005")] * 10
    everyone = ("account", "group", "member")
    assert seen[3] == []  # 40 %
    assert seen[4] == sorted((s, 50) for s in everyone)  # the 5th call reaches 50 % at every level
    assert seen[7] == sorted((s, t) for s in everyone for t in (50, 80))
    assert seen[9] == sorted((s, t) for s in everyone for t in (50, 80, 100))
    events = {(e.data["scope"], e.data["threshold"]): e for e in await events_of(db, account_id, EVENT)}
    cycle = await current_cycle(db, await db.get(Account, account_id))  # type: ignore[arg-type]
    member, group, account = events[("member", 100)], events[("group", 100)], events[("account", 100)]
    assert (member.person_id, member.group_id) == (member_id, group_id)
    assert (group.person_id, group.group_id, group.data["scope_name"]) == (None, group_id, "Default")
    assert (account.person_id, account.group_id, account.data["scope_name"]) == (None, None, "Gateway Co")
    assert member.data == {
        "scope": "member", "scope_name": "Test User", "threshold": 100, "used": "0.05", "budget": "0.05",
    }  # fmt: skip
    assert member.dedupe_key == f"budget:{cycle.id}:member:{member_id}:100"
    assert events[("group", 50)].data["used"] == "0.03"  # 0.025 credits, to the cent


async def test_thresholds_are_not_watched_while_credits_are_not_tracked(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    await client_for(gateway_app, org.member_token).chat.completions.create(
        model="gpt-4o-mini", messages=HELLO
    )
    await records(gateway_app, db, org.account_id)
    assert await events_of(db, org.account_id, EVENT) == []


# ---- many at once ----


async def _funded(db: AsyncSession, budget: str = "10") -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    """An account tracking credits whose member, group and account each have ``budget`` credits."""
    account, _ = await make_account(db, name="Burst Co")
    member = await make_user(db, account, role=UserRole.member)
    account.credit_factor, account.credits_per_cycle = Decimal(100), Decimal(budget)
    db.add(GroupBudget(group_id=member.group_id, account_id=account.id, monthly=Decimal(budget)))
    db.add(MemberAllocation(user_id=member.id, account_id=account.id, monthly=Decimal(budget)))
    await db.commit()
    cycle = await current_cycle(db, account)
    await db.commit()
    return account.id, member.id, member.group_id, cycle.id


def _call(account_id: uuid.UUID, user_id: uuid.UUID, group_id: uuid.UUID, credits: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(), "account_id": account_id, "user_id": user_id, "group_id": group_id,
        "created_at": utcnow(), "credits": credits, "model": "sim-chat", "operation": "chat", "cost_usd": "0",
    }  # fmt: skip


async def _in_parallel(database_url: str, jobs: list[Any], width: int) -> None:
    """Run each job (a function of a session) in a transaction of its own, ``width`` at a time."""
    engine = make_engine(database_url)  # PostgreSQL: a pool of 10 (+20): as many connections as tasks
    sessionmaker = make_sessionmaker(engine)
    gate = asyncio.Semaphore(width)

    async def one(job: Any) -> None:
        async with gate, sessionmaker() as session:
            await job(session)
            await session.commit()

    try:
        await asyncio.gather(*(one(job) for job in jobs))
    finally:
        await engine.dispose()


async def _debits(db: AsyncSession, account_id: uuid.UUID) -> int:
    await db.rollback()
    kind = (LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.usage_debit)
    return int(await db.scalar(select(func.count()).select_from(LedgerEntry).where(*kind)) or 0)


def _width(database_url: str) -> int:
    return 20 if database_url.startswith("postgresql") else 4  # SQLite has one writer at a time anyway


async def test_a_thousand_concurrent_debits_announce_each_threshold_once_per_scope_and_cycle(
    db: AsyncSession, database_url: str
) -> None:
    account_id, member_id, group_id, cycle_id = await _funded(db)
    # 1,000 calls of 0.01 credits, each debited in its own transaction, many at once: together
    # they use 100 % of the member's, the group's and the account's 10 credits.
    calls = [_call(account_id, member_id, group_id, "0.01") for _ in range(1000)]

    async def debit(record: dict[str, Any]) -> Any:
        return lambda session: debit_usage(session, [record])

    await _in_parallel(database_url, [await debit(r) for r in calls], _width(database_url))

    events = await events_of(db, account_id, EVENT)
    assert crossed(events) == sorted((s, t) for s in ("account", "group", "member") for t in (50, 80, 100))
    assert {e.dedupe_key for e in events} == {
        f"budget:{cycle_id}:{scope}:{scope_id}:{t}"
        for scope, scope_id in (("account", account_id), ("group", group_id), ("member", member_id))
        for t in (50, 80, 100)
    }
    # Every debit committed, announced or not, and the running totals agree with the ledger.
    assert await _debits(db, account_id) == 1000
    assert await balances.reconcile(db, cycle_id) == []

    # A new cycle: the thresholds can be crossed again, once each.
    await credit_settings.reset_cycle(db, Actor.system(account_id))
    await db.commit()
    new_cycle = await db.scalar(
        select(CreditCycle.id).where(CreditCycle.account_id == account_id, CreditCycle.closed_at.is_(None))
    )
    half = [_call(account_id, member_id, group_id, "0.05") for _ in range(100)]  # 5 credits: 50 %
    await _in_parallel(database_url, [await debit(r) for r in half], _width(database_url))
    events = await events_of(db, account_id, EVENT)
    again = [e for e in events if (e.dedupe_key or "").startswith(f"budget:{new_cycle}:")]
    assert crossed(again) == [("account", 50), ("group", 50), ("member", 50)]
    assert len(events) == 12


async def test_a_thousand_concurrent_detections_write_one_event_per_threshold_and_scope(
    db: AsyncSession, database_url: str
) -> None:
    account_id, member_id, group_id, _ = await _funded(db, budget="1")
    account = await db.get(Account, account_id)
    assert account is not None
    account.budget_thresholds = []  # the usage is debited unannounced first ...
    await db.commit()
    record = _call(account_id, member_id, group_id, "0.9")
    await _in_parallel(database_url, [lambda session: debit_usage(session, [record])], 1)
    assert await events_of(db, account_id, EVENT) == []
    account = await db.get(Account, account_id)
    assert account is not None
    account.budget_thresholds = [50, 80, 100]  # ... then 1,000 detections race to announce 90 %
    await db.commit()

    async def detect(session: AsyncSession) -> None:
        row = await session.get(Account, account_id)
        assert row is not None
        cycle = await current_cycle(session, row)
        await thresholds.detect(session, row, cycle, {member_id: group_id}, {group_id})

    await _in_parallel(database_url, [detect] * 1000, _width(database_url))
    events = await events_of(db, account_id, EVENT)
    assert crossed(events) == sorted((s, t) for s in ("account", "group", "member") for t in (50, 80))


async def test_an_announcement_that_fails_does_not_cost_the_debit(
    db: AsyncSession, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id, member_id, group_id, cycle_id = await _funded(db, budget="1")

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the outbox is broken")

    monkeypatch.setattr(thresholds, "emit", broken)
    record = _call(account_id, member_id, group_id, "1")
    await _in_parallel(database_url, [lambda session: debit_usage(session, [record])], 1)
    assert await events_of(db, account_id, EVENT) == []
    assert await balances.reconcile(db, cycle_id) == []
    assert await _debits(db, account_id) == 1


# ---- the setting ----


def test_thresholds_are_whole_percentages_sorted_each_once() -> None:
    assert thresholds.check_thresholds([100, 50, 80, 50]) == [50, 80, 100]
    assert thresholds.check_thresholds([]) == []
    assert thresholds.check_thresholds([1, 1000]) == [1, 1000]
    assert thresholds.parse_thresholds(" 80%, 50 ;100 ") == [50, 80, 100]
    assert thresholds.parse_thresholds("") == []
    hostile: list[object] = ["50,80", [0], [1001], [-5], [50.0], [True], ["50"], [None], [[50]]]
    hostile += [list(range(1, 12)), [10**100], {"a": 1}]
    for value in hostile:
        with pytest.raises(InvalidInput):
            thresholds.check_thresholds(value)
    for text in ("fifty", "50.5", "1e3", "\u0665\u0660", "50,,80,-1", "99999", ",".join(["5"] * 11), "0"):
        with pytest.raises(InvalidInput):
            thresholds.parse_thresholds(text)


async def test_the_thresholds_are_changed_with_the_credit_settings_and_audited(
    client: AsyncClient, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Settings Co")
    member = await make_user(db, account, role=UserRole.member)
    headers, member_headers = bearer(await make_token(db, owner)), bearer(await make_token(db, member))
    account_id = account.id
    url = "/api/v1/credits/settings"
    shown = await client.get(url, headers=headers)
    assert shown.json()["budget_thresholds"] == [50, 80, 100]

    changed = await client.patch(url, json={"budget_thresholds": [90, 25, 90, 100]}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["budget_thresholds"] == [25, 90, 100]
    hostile: list[object] = [
        "50", [0], [1001], [50.5], [True], ["50"], [None], list(range(1, 12)), [2**70], {"50": 1},
    ]  # fmt: skip
    for value in hostile:
        refused = await client.patch(url, json={"budget_thresholds": value}, headers=headers)
        assert refused.status_code == 422, (value, refused.text)
    forbidden = await client.patch(url, json={"budget_thresholds": [10]}, headers=member_headers)
    assert forbidden.status_code == 403
    unchanged = await client.patch(url, json={"signup_credits": "0"}, headers=headers)
    assert unchanged.json()["budget_thresholds"] == [25, 90, 100]

    await db.rollback()
    stored = await db.scalar(select(Account.budget_thresholds).where(Account.id == account_id))
    assert stored == [25, 90, 100]
    entries = await db.scalars(
        select(AuditEntry).where(
            AuditEntry.account_id == account_id, AuditEntry.action == "credits.settings_updated"
        )
    )
    [entry] = [e for e in entries if "budget_thresholds" in (e.after or {})]
    assert (entry.before or {})["budget_thresholds"] == [50, 80, 100]
    assert entry.after["budget_thresholds"] == [25, 90, 100]  # type: ignore[index]
