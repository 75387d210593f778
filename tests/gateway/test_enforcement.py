"""Credits enforced at call time: holds on member, group and account before the upstream call, the
output limit clamped to what was held, 402 when a call cannot be covered, nothing overspent under
200 concurrent calls, held credits back to zero after every kind of ending, and the ledger
reconciling with the recorded calls."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.credits import balances, ledger
from cockpit.credits import settings as credit_settings
from cockpit.credits.cycles import current_cycle
from cockpit.credits.holds import input_token_bound
from cockpit.credits.models import CreditLease, EntryKind, GroupBudget, LedgerEntry
from cockpit.kit.time import utcnow
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.tenancy.models import Account
from tests.conftest import TEST_SECRET
from tests.gateway.conftest import UPSTREAM_KEY, Org, add_model, client_for, fund, records
from tests.upstream import Upstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
# gpt-4o-mini here: $2.50 in / $10 out per million tokens; at 100 credits per $ an input token
# costs 0.00025 credits and an output token 0.001.
IN_RATE, OUT_RATE = Decimal("0.00025"), Decimal("0.001")
BOUND = input_token_bound({"messages": HELLO}, operation="chat")  # 30 tokens
HOLD_10 = BOUND * IN_RATE + 10 * OUT_RATE  # the hold of a call with max_tokens=10: 0.0175


def keeper(app: Any) -> Any:
    return app.state.gateway.keeper


async def settle_all(app: Any) -> None:
    """Write every recorded call, then give back every lease's unused credits."""
    await app.state.recorder.flush()
    await keeper(app).return_idle(everything=True)


async def figures(db: AsyncSession, org: Org) -> tuple[uuid.UUID, Decimal, Decimal]:
    """The current cycle's id, and the account's used and held credits in it (from the ledger)."""
    await db.rollback()
    account = await db.get(Account, org.account_id, populate_existing=True)
    assert account is not None
    cycle_id = (await current_cycle(db, account)).id
    await db.commit()
    return cycle_id, await ledger.used(db, cycle_id), await ledger.held(db, cycle_id)


async def assert_reconciled(app: Any, db: AsyncSession, org: Org) -> None:
    """Held is back to 0; usage debits are exactly the recorded calls' credits; the running totals
    agree with the ledger."""
    await settle_all(app)
    cycle_id, used, held = await figures(db, org)
    assert held == 0
    recorded = sum((r.credits for r in await records(app, db, org.account_id)), Decimal(0))
    assert used == recorded
    assert await balances.reconcile(db, cycle_id) == []


async def test_a_call_that_cannot_be_covered_gets_402_and_changes_nothing(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    await fund(db, org, members={org.member.id: "0"})
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 402
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["type"] == error["code"] == "insufficient_credits"
    assert "remaining 0 credits" in error["message"]
    assert "your allocation" in error["message"]
    await gateway_app.state.recorder.flush()
    await db.rollback()
    assert await db.scalar(select(func.count()).select_from(CreditLease)) == 0
    moved = await db.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.account_id == org.account_id, LedgerEntry.kind != EntryKind.cycle_reset)
    )
    assert moved == 0
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.http_status, row.error_type, row.credits) == (402, "insufficient_credits", 0)


async def test_the_message_names_the_level_that_is_short(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    await fund(db, org, group="0.001")
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    assert caught.value.status_code == 402
    assert "your group's budget has remaining 0.001 credits" in str(caught.value)
    await fund(db, org, account="0.002")
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    assert "your organisation's budget has remaining 0.002 credits" in str(caught.value)


@pytest.mark.parametrize(
    ("asked", "sent"),
    [
        ({}, {"max_tokens": 20}),  # no limit: the model's maximum, lowered to what 20 tokens cost
        ({"max_tokens": 10**12}, {"max_tokens": 20}),  # a hostile limit is clamped, not trusted
        ({"max_completion_tokens": 500}, {"max_completion_tokens": 20}),
        ({"max_tokens": 5}, {"max_tokens": 5}),  # a lower limit stays
    ],
)
async def test_the_output_limit_sent_upstream_is_what_the_remaining_credits_pay_for(
    gateway_app: Any,
    db: AsyncSession,
    org: Org,
    upstream: Upstream,
    asked: dict[str, int],
    sent: dict[str, int],
) -> None:
    # Room for the input and exactly 20 output tokens.
    await fund(db, org, members={org.member.id: str(BOUND * IN_RATE + 20 * OUT_RATE)})
    client = client_for(gateway_app, org.member_token)
    upstream.clear()
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, **asked)  # type: ignore[arg-type]
    [request] = upstream.requests
    assert {k: v for k, v in request.json.items() if k.startswith("max_")} == sent
    await assert_reconciled(gateway_app, db, org)


