"""Allocations over the API: amounts come in as JSON numbers or decimal strings and leave as exact
decimal strings ("1500.5")."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from cockpit.credits.amounts import MAX_AMOUNT
from cockpit.credits.figures import GroupFigures, MemberFigures
from cockpit.kit.money import plain
from cockpit.kit.pagination import Page, PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema

# Zero or more, at most 6 decimal places (the service checks again with messages naming the field).
Credits = Annotated[Decimal, Field(ge=0, le=MAX_AMOUNT, decimal_places=6, allow_inf_nan=False)]


class GroupAllocationChange(InputSchema):
    """Fields left out stay as they are."""

    monthly: Credits | None = None
    extra: Credits | None = Field(default=None, description="Extra credits for the current cycle")
    auto_approve_limit: Credits | None = Field(
        default=None, description="Requests up to this amount are approved at once (0: never)"
    )


class MemberAllocationChange(InputSchema):
    """Fields left out stay as they are."""

    monthly: Credits | None = None
    extra: Credits | None = Field(default=None, description="Extra credits for the current cycle")


class GroupAllocationOut(OutputSchema):
    group_id: uuid.UUID
    group_name: str
    monthly: str
    extra: str = Field(description="Extra credits of the current cycle")
    budget: str = Field(description="monthly + extra")
    distributed: str = Field(description="The members' monthly + current-cycle extra credits")
    available: str = Field(description="budget - distributed")
    used: str = Field(description="The members' usage this cycle")
    members: int = Field(description="Active users in the group")
    auto_approve_limit: str

    @classmethod
    def of(cls, figures: GroupFigures) -> GroupAllocationOut:
        return cls(
            group_id=figures.group.id,
            group_name=figures.group.name,
            monthly=plain(figures.monthly),
            extra=plain(figures.extra),
            budget=plain(figures.budget),
            distributed=plain(figures.distributed),
            available=plain(figures.available),
            used=plain(figures.used),
            members=figures.members,
            auto_approve_limit=plain(figures.auto_approve_limit),
        )


class MemberAllocationOut(OutputSchema):
    user_id: uuid.UUID
    group_id: uuid.UUID
    monthly: str
    extra: str = Field(description="Extra credits of the current cycle")
    used: str
    held: str = Field(description="Reserved by calls in flight")
    remaining: str = Field(description="monthly + extra - used - held")
    signup_shortfall: str = Field(description="Signup credits the group could not cover")

    @classmethod
    def of(cls, figures: MemberFigures) -> MemberAllocationOut:
        return cls(
            user_id=figures.user.id,
            group_id=figures.user.group_id,
            monthly=plain(figures.monthly),
            extra=plain(figures.extra),
            used=plain(figures.used),
            held=plain(figures.held),
            remaining=plain(figures.remaining),
            signup_shortfall=plain(figures.signup_shortfall),
        )


class GroupMemberRow(OutputSchema):
    user_id: uuid.UUID
    name: str
    email: str
    status: str
    monthly: str
    extra: str
    used: str
    held: str
    remaining: str
    signup_shortfall: str

    @classmethod
    def of(cls, figures: MemberFigures) -> GroupMemberRow:
        user = figures.user
        return cls(
            user_id=user.id,
            name=user.name,
            email=user.email,
            status=user.status.value,
            monthly=plain(figures.monthly),
            extra=plain(figures.extra),
            used=plain(figures.used),
            held=plain(figures.held),
            remaining=plain(figures.remaining),
            signup_shortfall=plain(figures.signup_shortfall),
        )


class GroupMemberList(OutputSchema):
    items: list[GroupMemberRow]
    meta: PageMeta

    @classmethod
    def of(cls, page: Page[MemberFigures]) -> GroupMemberList:
        return cls(items=[GroupMemberRow.of(f) for f in page.items], meta=PageMeta.of(page))
