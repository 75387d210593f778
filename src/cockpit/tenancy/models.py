"""The tenant: an account (organisation), and the row that serialises the account's writers."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, MicroDecimal, TimestampMixin


class Account(IdMixin, TimestampMixin, Base):
    """An organisation: the tenant every other row belongs to."""

    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # How the console writes dates (console.formatting.LOCALES); numbers are the same everywhere.
    locale: Mapped[str] = mapped_column(String(16), default="en-GB", server_default="en-GB")
    # Seats per product (copilot, console, compute): how many active users may hold one.
    seat_limit_copilot: Mapped[int] = mapped_column(default=25, server_default="25")
    seat_limit_console: Mapped[int] = mapped_column(default=25, server_default="25")
    seat_limit_compute: Mapped[int] = mapped_column(default=25, server_default="25")
    # Gateway: keep each call's input and output, and for how long (days).
    store_request_content: Mapped[bool] = mapped_column(default=False, server_default=false())
    content_retention_days: Mapped[int] = mapped_column(default=30, server_default="30")
    # Credits: internal units per $1 of cost (0: costs are recorded, no credits are tracked),
    # the account's credits per cycle, the cycle's cadence, and the extra credits of a new user.
    credit_factor: Mapped[Decimal] = mapped_column(MicroDecimal(), default=Decimal(0), server_default="0")
    credits_per_cycle: Mapped[Decimal] = mapped_column(MicroDecimal(), default=Decimal(0), server_default="0")
    cycle_cadence: Mapped[str] = mapped_column(String(10), default="month", server_default="month")
    signup_credits: Mapped[Decimal] = mapped_column(MicroDecimal(), default=Decimal(0), server_default="0")
    # The percentages of a cycle's credits used at which the account, each group and each member are
    # notified once per cycle (``budget.threshold_crossed``; credits.thresholds): sorted, unique.
    budget_thresholds: Mapped[list[int]] = mapped_column(
        JSON, default=lambda: [50, 80, 100], server_default=text("'[50, 80, 100]'")
    )
    # Prepended to every agent's instructions (the organisation's tone, policies, context).
    custom_instructions: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Conversations: whether administrators may review the account's conversations (each review is
    # audited and shown to the owner), and after how many days without activity a conversation is
    # deleted (0: kept until its owner deletes it).
    conversation_review_enabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    conversation_retention_days: Mapped[int] = mapped_column(default=0, server_default="0")
    # Scheduled cost reports (issue 16): the last week's or month's cost tracking, made by the job
    # queue and announced to the administrators ("off", "weekly", "monthly"), in this format.
    report_cadence: Mapped[str] = mapped_column(String(10), default="off", server_default="off")
    report_format: Mapped[str] = mapped_column(String(10), default="pdf", server_default="pdf")
    # When the organisation's logo (``AccountLogo``) was set; None: no logo, the initial shows.
    logo_updated_at: Mapped[datetime | None]
    # The lock of account-wide invariants (and the head of the account's audit chain) is a row of
    # ``audit_chain_heads`` (see cockpit.tenancy.lock).


class AuditChainHead(Base):
    """The account's lock row (``tenancy.lock``), which also keeps the head of its audit chain.

    ``seq`` and ``head`` are the last audit entry's number and hash: only ``audit.service.record``
    writes them, under the lock this row is. The table keeps its audit name (the migrations made it).

    A row of its own, not columns of ``accounts``: every row that references an account takes a
    KEY SHARE lock on the account row (PostgreSQL's foreign-key check), so a transaction that had
    inserted such a row and then asked ``FOR UPDATE`` on the account row to append to the chain
    deadlocked with any other transaction doing the same. Nothing references this table, so locking
    one of its rows waits only for the other appenders of that account, in order.
    """

    __tablename__ = "audit_chain_heads"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(default=0)
    head: Mapped[str] = mapped_column(String(64), default="")


class AccountLogo(Base):
    """The organisation's logo (accounts.service): a checked PNG, JPEG or WebP image."""

    __tablename__ = "account_logos"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    media_type: Mapped[str] = mapped_column(String(20))
    width: Mapped[int]
    height: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]