async def test_embeddings_hold_their_input_only(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await fund(db, org, members={org.member.id: "0.01"})
    client = client_for(gateway_app, org.member_token)
    result = await client.embeddings.create(model="embed-small", input=["a few words", "and a few more"])
    assert len(result.data) == 2
    [row] = await records(gateway_app, db, org.account_id)
    assert row.credits == Decimal("0.000012")  # 6 tokens at $0.02/M x 100
    await assert_reconciled(gateway_app, db, org)


async def outcome_of(client: openai.AsyncOpenAI, model: str, stream: bool) -> int | str:
    """Make a call with max_tokens=10 (streamed or not): 200, or the refusal's status and code."""
    try:
        if stream:
            chunks = await client.chat.completions.create(
                model=model,
                messages=HELLO,
                max_tokens=10,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _ in chunks:
                pass
        else:
            await client.chat.completions.create(model=model, messages=HELLO, max_tokens=10)
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return f"{exc.status_code} {body.get('code')}"
    except openai.APIError as exc:  # a stream that broke after it started
        return f"stream {exc.code}"
    return 200


@pytest.mark.parametrize("level", ["member", "group", "account"])
async def test_200_concurrent_calls_admit_at_most_what_the_budget_holds(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream, level: str
) -> None:
    """The allowance covers exactly 10 calls' holds; all 200 calls are in flight together (the upstream
    answers only once every call has been admitted or refused), half of them streaming. At most 10
    get through, the others get 402, and used credits stay within the allowance."""
    model = "gpt-4o-mini-gate-chunks-5"  # 5 output tokens: a call costs less than it holds
    # The admitted calls wait at the closed gate until all 190 refusals are answered, which takes
    # longer on a busy machine: their provider waits up to 10 minutes (the tests' default is 3 s).
    patient = await providers.create_provider(
        db, Actor.system(org.account_id), name="Patient", kind=ProviderKind.openai, secret_key=TEST_SECRET,
        allow_private=True, base_url=upstream.base_url + "/v1", api_key=UPSTREAM_KEY,
        settings={"timeout_seconds": 600},
    )  # fmt: skip
    await db.commit()
    await add_model(db, org, model, patient.id)
    allowance = 10 * HOLD_10
    plenty = "1000"
    if level == "member":
        await fund(db, org, members={org.member.id: str(allowance)})
    elif level == "group":
        await fund(db, org, group=str(allowance), members={org.member.id: plenty, org.admin.id: plenty})
    else:
        await fund(db, org, account=str(allowance), members={org.member.id: plenty, org.admin.id: plenty})
    # At group and account level the budget is shared: the admin calls too.
    callers = [client_for(gateway_app, org.member_token)]
    if level != "member":
        callers.append(client_for(gateway_app, org.admin_token))
    upstream.close_gate()
    try:
        calls = [
            asyncio.ensure_future(outcome_of(callers[i % len(callers)], model, stream=i % 2 == 0))
            for i in range(200)
        ]
        for _ in range(30_000):  # until every refused call has its answer (at most 5 minutes)
            if sum(c.done() for c in calls) >= 190:
                break
            await asyncio.sleep(0.01)
    finally:
        upstream.open_gate()
    outcomes = await asyncio.gather(*calls)
    admitted = outcomes.count(200)
    assert admitted == 10
    assert outcomes.count("402 insufficient_credits") == 200 - admitted
    await settle_all(gateway_app)
    _, used, held = await figures(db, org)
    assert held == 0
    assert 0 < used <= allowance
    await assert_reconciled(gateway_app, db, org)


@pytest.mark.parametrize(
    ("model", "stream"),
    [
        ("gpt-4o-mini-error-500", False),
        ("gpt-4o-mini-error-503", True),
        ("gpt-4o-mini-hang", False),  # the gateway's read timeout (3 s in tests)
        ("gpt-4o-mini-cut-3", True),  # the upstream breaks the stream
    ],
)
async def test_held_credits_come_back_after_errors_and_timeouts(
    gateway_app: Any, db: AsyncSession, org: Org, model: str, stream: bool
) -> None:
    await add_model(db, org, model, org.openai_provider_id)
    await fund(db, org)
    client = client_for(gateway_app, org.member_token)
    assert await outcome_of(client, model, stream) != 200
    lease = keeper(gateway_app)._leases[(org.account_id, org.member.id)]
    assert lease.in_flight == 0
    await assert_reconciled(gateway_app, db, org)


async def test_a_new_cycle_retires_the_leases_of_the_old_one(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    await fund(db, org)
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    first, _, held = await figures(db, org)
    assert held > 0  # the lease
    await credit_settings.reset_cycle(db, Actor.system(org.account_id))
    await db.commit()
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    second, _, _ = await figures(db, org)
    assert second != first
    lease = keeper(gateway_app)._leases[(org.account_id, org.member.id)]
    assert lease.cycle_id == second
    await settle_all(gateway_app)
    await keeper(gateway_app).return_idle(everything=True)  # the retired lease goes once written
    await db.rollback()
    assert await ledger.held(db, first) == 0
    assert await ledger.held(db, second) == 0
    assert await balances.reconcile(db, first) == []
    assert await balances.reconcile(db, second) == []
    assert keeper(gateway_app)._retired == []


async def test_an_allocation_raised_by_an_admin_applies_to_the_next_call(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    await fund(db, org, members={org.member.id: "0"})
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    await fund(db, org, members={org.member.id: "5"})  # within the refusal's one-second memory
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    await assert_reconciled(gateway_app, db, org)


async def test_expired_leases_are_swept_and_their_credits_given_back(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    await fund(db, org)
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    _, _, held = await figures(db, org)
    assert held > 0
    # As if this process had died: its lease is no longer renewed.
    await db.execute(update(CreditLease).values(expires_at=utcnow() - timedelta(seconds=1)))
    await db.commit()
    assert await keeper(gateway_app).sweep() == 1
    _, _, held = await figures(db, org)
    assert held == 0
    assert await db.scalar(select(func.count()).select_from(CreditLease)) == 0
    # The process was alive after all: its next call starts a new lease, and its unrecorded call
    # (already released by the sweep) is debited without being released twice.
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    await assert_reconciled(gateway_app, db, org)


async def test_tracking_off_holds_nothing(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert (org.account_id, org.member.id) not in keeper(gateway_app)._leases
    await db.rollback()
    assert await db.scalar(select(func.count()).select_from(CreditLease)) == 0


async def test_a_group_budget_cut_below_what_is_used_refuses_the_next_call(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    await fund(db, org)
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    await settle_all(gateway_app)
    budget = await db.get(GroupBudget, org.member.group_id, populate_existing=True)
    assert budget is not None
    budget.monthly = Decimal("0.001")
    await db.commit()
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    assert caught.value.status_code == 402
    assert "remaining 0 credits" in str(caught.value)  # never a negative figure
    await assert_reconciled(gateway_app, db, org)


def test_the_hold_used_here_matches_the_planner() -> None:
    assert BOUND == 30  # 8 per message + "user" + "Say hello." + 8
    assert Decimal("0.0175") == HOLD_10


async def test_a_database_that_cannot_be_reached_refuses_the_call_with_503(
    gateway_app: Any, db: AsyncSession, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credits that cannot be checked are not assumed: the call is not made (fail closed)."""
    from sqlalchemy.exc import OperationalError

    await fund(db, org)

    async def unreachable(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(keeper(gateway_app), "_lease", unreachable)
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 503
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "credits_unavailable"
    assert "connection refused" not in str(body)  # no internals leak
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.http_status, row.credits) == (503, 0)
