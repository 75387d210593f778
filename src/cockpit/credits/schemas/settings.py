"""Credit settings, cycles and the overview over the API. Amounts come in as JSON numbers or decimal
strings and leave as exact decimal strings ("1500.5")."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, StrictInt

from cockpit.credits.amounts import plain
from cockpit.credits.figures import AccountFigures, GroupFigures, MemberFigures
from cockpit.credits.models import Cadence, CreditCycle
from cockpit.credits.settings import CycleRow, Overview
from cockpit.credits.thresholds import thresholds_of
from cockpit.kit.pagination import Page, PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.tenancy.models import Account

# Zero or more, at most 6 decimal places (the service checks again with the same rule).
Credits = Annotated[Decimal, Field(ge=0, decimal_places=6, allow_inf_nan=False)]


class CreditSettingsChange(InputSchema):
    credits_per_cycle: Credits | None = Field(
        default=None, description="The account's limit; applies to the current cycle at once"
    )
    cycle_cadence: Cadence | None = Field(default=None, description="A change starts a fresh cycle now")
    credit_factor: Credits | None = Field(
        default=None, description="Credits per $1 of cost; 0 disables tracking"
    )
    signup_credits: Credits | None = Field(
        default=None, description="Extra credits of a new user; 0 for none"
    )
    budget_thresholds: list[StrictInt] | None = Field(
        default=None,
        max_length=10,
        description="Percentages of a cycle's credits (1-1000, at most 10) at which the account, each "
        "group and each member are notified once per cycle (`budget.threshold_crossed`); [] for none",
    )


class CycleOut(OutputSchema):
    id: uuid.UUID
    seq: int
    starts_at: datetime
    ends_at: datetime
    cadence: str

    @classmethod
    def of(cls, cycle: CreditCycle) -> CycleOut:
        return cls(
            id=cycle.id,
            seq=cycle.seq,
            starts_at=cycle.starts_at,
            ends_at=cycle.ends_at,
            cadence=cycle.cadence,
        )


class CreditSettingsOut(OutputSchema):
    credits_per_cycle: str
    cycle_cadence: str
    credit_factor: str
    signup_credits: str
    budget_thresholds: list[int]
    tracking_enabled: bool
    current_cycle: CycleOut

    @classmethod
    def of(cls, account: Account, cycle: CreditCycle) -> CreditSettingsOut:
        return cls(
            credits_per_cycle=plain(account.credits_per_cycle),
            cycle_cadence=account.cycle_cadence,
            credit_factor=plain(account.credit_factor),
            signup_credits=plain(account.signup_credits),
            budget_thresholds=thresholds_of(account),
            tracking_enabled=account.credit_factor > 0,
            current_cycle=CycleOut.of(cycle),
        )


class CycleListItem(CycleOut):
    closed_at: datetime | None
    started_by: str
    credits_per_cycle: str
    used: str

    @classmethod
    def of_row(cls, row: CycleRow) -> CycleListItem:
        c = row.cycle
        return cls(
            id=c.id, seq=c.seq, starts_at=c.starts_at, ends_at=c.ends_at, cadence=c.cadence,
            closed_at=c.closed_at, started_by=c.started_by, credits_per_cycle=plain(c.credits_per_cycle),
            used=plain(row.used),
        )  # fmt: skip


class CycleList(OutputSchema):
    items: list[CycleListItem]
    meta: PageMeta

    @classmethod
    def of(cls, page: Page[CycleRow]) -> CycleList:
        return cls(items=[CycleListItem.of_row(row) for row in page.items], meta=PageMeta.of(page))


class CycleStatusOut(CycleOut):
    seconds_left: int = Field(description="Until the cycle ends (it rolls over by itself)")


class AccountFiguresOut(OutputSchema):
    limit: str = Field(description="Credits per cycle")
    used: str
    held: str = Field(description="Reserved by calls in flight")
    available: str = Field(description="limit - used - held")
    usage_percent: str = Field(description="used / limit x 100, one decimal; 0 when the limit is 0")
    budgets: str = Field(description="The sum of the groups' budgets this cycle")
    unallocated: str = Field(description="limit - budgets")

    @classmethod
    def of(cls, a: AccountFigures) -> AccountFiguresOut:
        return cls(
            limit=plain(a.limit), used=plain(a.used), held=plain(a.held), available=plain(a.available),
            usage_percent=plain(a.usage_percent), budgets=plain(a.budgets), unallocated=plain(a.unallocated),
        )  # fmt: skip


class GroupFiguresOut(OutputSchema):
    id: uuid.UUID
    name: str
    is_default: bool
    members: int = Field(description="Active users in the group")
    monthly: str
    extra: str = Field(description="Extra credits of the current cycle")
    budget: str = Field(description="monthly + extra")
    distributed: str = Field(description="Its members' monthly + current-cycle extra")
    available: str = Field(description="budget - distributed")
    used: str = Field(description="Its members' usage this cycle")
    auto_approve_limit: str

    @classmethod
    def of(cls, g: GroupFigures) -> GroupFiguresOut:
        return cls(
            id=g.group.id, name=g.group.name, is_default=g.group.is_default, members=g.members,
            monthly=plain(g.monthly), extra=plain(g.extra), budget=plain(g.budget),
            distributed=plain(g.distributed), available=plain(g.available), used=plain(g.used),
            auto_approve_limit=plain(g.auto_approve_limit),
        )  # fmt: skip


class MemberFiguresOut(OutputSchema):
    user_id: uuid.UUID
    group_id: uuid.UUID
    monthly: str
    extra: str = Field(description="Extra credits of the current cycle")
    used: str
    held: str
    remaining: str = Field(description="monthly + extra - used - held")

    @classmethod
    def of(cls, m: MemberFigures) -> MemberFiguresOut:
        return cls(
            user_id=m.user_id, group_id=m.group_id, monthly=plain(m.monthly), extra=plain(m.extra),
            used=plain(m.used), held=plain(m.held), remaining=plain(m.remaining),
        )  # fmt: skip


class OverviewOut(OutputSchema):
    scope: str = Field(description='"account" for administrators, "member" for everyone else')
    cycle: CycleStatusOut
    tracking_enabled: bool
    credit_factor: str
    me: MemberFiguresOut | None = Field(description="The caller's own allowance (users)")
    account: AccountFiguresOut | None = Field(description="Administrators only")
    groups: list[GroupFiguresOut] | None = Field(description="Administrators only")

    @classmethod
    def of(cls, o: Overview) -> OverviewOut:
        c = o.cycle
        return cls(
            scope="account" if o.account is not None else "member",
            cycle=CycleStatusOut(
                id=c.id, seq=c.seq, starts_at=c.starts_at, ends_at=c.ends_at, cadence=c.cadence,
                seconds_left=o.seconds_left,
            ),
            tracking_enabled=o.tracking_enabled,
            credit_factor=plain(o.credit_factor),
            me=MemberFiguresOut.of(o.me) if o.me is not None else None,
            account=AccountFiguresOut.of(o.account) if o.account is not None else None,
            groups=[GroupFiguresOut.of(g) for g in o.groups] if o.groups is not None else None,
        )  # fmt: skip
