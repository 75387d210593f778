"""Credits API: settings (/api/v1/credits/settings), cycles and the overview."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from cockpit.api.credits import router
from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits import settings as service
from cockpit.credits.schemas.settings import (
    CreditSettingsChange,
    CreditSettingsOut,
    CycleList,
    CycleOut,
    OverviewOut,
)
from cockpit.kit.pagination import PageParams, page_params
from cockpit.kit.web import DbSession

Member = Annotated[Actor, Depends(require(Permission.credits_own))]
Manager = Annotated[Actor, Depends(require(Permission.credits_manage))]


@router.get("/credits/settings", response_model=CreditSettingsOut)
async def get_settings(session: DbSession, actor: Manager) -> CreditSettingsOut:
    """Credits per cycle, cadence, credit factor, signup credits and the current cycle."""
    account, cycle = await service.credit_settings(session, actor)
    return CreditSettingsOut.of(account, cycle)


@router.patch("/credits/settings", response_model=CreditSettingsOut)
async def change_settings(
    body: CreditSettingsChange, session: DbSession, actor: Manager
) -> CreditSettingsOut:
    """Change any field. A new `credits_per_cycle` applies to the current cycle at once (it may not be
    below the groups' budgets); a new `cycle_cadence` starts a fresh cycle now; `budget_thresholds`
    are whole percentages from 1 to 1000 (at most 10, stored sorted and each once)."""
    account, cycle = await service.change_settings(
        session,
        actor,
        credits_per_cycle=body.credits_per_cycle,
        cycle_cadence=body.cycle_cadence,
        credit_factor=body.credit_factor,
        signup_credits=body.signup_credits,
        budget_thresholds=body.budget_thresholds,
    )
    return CreditSettingsOut.of(account, cycle)


@router.post("/credits/cycle/reset", response_model=CycleOut)
async def reset_cycle(session: DbSession, actor: Manager) -> CycleOut:
    """Start a fresh cycle now (cannot be undone): used credits count from zero, extras expire."""
    return CycleOut.of(await service.reset_cycle(session, actor))


@router.get("/credits/cycles", response_model=CycleList)
async def list_cycles(
    session: DbSession, actor: Manager, paging: Annotated[PageParams, Depends(page_params)]
) -> CycleList:
    """Past and current cycles, newest first, with the credits used in each."""
    return CycleList.of(await service.list_cycles(session, actor, paging))


@router.get("/credits/overview", response_model=OverviewOut)
async def overview(session: DbSession, actor: Member) -> OverviewOut:
    """Administrators: the cycle, the account's and every group's figures. Members: their own."""
    return OverviewOut.of(await service.overview(session, actor))
