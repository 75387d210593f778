"""Statements: a member's, a group's or the account's ledger entries over a time range, like a bank
statement, with a running balance, as JSON or CSV.

Which entries belong to a statement (each level shows what it was given and what was spent under it):
- a member: every entry of theirs (allocation changes, extra credits, approved requests, usage debits);
- a group: the group's own entries (its budget changes) and its members' usage debits;
- the account: account-level entries (cycle starts with the credits per cycle) and every usage debit.
Holds and releases of calls in flight are not listed: a settled call appears once, as its usage debit.

Order: oldest first, except that the budget of a cycle (a monthly allocation changed, extra credits
for the cycle) is what the cycle's calls draw on, whenever it was set: those entries are placed at the
start of their cycle, so that a member's statement opens with what they were given and the balance
runs down from it (and does not sit below zero until an allocation set mid-cycle appears at the end).
Every listing, total "before a line" and keyset cursor uses that one position (``_position``).

The balance: the opening balance is the net of the statement's entries from the start of the cycle
containing ``from`` up to ``from`` (0 when ``from`` is a cycle's start, as by default); each line's
balance is the opening balance plus the credits of that line and every line before it, so the
closing balance is the opening balance plus the sum of the lines. It is the net of recorded movements,
not the spendable remainder (a monthly allocation set in an earlier cycle carries over without a new entry).

A statement can hold hundreds of thousands of lines (every gateway call is one): it is read a page at
a time, in (position, time made, id) order with a keyset cursor, while its totals (closing balance,
credits in and out, number of lines) are sums computed by the database; the CSV is streamed.
"""

from __future__ import annotations

import base64
import csv
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits.cycles import current_cycle, cycle_at
from cockpit.credits.models import CreditCycle, EntryKind, LedgerEntry
from cockpit.groups import service as groups
from cockpit.kit.errors import InvalidInput, NotFound, NotPermitted
from cockpit.kit.money import plain
from cockpit.tenancy.models import Account
from cockpit.users import service as users

ZERO = Decimal(0)
MICRO = Decimal(1_000_000)
QUANTUM = Decimal("0.000001")
IN_FLIGHT = (EntryKind.hold, EntryKind.release)
# A cycle's budget: these entries count from the start of their cycle (see the module docstring).
CYCLE_BUDGET = (EntryKind.allocation_set, EntryKind.extra_granted, EntryKind.cycle_allocation)


def _position() -> ColumnElement[datetime]:
    """Where an entry sits in a statement: its time, or its cycle's start for a cycle's budget."""
    cycle_start = (
        select(CreditCycle.starts_at).where(CreditCycle.id == LedgerEntry.cycle_id).scalar_subquery()
    )
    return case(
        (LedgerEntry.kind.in_(CYCLE_BUDGET), func.coalesce(cycle_start, LedgerEntry.created_at)),
        else_=LedgerEntry.created_at,
    )


