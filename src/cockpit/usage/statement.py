"""The usage statement (issue 17, section 4): a bank-account-like statement of credits, one line per
day per model (and per integration for tool calls), with the credits that came in as their own lines,
an opening balance, a running balance and a closing balance.

It is the credits statement (``cockpit.credits.statement``: who may see whose, the range, the opening
balance and the order of the ledger's entries) with its usage debits grouped: each usage debit is
joined to its recorded call for the integration (tool calls) and the project, then summed per day,
model and integration. Every other entry (allocations, extra credits, approved requests, cycle
budgets, top-ups) is a line of its own. So the closing balance is the credits statement's, and a
day's last running balance is the ledger's balance at the end of that day.

Jobs have no costs today (nothing of theirs is in the ledger), so there is no line per job kind.

With ``project_id`` only the usage of that project is listed: a project has no balance of its own,
so the opening balance is 0 and the running balance is the project's net spend over the period.
Days are the organisation's days (its time zone), as its credit cycles are.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.credits import statement as credits_statement
from cockpit.credits.models import EntryKind, LedgerEntry
from cockpit.integrations.models import Integration
from cockpit.kit.errors import InvalidInput
from cockpit.projects import service as projects_service
from cockpit.reports.csvs import table_csv
from cockpit.reports.model import Column, Indicator, Kind, Report, Table
from cockpit.reports.pdf import report_pdf
from cockpit.reports.xlsx import report_xlsx
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)
QUANTUM = Decimal("0.000001")
CHUNK = 500
# A statement of one line per call is built in memory: its length is bounded (the credits statement's
# CSV streams every entry of any range).
MAX_CALL_LINES = 20_000
# A PDF is drawn page by page (about 35 lines a page): a longer statement is a CSV or XLSX.
MAX_PDF_LINES = 2_000


@dataclass(frozen=True)
class UsageLine:
    day: date
    kind: str  # "usage", or the ledger entry's kind for credits in and out (allocation_set, ...)
    description: str
    model: str | None
    integration: str | None  # tool calls: the integration's name
    calls: int
    input_tokens: int
    output_tokens: int
    unit: str | None  # what the unit prices are per: "1M tokens" or "call"
    unit_price_credits: Decimal | None
    unit_price_usd: Decimal | None
    credits: Decimal  # signed: credits in are positive, usage negative
    usd: Decimal | None
    balance: Decimal  # after this line
    # Lines of one call each (``per_call``): when it was made and the recorded call.
    at: datetime | None = None
    request_id: uuid.UUID | None = None


@dataclass(frozen=True)
class UsageStatement:
    scope: str  # "user" | "group" | "account" | "project"
    user_id: uuid.UUID | None
    group_id: uuid.UUID | None
    project_id: uuid.UUID | None
    start: datetime
    end: datetime
    zone: str  # the time zone of the lines' days: the organisation's
    opening_balance: Decimal
    closing_balance: Decimal
    credits_in: Decimal
    credits_out: Decimal
    calls: int
    input_tokens: int
    output_tokens: int
    usd: Decimal
    lines: Sequence[UsageLine]


@dataclass
class _Group:
    day: date
    model: str | None
    integration: str | None
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    credits: Decimal = ZERO
    usd: Decimal = ZERO


def _per(total: Decimal, quantity: int, scale: Decimal) -> Decimal | None:
    if quantity <= 0:
        return None
    return (abs(total) * scale / quantity).quantize(QUANTUM, rounding=ROUND_HALF_UP)


def _group_line(group: _Group, balance: Decimal) -> UsageLine:
    tokens = group.input_tokens + group.output_tokens
    per_call = group.integration is not None and tokens == 0
    unit = "call" if per_call else "1M tokens" if tokens > 0 else None
    quantity, scale = (group.calls, Decimal(1)) if per_call else (tokens, MILLION)
    return UsageLine(
        day=group.day,
        kind="usage",
        description=f"{group.calls} call{'s' if group.calls != 1 else ''}",
        model=group.model,
        integration=group.integration,
        calls=group.calls,
        input_tokens=group.input_tokens,
        output_tokens=group.output_tokens,
        unit=unit,
        unit_price_credits=_per(group.credits, quantity, scale),
        unit_price_usd=_per(group.usd, quantity, scale),
        credits=group.credits,
        usd=group.usd,
        balance=balance,
    )


def _call_line(entry: LedgerEntry, day: date, integration: str | None, zone: ZoneInfo) -> UsageLine:
    """One call's line (``per_call``): its group of one, with its time and id."""
    group = _Group(
        day,
        entry.model,
        integration,
        calls=1,
        input_tokens=entry.input_tokens or 0,
        output_tokens=entry.output_tokens or 0,
        credits=entry.amount,
        usd=entry.usd or ZERO,
    )
    line = _group_line(group, ZERO)
    at = entry.created_at.astimezone(zone)
    description = f"{at:%H:%M:%S} {entry.description}"[:300]
    return UsageLine(
        **{**line.__dict__, "description": description, "at": at, "request_id": entry.usage_request_id}
    )


