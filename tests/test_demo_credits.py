"""The demo organisation's credits: settings, two cycles, budgets, allowances, debits and requests."""

from __future__ import annotations

from collections import Counter
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.credits import allocations
from cockpit.credits import settings as credit_settings
from cockpit.credits.holds import DEFAULT_MAX_OUTPUT, HoldPlan, input_token_bound, plan_hold
from cockpit.credits.models import (
    CreditCycle,
    CreditRequest,
    EntryKind,
    GroupBudget,
    LedgerEntry,
    MemberAllocation,
    RequestStatus,
)
from cockpit.credits.statement import MAX_LIMIT, build_statement
from cockpit.demo import DEMO_EMAIL, DemoLogin, seed_demo
from cockpit.groups.models import Group
from cockpit.kit.pagination import PageParams
from cockpit.providers.models import Model
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User, UserStatus

MICRO = Decimal("0.000001")


async def _owner(db: AsyncSession) -> Actor:
    owner = await db.scalar(select(User).where(User.email == DEMO_EMAIL))
    assert owner is not None
    return Actor.for_user(owner)


async def test_the_demo_tracks_credits_in_monthly_cycles(db: AsyncSession, demo: DemoLogin) -> None:
    owner = await _owner(db)

    [account] = list(await db.scalars(select(Account)))
    assert account.credit_factor == 1000
    assert account.credits_per_cycle == 20_000
    assert account.cycle_cadence == "month"
    assert account.signup_credits == 50
    cycles = list(await db.scalars(select(CreditCycle).order_by(CreditCycle.seq)))
    assert [(c.seq, c.started_by, c.closed_at is None) for c in cycles] == [
        (1, "initial", False),
        (2, "scheduled", True),
    ]
    past, current = cycles
    assert past.ends_at == past.closed_at == current.starts_at
    assert past.starts_at < past.ends_at < current.ends_at
    assert all(c.credits_per_cycle == 20_000 for c in cycles)
    page = await credit_settings.list_cycles(db, owner, PageParams(page=1, per_page=10))
    assert [row.cycle.seq for row in page.items] == [2, 1]
    assert all(row.used > 0 for row in page.items)
    # Every member's and every group's statement of either cycle stays at or above zero (the monthly
    # allocations are entered at the start of each cycle).
    members = list(await db.scalars(select(User.id).where(User.account_id == account.id)))
    groups = list(await db.scalars(select(Group.id).where(Group.account_id == account.id)))
    scopes = [{"user_id": m} for m in members] + [{"group_id": g} for g in groups]
    for cycle in cycles:
        for scope in scopes:
            statement = await build_statement(
                db, owner, start=cycle.starts_at, end=cycle.ends_at, limit=MAX_LIMIT, **scope
            )
            assert statement.closing_balance >= 0, (cycle.seq, scope)
            assert all(line.balance >= 0 for line in statement.lines), (cycle.seq, scope)
    await db.commit()


async def test_the_demo_debits_match_its_recorded_calls(db: AsyncSession, demo: DemoLogin) -> None:
    calls = list(await db.scalars(select(UsageRecord)))
    debits = list(await db.scalars(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.usage_debit)))
    current = await db.scalar(select(CreditCycle).where(CreditCycle.closed_at.is_(None)))
    cycles = {c.id: c for c in await db.scalars(select(CreditCycle))}
    await db.commit()
    assert current is not None

    for call in calls:
        expected = (call.cost_usd * 1000).quantize(MICRO, rounding=ROUND_HALF_UP)
        assert call.credits == expected
    paid = [call for call in calls if call.cost_usd > 0]
    assert len(debits) == len(paid) > 1_000
    assert -sum((d.amount for d in debits), Decimal(0)) == sum((c.credits for c in calls), Decimal(0))
    by_call = {d.usage_request_id: d for d in debits}
    for call in paid:
        debit = by_call[call.id]
        assert (debit.amount, debit.user_id, debit.group_id) == (-call.credits, call.user_id, call.group_id)
        cycle = cycles.get(debit.cycle_id) if debit.cycle_id else None
        if cycle is not None:  # calls before the first cycle belong to none
            assert cycle.starts_at <= call.created_at < cycle.ends_at
        else:
            assert call.created_at < min(c.starts_at for c in cycles.values())
    assert any(d.cycle_id == current.id for d in debits)
    assert any(d.cycle_id is not None and d.cycle_id != current.id for d in debits)


