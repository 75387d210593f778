"""Pre-aggregated sums of the recorded calls (docs/analytics-rollups.md), so that the analytics views
of a long period read a few thousand rows instead of millions of calls.

``usage_rollups`` holds one row per account, dimension (``dim``), block of local days and value
(``key``; ``key2`` for the pairs such as user|model; '' for a call without one). A block of level
``k`` covers 4^k local days (1, 4, 16, 64) starting at day ``block * 4^k``; the pairs whose values
are people have every level (``rollup_dims.DIMS``), the others only days (level 0). The running dims
(``user+``, ``token+``) hold, per value and local day, the sums over every day up to that one.
The sums are the stored integers of the calls (pico-dollars, micro-credits, tokens, milliseconds),
so a period's figures add up exactly. ``people`` is kept on the whole-day rows (``dim='*'``,
level 0): the distinct people who called that day.

``usage_rollup_state`` holds the watermark: every call at or below it (SQLite: its ``rowid``;
PostgreSQL: its ``recorded_xid``, the transaction that wrote it) is in the rollups, none above it.
``usage_rollup_accounts`` holds the time zone each account's rollups were built in, whether they keep
the person dimensions, and how many calls they hold.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, SmallInteger, String, true
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base

SUM_COLUMNS = (
    "requests", "errors", "successes", "cost_usd", "credits", "input_tokens", "output_tokens",
    "cached_tokens", "latency_ms", "ttft_ms", "ttft_calls",
)  # fmt: skip


class UsageRollup(Base):
    __tablename__ = "usage_rollups"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    dim: Mapped[str] = mapped_column(String(20), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    block: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(220), primary_key=True)
    key2: Mapped[str] = mapped_column(String(220), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    successes: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[int] = mapped_column(BigInteger)  # pico-dollars
    credits: Mapped[int] = mapped_column(BigInteger)  # micro-credits
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    latency_ms: Mapped[int] = mapped_column(BigInteger)
    ttft_ms: Mapped[int] = mapped_column(BigInteger)
    ttft_calls: Mapped[int] = mapped_column(BigInteger)
    people: Mapped[int] = mapped_column(Integer, default=0)


class UsageRollupState(Base):
    __tablename__ = "usage_rollup_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    watermark: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class UsageRollupAccount(Base):
    __tablename__ = "usage_rollup_accounts"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    zone: Mapped[str] = mapped_column(String(64))
    # Whether the dimensions not ``always`` kept (people, tokens, pairs) are, and the calls held: an
    # account keeps them once it holds COCKPIT_ROLLUP_PEOPLE_FROM calls (docs/analytics-rollups.md).
    people: Mapped[bool] = mapped_column(Boolean, server_default=true())
    calls: Mapped[int] = mapped_column(BigInteger, server_default="0")