async def build_usage_statement(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    per_call: bool = False,
) -> UsageStatement:
    """The statement of a member (``user_id``; a member's own by default), a group or the account
    (administrators, neither given), optionally narrowed to one project's usage. Default range: the
    current credit cycle. Access as for the credits statement (another account's: NotFound); a
    project as for its pages (one the actor may not see, or another account's: NotFound).

    With ``per_call`` each call is a line of its own (its time and id), in the ledger's order, instead
    of one line per day, model and integration; a range of more than ``MAX_CALL_LINES`` calls is
    refused (InvalidInput)."""
    if project_id is not None:
        await projects_service.access_project(session, actor, project_id)
    header, query = await credits_statement.statement_query(
        session, actor, user_id=user_id, group_id=group_id, start=start, end=end
    )
    account = await session.get(Account, actor.account_id)
    zone = ZoneInfo(account.timezone if account is not None else "UTC")
    # Each usage debit with its recorded call's project and integration, in one streamed query (a
    # cycle of a busy account has millions of entries: only the day's groups are kept in memory).
    call, tool = UsageRecord, Integration
    joined = (
        query.add_columns(call.integration_id, tool.name)
        .outerjoin(
            call, and_(call.id == LedgerEntry.usage_request_id, call.account_id == LedgerEntry.account_id)
        )
        .outerjoin(tool, and_(tool.id == call.integration_id, tool.account_id == LedgerEntry.account_id))
        .execution_options(yield_per=CHUNK)
    )
    if project_id is not None:
        joined = joined.where(LedgerEntry.kind == EntryKind.usage_debit, call.project_id == project_id)

    # Per day, in the ledger's order: the credits in and out first, then the usage groups by model.
    days: dict[date, tuple[list[UsageLine], dict[tuple[str | None, str | None], _Group]]] = {}
    day = header.start.astimezone(zone).date()
    calls = 0
    async for entry, integration_id, integration_name in await session.stream(joined):
        if entry.kind not in credits_statement.CYCLE_BUDGET:  # a cycle's budget sits at its start
            day = max(day, entry.created_at.astimezone(zone).date())
        others, groups = days.setdefault(day, ([], {}))
        if entry.kind is EntryKind.usage_debit:
            integration = integration_name or ("Deleted integration" if integration_id is not None else None)
            if per_call:
                calls += 1
                if calls > MAX_CALL_LINES:
                    raise InvalidInput(
                        "too_many_lines",
                        f"This period has more than {MAX_CALL_LINES:,} calls: choose a shorter period "
                        "for one line per call, or one line per day.",
                        details=[{"field": "lines", "message": "too many calls for one line each"}],
                    )
                others.append(_call_line(entry, day, integration, zone))
                continue
            group = groups.setdefault((entry.model, integration), _Group(day, entry.model, integration))
            group.calls += 1
            group.input_tokens += entry.input_tokens or 0
            group.output_tokens += entry.output_tokens or 0
            group.credits += entry.amount
            group.usd += entry.usd or ZERO
        else:
            others.append(
                UsageLine(
                    day=day,
                    kind=entry.kind.value,
                    description=entry.description,
                    model=None,
                    integration=None,
                    calls=0,
                    input_tokens=0,
                    output_tokens=0,
                    unit=None,
                    unit_price_credits=None,
                    unit_price_usd=None,
                    credits=entry.amount,
                    usd=None,
                    balance=ZERO,
                )
            )

    opening = header.opening_balance if project_id is None else ZERO
    balance, result = opening, []
    for others, groups in days.values():
        for other in others:
            balance += other.credits
            result.append(_with_balance(other, balance))
        for key in sorted(groups, key=lambda k: (k[0] or "", k[1] or "")):
            balance += groups[key].credits
            result.append(_group_line(groups[key], balance))
    usage = [line for line in result if line.kind == "usage"]
    return UsageStatement(
        scope="project" if project_id is not None else header.scope,
        user_id=header.user_id,
        group_id=header.group_id,
        project_id=project_id,
        start=header.start,
        end=header.end,
        zone=zone.key,
        opening_balance=opening,
        closing_balance=balance,
        credits_in=sum((line.credits for line in result if line.credits > 0), ZERO),
        credits_out=sum((line.credits for line in result if line.credits < 0), ZERO),
        calls=sum(line.calls for line in usage),
        input_tokens=sum(line.input_tokens for line in usage),
        output_tokens=sum(line.output_tokens for line in usage),
        usd=sum((line.usd or ZERO for line in usage), ZERO),
        lines=result,
    )


