"""Credits API: budget pace (/api/v1/credits/pace) — credits used so far this cycle, the average daily
burn and the day a budget runs out at that pace, for the account, every group and every member
(administrators) or one's own allowance (members). Credits are exact decimal strings; moments are
ISO 8601 instants, and ``runs_out_on`` is that moment's day in the account's time zone."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Query
from pydantic import Field

from cockpit.api.credits import router
from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits import pace as service
from cockpit.credits.figures import MemberFigures
from cockpit.credits.models import CreditCycle
from cockpit.credits.pace import BudgetPace, Pace, Paced, PaceStatus
from cockpit.kit.money import plain
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.schemas import OutputSchema
from cockpit.kit.web import DbSession
from cockpit.tenancy.service import account_by_id

Member = Annotated[Actor, Depends(require(Permission.credits_own))]


class PaceOut(OutputSchema):
    budget: str | None = Field(description="Credits of this cycle (null: no limit, tracking is off)")
    used: str = Field(description="Credits used so far this cycle")
    left: str | None = Field(description="budget - used (null: no limit)")
    daily_burn: str = Field(description="Credits used per day so far this cycle, to the cent")
    status: PaceStatus = Field(
        description="runs_out (before the cycle ends), lasts_cycle, exhausted, no_limit, no_budget"
    )
    runs_out_at: datetime | None = Field(description="When the budget runs out at this pace, if this cycle")
    runs_out_on: date | None = Field(description="That moment's day in the account's time zone")

    @classmethod
    def of(cls, p: Pace, zone: ZoneInfo) -> PaceOut:
        left = p.left
        moment = p.runs_out_at if p.status is PaceStatus.runs_out else None
        return cls(
            budget=None if p.budget is None else plain(p.budget),
            used=plain(p.used),
            left=None if left is None else plain(left),
            daily_burn=plain(p.daily_burn),
            status=p.status,
            runs_out_at=moment,
            runs_out_on=moment.astimezone(zone).date() if moment is not None else None,
        )


class GroupPaceOut(PaceOut):
    group_id: uuid.UUID
    group_name: str


class MemberPaceOut(PaceOut):
    user_id: uuid.UUID
    name: str
    email: str
    group_id: uuid.UUID

    @classmethod
    def member(cls, paced: Paced[MemberFigures], zone: ZoneInfo) -> MemberPaceOut:
        user = paced.figures.user
        base = PaceOut.of(paced.pace, zone).model_dump()
        return cls(**base, user_id=user.id, name=user.name, email=user.email, group_id=user.group_id)


class MemberPaceList(OutputSchema):
    items: list[MemberPaceOut]
    meta: PageMeta
    at_risk: int = Field(description="Members (on every page) out of credits or running out this cycle")


class CycleRef(OutputSchema):
    seq: int
    starts_at: datetime
    ends_at: datetime

    @classmethod
    def of(cls, cycle: CreditCycle) -> CycleRef:
        return cls(seq=cycle.seq, starts_at=cycle.starts_at, ends_at=cycle.ends_at)


class BudgetPaceOut(OutputSchema):
    now: datetime
    timezone: str
    cycle: CycleRef
    tracking_enabled: bool
    me: MemberPaceOut | None = Field(description="The caller's own allowance (null: not a member)")
    account: PaceOut | None = Field(description="Administrators only")
    groups: list[GroupPaceOut] | None = Field(description="Administrators only")
    members: MemberPaceList | None = Field(description="Administrators only: one page of every member")

    @classmethod
    def of(cls, found: BudgetPace, zone: ZoneInfo) -> BudgetPaceOut:
        members = None
        if found.members is not None:
            page = found.members.page
            members = MemberPaceList(
                items=[MemberPaceOut.member(m, zone) for m in page.items],
                meta=PageMeta.of(page),
                at_risk=found.members.at_risk,
            )
        groups = None
        if found.groups is not None:
            groups = [
                GroupPaceOut(
                    **PaceOut.of(g.pace, zone).model_dump(),
                    group_id=g.figures.group.id,
                    group_name=g.figures.group.name,
                )
                for g in found.groups
            ]
        return cls(
            now=found.now,
            timezone=zone.key,
            cycle=CycleRef.of(found.cycle),
            tracking_enabled=found.tracking_enabled,
            me=MemberPaceOut.member(found.me, zone) if found.me is not None else None,
            account=PaceOut.of(found.account.pace, zone) if found.account is not None else None,
            groups=groups,
            members=members,
        )


@router.get("/credits/pace", response_model=BudgetPaceOut)
async def budget_pace(
    session: DbSession,
    actor: Member,
    paging: Annotated[PageParams, Depends(page_params)],
    order: Annotated[
        service.MemberOrder, Query(description="Members by name, or by risk (out of credits, then soonest)")
    ] = "name",
) -> BudgetPaceOut:
    """Budget pace this cycle: administrators get the account, every group and a page of members;
    members get their own allowance only."""
    found = await service.budget_pace(session, actor, paging, order=order)
    account = await account_by_id(session, actor.account_id)
    try:
        zone = ZoneInfo(account.timezone if account is not None else "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return BudgetPaceOut.of(found, zone)
