"""Credits: cycles, budgets of groups and members, the ledger of every movement, credit requests.

Amounts are credits, exact to the millionth (``MicroDecimal``: integer micro-credits in the
database). A call's credits are its USD cost x the account's credit factor.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, MicroDecimal, PicoDecimal, TimestampMixin

CREDITS = MicroDecimal()
ZERO = Decimal(0)


class Cadence(StrEnum):
    month = "month"  # calendar month in the account's time zone
    days_15 = "15d"
    week = "week"
    day = "day"
    hours_12 = "12h"
    hour = "hour"


class CycleStart(StrEnum):
    initial = "initial"  # the account's first cycle
    scheduled = "scheduled"  # the previous cycle ended on time
    reset = "reset"  # "Reset cycle now"
    cadence_changed = "cadence_changed"


class CreditCycle(IdMixin, TimestampMixin, Base):
    """One budget period of an account. The current cycle is the one not closed yet."""

    __tablename__ = "credit_cycles"
    __table_args__ = (UniqueConstraint("account_id", "seq"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int]
    cadence: Mapped[str] = mapped_column(String(10))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    started_by: Mapped[str] = mapped_column(String(20))
    # The account's credits per cycle while this cycle ran (the last value set during it).
    credits_per_cycle: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO)
    # Credits added to this cycle on top of that: top-ups bought through Stripe or added by hand by
    # an owner (each one also an ``extra_granted`` ledger entry of the account). Spendable this cycle:
    # ``credits.cycles.account_limit``.
    added_credits: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO, server_default="0")
    closed_at: Mapped[datetime | None]


class GroupBudget(TimestampMixin, Base):
    """A group's share of the account's credits: monthly (every cycle) plus extra (this cycle)."""

    __tablename__ = "group_budgets"

    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    monthly: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO)
    extra: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO)
    # Extra credits belong to one cycle; in any other cycle they count as zero.
    extra_cycle_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("credit_cycles.id", ondelete="SET NULL")
    )
    # Requests up to this amount are approved at once when the group can cover them (0: never).
    auto_approve_limit: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO)


class MemberAllocation(TimestampMixin, Base):
    """A member's allowance, drawn from their group's budget: monthly plus extra (this cycle)."""

    __tablename__ = "member_allocations"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    monthly: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO)
    extra: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO)
    extra_cycle_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("credit_cycles.id", ondelete="SET NULL")
    )
    # Signup credits the group could not cover when the user joined (shown on the Allocations tab).
    signup_shortfall: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO)


class EntryKind(StrEnum):
    allocation_set = "allocation_set"  # a monthly allocation changed (amount: the change)
    extra_granted = "extra_granted"  # extra credits given by an administrator
    signup_grant = "signup_grant"  # extra credits given to a new user
    request_approved = "request_approved"  # a credit request approved (or auto-approved)
    usage_debit = "usage_debit"  # a gateway call's credits (amount negative)
    hold = "hold"  # credits reserved for a call in flight (amount negative)
    release = "release"  # a hold given back (amount positive)
    cycle_reset = "cycle_reset"  # a new cycle started
    # A group's monthly budget or a member's monthly allocation, carried into a new cycle at its start.
    cycle_allocation = "cycle_allocation"


class LedgerEntry(IdMixin, Base):
    """An append-only record of one credit movement. Balances are derived from these rows."""

    __tablename__ = "credit_ledger"
    __table_args__ = (
        Index("ix_credit_ledger_account_cycle_created", "account_id", "cycle_id", "created_at"),
        Index("ix_credit_ledger_account_user_created", "account_id", "user_id", "created_at"),
        Index("ix_credit_ledger_account_group_created", "account_id", "group_id", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    cycle_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("credit_cycles.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    kind: Mapped[EntryKind] = mapped_column(
        Enum(EntryKind, native_enum=False, length=30, validate_strings=True)
    )
    # Whose balance moved: a member (user_id, with their group), a group (group_id only) or the account.
    user_id: Mapped[uuid.UUID | None]
    group_id: Mapped[uuid.UUID | None]
    amount: Mapped[Decimal] = mapped_column(CREDITS)
    description: Mapped[str] = mapped_column(String(300), default="")
    actor_label: Mapped[str | None] = mapped_column(String(254))
    # Usage debits: the call and what it cost.
    usage_request_id: Mapped[uuid.UUID | None]
    model: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int | None]
    output_tokens: Mapped[int | None]
    usd: Mapped[Decimal | None] = mapped_column(PicoDecimal())
    credit_request_id: Mapped[uuid.UUID | None]


class RequestStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    denied = "denied"
    auto_approved = "auto_approved"


class CreditRequest(IdMixin, TimestampMixin, Base):
    """A member asking for extra credits for the current cycle."""

    __tablename__ = "credit_requests"
    __table_args__ = (
        Index("ix_credit_requests_account_status_created", "account_id", "status", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    cycle_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("credit_cycles.id", ondelete="SET NULL"))
    amount_requested: Mapped[Decimal] = mapped_column(CREDITS)
    amount_approved: Mapped[Decimal | None] = mapped_column(CREDITS)
    reason: Mapped[str] = mapped_column(String(1000))
    status: Mapped[RequestStatus] = mapped_column(
        Enum(RequestStatus, native_enum=False, length=20, validate_strings=True),
        default=RequestStatus.pending,
    )
    decided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(String(1000), default="")


class CreditLease(IdMixin, Base):
    """Credits a gateway process has reserved for one member's calls (held at member, group and
    account level). The process serves the holds of that member's calls from it in memory; a
    recorded call's credits move from the lease to used; what is left goes back when the member is
    idle. A lease whose process stopped renewing it (a crash) expires and is swept."""

    __tablename__ = "credit_leases"
    __table_args__ = (Index("ix_credit_leases_expires_at", "expires_at"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    cycle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("credit_cycles.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID]
    group_id: Mapped[uuid.UUID | None]
    amount: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO)  # reserved now
    owner: Mapped[str] = mapped_column(String(100))  # host:pid:nonce of the process
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class BalanceScope(StrEnum):
    account = "account"
    group = "group"
    user = "user"


class CreditBalance(Base):
    """Running totals of a cycle's ledger, per account, group and member: credits used by calls and
    credits held. Written in the same transactions as the ledger entries they sum, so that the
    gateway can check a budget with one row read; ``reconcile`` compares them with the ledger."""

    __tablename__ = "credit_balances"

    cycle_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("credit_cycles.id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(String(10), primary_key=True)
    scope_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    used: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO)
    held: Mapped[Decimal] = mapped_column(CREDITS, default=ZERO)