def _with_balance(line: UsageLine, balance: Decimal) -> UsageLine:
    return UsageLine(**{**line.__dict__, "balance": balance})


COLUMNS = (
    Column("Day", Kind.day),
    Column("Line"),
    Column("Model"),
    Column("Integration"),
    Column("Calls", Kind.number),
    Column("Input tokens", Kind.number),
    Column("Output tokens", Kind.number),
    Column("Unit"),
    Column("Unit price (credits)", Kind.credits),
    Column("Unit price (USD)", Kind.usd),
    Column("Credits", Kind.credits),
    Column("USD", Kind.usd),
    Column("Balance", Kind.credits),
)


def statement_table(statement: UsageStatement) -> Table:
    rows = [
        [
            line.day,
            line.description if line.kind == "usage" else f"{line.kind}: {line.description}",
            line.model,
            line.integration,
            line.calls,
            line.input_tokens,
            line.output_tokens,
            line.unit,
            line.unit_price_credits,
            line.unit_price_usd,
            line.credits,
            line.usd,
            line.balance,
        ]
        for line in statement.lines
    ]
    totals = [
        None,
        "Totals",
        None,
        None,
        statement.calls,
        statement.input_tokens,
        statement.output_tokens,
        None,
        None,
        None,
        statement.credits_in + statement.credits_out,
        statement.usd,
        statement.closing_balance,
    ]
    return Table("Usage statement", COLUMNS, rows, totals)


def statement_report(statement: UsageStatement, *, account: str, generated_at: datetime) -> Report:
    """The statement as a report, for the PDF and XLSX writers."""
    filters = [("Scope", statement.scope)]
    return Report(
        title="Usage statement",
        account=account,
        start=statement.start,
        end=statement.end,
        zone=statement.zone,
        generated_at=generated_at,
        filters=filters,
        indicators=[
            Indicator("Opening balance", statement.opening_balance, Kind.credits),
            Indicator("Credits in", statement.credits_in, Kind.credits),
            Indicator("Credits out", statement.credits_out, Kind.credits),
            Indicator("Closing balance", statement.closing_balance, Kind.credits),
            Indicator("Cost", statement.usd, Kind.usd),
            Indicator("Calls", statement.calls),
        ],
        sections=[statement_table(statement)],
    )


async def statement_file(
    statement: UsageStatement, fmt: str, *, account: str, generated_at: datetime
) -> bytes:
    """The statement as a CSV, XLSX or PDF file, written in a worker thread (drawing a PDF or a
    workbook is CPU work that would hold up every other request on the event loop). A PDF of more
    than ``MAX_PDF_LINES`` lines is refused (InvalidInput): the CSV and XLSX have every line."""
    if fmt == "csv":
        return await asyncio.to_thread(lambda: table_csv(statement_table(statement)).encode("utf-8-sig"))
    if fmt == "pdf" and len(statement.lines) > MAX_PDF_LINES:
        raise InvalidInput(
            "too_many_lines",
            f"This statement has {len(statement.lines):,} lines, more than a PDF holds "
            f"({MAX_PDF_LINES:,}): download it as CSV or XLSX, or choose a shorter period or one line "
            "per day.",
            details=[{"field": "format", "message": "too many lines for a PDF"}],
        )
    report = statement_report(statement, account=account, generated_at=generated_at)
    writer = report_xlsx if fmt == "xlsx" else report_pdf
    return await asyncio.to_thread(writer, report)