_RUNNING = " Each line's balance is the opening balance plus the credits of that line and the lines above it."
BASIS = {
    "user": "The member's net credits: allocation changes, extra credits and approved requests add, "
    "usage subtracts. A cycle's allocation and extra credits are listed first." + _RUNNING,
    "group": "The group's net credits: changes of its budget add or subtract, its members' usage "
    "subtracts. A cycle's budget changes are listed first." + _RUNNING,
    "account": "The account's net credits: each cycle start adds the credits per cycle, all usage "
    "subtracts." + _RUNNING,
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
    lines: Sequence[StatementLine]  # one page
    total_lines: int = 0
    credits_in: Decimal = ZERO
    credits_out: Decimal = ZERO
    next_cursor: str | None = None  # where the next page starts; None after the last page
    brought_forward: Decimal = ZERO  # the balance before this page's first line

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
        user = await users.get_user(session, actor.account_id, user_id)
        if user is None:
            raise NotFound("user_not_found", "No such user.")
        return "user", user.id
    assert group_id is not None
    actor.require(Permission.credits_manage)
    if await groups.get_group(session, actor.account_id, group_id) is None:
        raise NotFound("group_not_found", "No such group.")
    return "group", group_id


DEFAULT_LIMIT = 500
MAX_LIMIT = 1000


@dataclass(frozen=True)
class _Range:
    """What a statement covers, resolved and checked."""

    scope: str
    target_id: uuid.UUID | None
    start: datetime
    end: datetime
    opening: Decimal
    where: tuple[ColumnElement[bool], ...]  # the statement's entries in the range

    def header(self) -> Statement:
        """The statement of this range without its lines."""
        return Statement(
            scope=self.scope,
            user_id=self.target_id if self.scope == "user" else None,
            group_id=self.target_id if self.scope == "group" else None,
            start=self.start,
            end=self.end,
            opening_balance=self.opening,
            closing_balance=self.opening,
            lines=[],
        )


def encode_cursor(position: datetime, entry: LedgerEntry) -> str:
    raw = f"{position.isoformat()}|{entry.created_at.isoformat()}|{entry.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[datetime, datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        moment, created, ident = raw.split("|", 2)
        when, made = datetime.fromisoformat(moment), datetime.fromisoformat(created)
        if when.tzinfo is None or made.tzinfo is None:
            raise ValueError("naive")
        return when, made, uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise _bad("cursor", "not a cursor of this statement (use next_cursor as it was returned)") from None


def _order() -> tuple[Any, ...]:
    """Statement order: the position, then (for a cycle's budget entries, which share their cycle's
    start) the time they were made, then the id."""
    return (_position(), LedgerEntry.created_at, LedgerEntry.id)


def _after(moment: datetime, made: datetime, ident: uuid.UUID) -> ColumnElement[bool]:
    """Entries after (moment, made, ident) in statement order."""
    position = _position()
    return or_(
        position > moment,
        and_(
            position == moment,
            or_(
                LedgerEntry.created_at > made,
                and_(LedgerEntry.created_at == made, LedgerEntry.id > ident),
            ),
        ),
    )


def _sum(*where: ColumnElement[bool]) -> Any:
    return select(func.coalesce(func.sum(LedgerEntry.__table__.c.amount, type_=BigInteger), 0)).where(*where)


def _credits(total: Any) -> Decimal:
    return Decimal(int(total or 0)) / MICRO


async def _resolve_range(
    session: AsyncSession,
    actor: Actor,
    user_id: uuid.UUID | None,
    group_id: uuid.UUID | None,
    start: datetime | None,
    end: datetime | None,
) -> _Range:
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
    base = (
        LedgerEntry.account_id == account.id,
        LedgerEntry.kind.not_in(IN_FLIGHT),
        _scope_filter(scope, target_id),
    )
    opening = ZERO
    first_cycle = await cycle_at(session, account.id, start)
    if first_cycle is not None:
        opening = _credits(
            await session.scalar(
                _sum(*base, LedgerEntry.cycle_id == first_cycle.id, LedgerEntry.created_at < start)
            )
        )
    where = (*base, LedgerEntry.created_at >= start, LedgerEntry.created_at < end)
    return _Range(scope, target_id, start, end, opening, where)


def _line(entry: LedgerEntry, balance: Decimal) -> StatementLine:
    usd = entry.usd if entry.kind is EntryKind.usage_debit else None
    return StatementLine(entry, balance, unit_price(entry), usd)


async def build_statement(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    cursor: str | None = None,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> Statement:
    """One page of the entries of a member, a group or (neither) the account between ``start`` and
    ``end``, oldest first, with running balances and the whole range's totals. Default range: the
    current cycle. A page starts after ``cursor`` (the API) or at ``offset`` (numbered console pages)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise _bad("limit", f"must be between 1 and {MAX_LIMIT}")
    span = await _resolve_range(session, actor, user_id, group_id, start, end)
    where: tuple[ColumnElement[bool], ...] = span.where
    totals = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.sum(
                        case((LedgerEntry.amount > 0, LedgerEntry.__table__.c.amount)), type_=BigInteger
                    ),
                    0,
                ),
                func.coalesce(
                    func.sum(
                        case((LedgerEntry.amount < 0, LedgerEntry.__table__.c.amount)), type_=BigInteger
                    ),
                    0,
                ),
            ).where(*where)
        )
    ).one()
    count, credits_in, credits_out = int(totals[0]), _credits(totals[1]), _credits(totals[2])
    position = _position()
    ordered = select(LedgerEntry, position).where(*where).order_by(*_order())
    if cursor is not None:
        moment, made, ident = decode_cursor(cursor)
        after = _after(moment, made, ident)
        brought = span.opening + _credits(await session.scalar(_sum(*where, ~after)))
        rows = list((await session.execute(ordered.where(after).limit(limit + 1))).all())
    else:
        brought = span.opening
        if offset > 0:
            head = select(LedgerEntry.__table__.c.amount).where(*where)
            head = head.order_by(*_order()).limit(offset)
            brought += _credits(
                await session.scalar(
                    select(func.coalesce(func.sum(head.subquery().c.amount, type_=BigInteger), 0))
                )
            )
        rows = list((await session.execute(ordered.offset(offset).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    balance, lines = brought, []
    for entry, _ in rows:
        balance += entry.amount
        lines.append(_line(entry, balance))
    return replace(
        span.header(),
        closing_balance=span.opening + credits_in + credits_out,
        lines=lines,
        total_lines=count,
        credits_in=credits_in,
        credits_out=credits_out,
        next_cursor=encode_cursor(rows[-1][1], rows[-1][0]) if more and rows else None,
        brought_forward=brought,
    )


async def statement_query(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> tuple[Statement, Select[LedgerEntry]]:
    """The statement's header (no lines) and the query of its entries in statement order, for a
    caller that joins or narrows them (the usage statement). Access is checked first."""
    span = await _resolve_range(session, actor, user_id, group_id, start, end)
    return span.header(), select(LedgerEntry).where(*span.where).order_by(*_order())


async def statement_lines(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> tuple[Statement, AsyncIterator[StatementLine]]:
    """The statement's header (no lines) and every line, oldest first, read as they are consumed
    (for a CSV of any length in bounded memory). Access is checked before anything is returned."""
    header, query = await statement_query(
        session, actor, user_id=user_id, group_id=group_id, start=start, end=end
    )

    async def lines() -> AsyncIterator[StatementLine]:
        balance = header.opening_balance
        async for entry in await session.stream_scalars(query.execution_options(yield_per=1000)):
            balance += entry.amount
            yield _line(entry, balance)

    return header, lines()


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


def _row(line: StatementLine) -> list[Any]:
    e = line.entry
    return [
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


def statement_csv(statement: Statement) -> str:
    """A statement's lines as CSV: a header, then one line per entry, oldest first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for line in statement.lines:
        writer.writerow(_row(line))
    return buffer.getvalue()


async def csv_chunks(lines: AsyncIterator[StatementLine]) -> AsyncIterator[str]:
    """The CSV of ``lines`` in pieces of about 64 KB, as they are read."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    async for line in lines:
        writer.writerow(_row(line))
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
