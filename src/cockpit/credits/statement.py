"""Statements: a member's, a group's or the account's ledger entries over a time range, like a bank
statement, with a running balance, as JSON or CSV.

Which entries belong to a statement (each level shows what it was given and what was spent under it):
- a member: every entry of theirs (allocation changes, extra credits, approved requests, usage debits);
- a group: the group's own entries (its budget changes) and its members' usage debits;
- the account: account-level entries (cycle starts with the credits per cycle) and every usage debit.
Holds and releases of calls in flight are not listed: a settled call appears once, as its usage debit.

The balance: ``opening_balance`` is the net of the statement's entries from the start of the cycle
containing ``from`` up to ``from`` (0 when ``from`` is a cycle's start, as by default); each line's
balance is the opening balance plus the credits of that line and every line before it, so
``closing_balance = opening_balance + sum(credits)``. It is the net of recorded movements, not the
spendable remainder (a monthly allocation set in an earlier cycle carries over without a new entry).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.models import Account
from cockpit.auth.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits.cycles import current_cycle, cycle_at
from cockpit.credits.models import EntryKind, LedgerEntry
from cockpit.groups import repository as groups
from cockpit.kit.errors import InvalidInput, NotFound, NotPermitted
from cockpit.kit.money import plain
from cockpit.users.models import User

ZERO = Decimal(0)
MICRO = Decimal(1_000_000)
QUANTUM = Decimal("0.000001")
IN_FLIGHT = (EntryKind.hold, EntryKind.release)

BASIS = {
    "user": "The member's net credits: allocation changes, extra credits and approved requests add, "
    "usage subtracts. Balance = opening_balance + the credits of the lines so far.",
    "group": "The group's net credits: changes of its budget add or subtract, its members' usage "
    "subtracts. Balance = opening_balance + the credits of the lines so far.",
    "account": "The account's net credits: each cycle start adds the credits per cycle, all usage "
    "subtracts. Balance = opening_balance + the credits of the lines so far.",
}


@dataclass(frozen=True)
class StatementLine:
    entry: LedgerEntry
    balance: Decimal
    unit_price: Decimal | None  # credits per 1M tokens (input and output together)
    usd: Decimal | None  # the call's cost (usage debits only)


@dataclass(frozen=True)
class Statement:
    scope: str  # "user" | "group" | "account"
    user_id: uuid.UUID | None
    group_id: uuid.UUID | None
    start: datetime
    end: datetime
    opening_balance: Decimal
    closing_balance: Decimal
    lines: Sequence[StatementLine]

    @property
    def balance_basis(self) -> str:
        return BASIS[self.scope]


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        "invalid_input", f"{field}: {message}.", details=[{"field": field, "message": message}]
    )


def _scope_filter(scope: str, target_id: uuid.UUID | None) -> ColumnElement[bool]:
    if scope == "user":
        return LedgerEntry.user_id == target_id
    if scope == "group":
        return and_(
            LedgerEntry.group_id == target_id,
            or_(LedgerEntry.user_id.is_(None), LedgerEntry.kind == EntryKind.usage_debit),
        )
    return or_(
        and_(LedgerEntry.user_id.is_(None), LedgerEntry.group_id.is_(None)),
        LedgerEntry.kind == EntryKind.usage_debit,
    )


def unit_price(entry: LedgerEntry) -> Decimal | None:
    """Credits per million tokens of a usage debit, when it has tokens."""
    tokens = (entry.input_tokens or 0) + (entry.output_tokens or 0)
    if entry.kind is not EntryKind.usage_debit or tokens <= 0:
        return None
    return (abs(entry.amount) * MICRO / tokens).quantize(QUANTUM, rounding=ROUND_HALF_UP)


async def _resolve_scope(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID | None, group_id: uuid.UUID | None
) -> tuple[str, uuid.UUID | None]:
    """Whose statement, checking who may see it (another account's user or group: NotFound)."""
    if user_id is not None and group_id is not None:
        raise _bad("group_id", "give user_id or group_id, not both")
    if user_id is None and group_id is None:
        if actor.can(Permission.credits_manage):
            return "account", None
        user_id = actor.user_id  # a member's statement is their own
        if user_id is None:
            raise NotPermitted("not_permitted", "You do not have permission to do this.")
    if user_id is not None:
        if user_id != actor.user_id:
            actor.require(Permission.credits_manage)
        actor.require(Permission.credits_own)
        user = await session.scalar(
            select(User).where(User.id == user_id, User.account_id == actor.account_id)
        )
        if user is None:
            raise NotFound("user_not_found", "No such user.")
        return "user", user.id
    assert group_id is not None
    actor.require(Permission.credits_manage)
    if await groups.get_in_account(session, actor.account_id, group_id) is None:
        raise NotFound("group_not_found", "No such group.")
    return "group", group_id


async def build_statement(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Statement:
    """The entries of a member, a group or (neither) the account between ``start`` and ``end``,
    oldest first, with running balances. Default range: the current cycle."""
    for field, value in (("from", start), ("to", end)):
        if value is not None and value.tzinfo is None:
            raise _bad(field, "give a time zone (e.g. 2026-01-31T00:00:00Z)")
    scope, target_id = await _resolve_scope(session, actor, user_id, group_id)
    account = await session.get(Account, actor.account_id)
    if account is None:  # pragma: no cover - the actor's account exists
        raise NotFound("account_not_found", "No such account.")
    cycle = await current_cycle(session, account)
    start = start if start is not None else cycle.starts_at
    end = end if end is not None else max(cycle.ends_at, start)
    if start >= end:
        raise _bad("to", "must be later than from")
    where = [
        LedgerEntry.account_id == account.id,
        LedgerEntry.kind.not_in(IN_FLIGHT),
        _scope_filter(scope, target_id),
    ]
    opening = ZERO
    first_cycle = await cycle_at(session, account.id, start)
    if first_cycle is not None:
        total = await session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.__table__.c.amount, type_=BigInteger), 0)).where(
                *where, LedgerEntry.cycle_id == first_cycle.id, LedgerEntry.created_at < start
            )
        )
        opening = Decimal(int(total or 0)) / MICRO
    entries = await session.scalars(
        select(LedgerEntry)
        .where(*where, LedgerEntry.created_at >= start, LedgerEntry.created_at < end)
        .order_by(LedgerEntry.created_at, LedgerEntry.id)
    )
    balance, lines = opening, []
    for entry in entries:
        balance += entry.amount
        usd = entry.usd if entry.kind is EntryKind.usage_debit else None
        lines.append(StatementLine(entry, balance, unit_price(entry), usd))
    return Statement(
        scope=scope,
        user_id=target_id if scope == "user" else None,
        group_id=target_id if scope == "group" else None,
        start=start,
        end=end,
        opening_balance=opening,
        closing_balance=balance,
        lines=lines,
    )


CSV_COLUMNS = [
    "date",
    "description",
    "kind",
    "model",
    "input_tokens",
    "output_tokens",
    "unit_price",
    "credits",
    "usd",
    "balance",
]


def _text(value: Decimal | None) -> str:
    return "" if value is None else plain(value)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # Spreadsheet formula injection: a text cell must not start a formula. Numbers are ours and
    # exact (a negative amount starts with "-" legitimately), so only free text is escaped.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def statement_csv(statement: Statement) -> str:
    """The statement as CSV: a header, then one line per entry, oldest first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for line in statement.lines:
        e = line.entry
        writer.writerow(
            [
                e.created_at.isoformat(),
                _cell(e.description),
                e.kind.value,
                _cell(e.model),
                "" if e.input_tokens is None else e.input_tokens,
                "" if e.output_tokens is None else e.output_tokens,
                _text(line.unit_price),
                _text(e.amount),
                _text(line.usd),
                _text(line.balance),
            ]
        )
    return buffer.getvalue()