async def test_the_demo_budgets_fit_and_some_members_are_nearly_exhausted(
    db: AsyncSession, demo: DemoLogin
) -> None:
    owner = await _owner(db)

    overview = await credit_settings.overview(db, owner)
    assert overview.account is not None
    assert overview.groups is not None
    assert overview.account.budgets <= overview.account.limit == 20_000
    assert overview.account.used > 0
    assert len(overview.groups) == 5
    assert all(g.budget > 0 for g in overview.groups)
    assert all(g.distributed <= g.budget for g in overview.groups)
    assert sum(1 for g in overview.groups if g.extra > 0) >= 1
    assert sum(1 for g in overview.groups if g.auto_approve_limit > 0) >= 2
    assert len(list(await db.scalars(select(GroupBudget)))) == 5
    active = list(await db.scalars(select(User).where(User.status == UserStatus.active)))
    assert len(list(await db.scalars(select(MemberAllocation)))) == len(active)
    members = []
    for group in await db.scalars(select(Group)):
        page = await allocations.group_members(db, owner, group.id, PageParams(page=1, per_page=100))
        members += [m for m in page.items if m.user.status is UserStatus.active]
    await db.commit()
    assert len(members) == len(active)
    assert all(m.monthly > 0 and m.remaining >= 0 for m in members)
    assert sum(1 for m in members if m.extra > 0) >= 3
    nearly = [m for m in members if m.used > 0 and m.remaining <= (m.monthly + m.extra) * Decimal("0.06")]
    # In the first hours of a month the new cycle may have no calls yet: nobody can be near a limit.
    if sum(1 for m in members if m.used > 0) >= 4:
        assert len(nearly) >= 3, [
            (m.user.email, m.user.role, m.monthly, m.extra, m.used, m.remaining)
            for m in members
            if m.used > 0
        ]


async def test_the_demo_has_credit_requests_in_every_status(db: AsyncSession, demo: DemoLogin) -> None:
    requests = list(await db.scalars(select(CreditRequest)))
    await db.commit()
    statuses = Counter(r.status for r in requests)
    assert set(statuses) == set(RequestStatus)
    for request in requests:
        assert request.reason
        if request.status in (RequestStatus.approved, RequestStatus.auto_approved):
            assert request.amount_approved is not None
            assert 0 < request.amount_approved <= request.amount_requested
        else:
            assert request.amount_approved is None
        if request.status is RequestStatus.denied:
            assert request.note
        if request.status is RequestStatus.pending:
            assert request.decided_at is None
        else:
            assert request.decided_at is not None
            assert request.decided_at >= request.created_at
    assert any(r.amount_approved is not None and r.amount_approved < r.amount_requested for r in requests)


async def test_a_second_seeding_adds_no_credit_rows(
    db: AsyncSession, settings: Settings, demo: DemoLogin
) -> None:
    tables = (CreditCycle, GroupBudget, MemberAllocation, LedgerEntry, CreditRequest, UsageRecord)

    async def counts() -> list[int]:
        result = [int(await db.scalar(select(func.count()).select_from(t)) or 0) for t in tables]
        await db.commit()
        return result

    before = await counts()
    audited = int(await db.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    await seed_demo(db, settings)
    await db.commit()
    assert await counts() == before
    # Only the demo's gateway token changes hands: the previous one revoked, a new one created.
    actions = await db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq).offset(audited))
    assert sorted(actions) == ["api_token.created", "api_token.revoked"]


async def test_the_owner_can_call_every_demo_model_without_being_refused_or_clamped(
    db: AsyncSession, demo: DemoLogin
) -> None:
    """The gateway token `make demo` prints is the owner's. With credits enforced, the owner's first
    calls must go through at the models' full output limit: their remaining credits cover the hold."""
    owner = await _owner(db)
    [account] = list(await db.scalars(select(Account)))
    mine = await allocations.member_allocation(db, owner, owner.user_id)
    hello = {"messages": [{"role": "user", "content": "Write a haiku about the sea."}]}
    chat_models = list(await db.scalars(select(Model).where(Model.output_price_per_million > 0)))
    assert len(chat_models) == 3
    for model in chat_models:
        plan = plan_hold(
            input_tokens=input_token_bound(hello, operation="chat"),
            asked_max_output=None,
            model_max_output=model.max_output_tokens,
            context_window=model.context_window,
            input_price=model.input_price_per_million,
            output_price=model.output_price_per_million,
            cached_price=model.cached_input_price_per_million or Decimal(0),
            factor=account.credit_factor,
            available=mine.remaining,
        )
        assert isinstance(plan, HoldPlan), model.name
        assert plan.max_output_tokens == (model.max_output_tokens or DEFAULT_MAX_OUTPUT), model.name
