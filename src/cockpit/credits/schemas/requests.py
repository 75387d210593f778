"""Credit requests and statements over the API. Amounts come in as JSON numbers or decimal strings and
leave as exact decimal strings ("1500.5")."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from cockpit.credits.models import EntryKind, RequestStatus
from cockpit.credits.requests import RequestRow
from cockpit.credits.statement import Statement, StatementLine
from cockpit.kit.money import plain
from cockpit.kit.pagination import Page, PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema

# Positive, at most 6 decimal places (the service checks again with the same messages).
Credits = Annotated[Decimal, Field(gt=0, decimal_places=6, allow_inf_nan=False)]


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


class CreditRequestCreate(InputSchema):
    amount: Credits
    reason: str = Field(min_length=1, max_length=1000)


class CreditRequestApprove(InputSchema):
    amount: Credits | None = None  # default: the amount requested


class CreditRequestDeny(InputSchema):
    note: str = Field(default="", max_length=1000)


class CreditRequestOut(OutputSchema):
    id: uuid.UUID
    user_id: uuid.UUID
    user_name: str
    user_email: str
    group_id: uuid.UUID | None
    amount_requested: str
    amount_approved: str | None
    reason: str
    status: RequestStatus
    note: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: uuid.UUID | None

    @classmethod
    def of(cls, row: RequestRow) -> CreditRequestOut:
        request, user = row.request, row.user
        return cls(
            id=request.id,
            user_id=user.id,
            user_name=user.name,
            user_email=user.email,
            group_id=request.group_id,
            amount_requested=plain(request.amount_requested),
            amount_approved=_opt(request.amount_approved),
            reason=request.reason,
            status=request.status,
            note=request.note,
            created_at=request.created_at,
            decided_at=request.decided_at,
            decided_by=request.decided_by,
        )


class CreditRequestList(OutputSchema):
    items: list[CreditRequestOut]
    meta: PageMeta

    @classmethod
    def of(cls, page: Page[RequestRow]) -> CreditRequestList:
        return cls(items=[CreditRequestOut.of(row) for row in page.items], meta=PageMeta.of(page))


class StatementEntryOut(OutputSchema):
    id: uuid.UUID
    date: datetime
    description: str
    kind: EntryKind
    user_id: uuid.UUID | None
    group_id: uuid.UUID | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    unit_price: str | None = Field(description="Credits per 1M tokens (input and output together)")
    credits: str = Field(description="Signed: positive adds credits, negative spends them")
    usd: str | None
    balance: str = Field(description="opening_balance + the credits of this line and every line before it")
    usage_request_id: uuid.UUID | None
    credit_request_id: uuid.UUID | None

    @classmethod
    def of(cls, line: StatementLine) -> StatementEntryOut:
        e = line.entry
        return cls(
            id=e.id,
            date=e.created_at,
            description=e.description,
            kind=e.kind,
            user_id=e.user_id,
            group_id=e.group_id,
            model=e.model,
            input_tokens=e.input_tokens,
            output_tokens=e.output_tokens,
            unit_price=_opt(line.unit_price),
            credits=plain(e.amount),
            usd=_opt(line.usd),
            balance=plain(line.balance),
            usage_request_id=e.usage_request_id,
            credit_request_id=e.credit_request_id,
        )


class StatementOut(OutputSchema):
    scope: str
    user_id: uuid.UUID | None
    group_id: uuid.UUID | None
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    opening_balance: str
    closing_balance: str
    balance_basis: str
    credits_in: str = Field(description="The sum of the range's positive lines")
    credits_out: str = Field(description="The sum of the range's negative lines")
    total_entries: int = Field(description="Lines in the whole range (every page)")
    entries: list[StatementEntryOut] = Field(description="This page's lines, oldest first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null after the last page"
    )

    @classmethod
    def of(cls, statement: Statement) -> StatementOut:
        return cls(
            scope=statement.scope,
            user_id=statement.user_id,
            group_id=statement.group_id,
            from_=statement.start,
            to=statement.end,
            opening_balance=plain(statement.opening_balance),
            closing_balance=plain(statement.closing_balance),
            balance_basis=statement.balance_basis,
            credits_in=plain(statement.credits_in),
            credits_out=plain(statement.credits_out),
            total_entries=statement.total_lines,
            entries=[StatementEntryOut.of(line) for line in statement.lines],
            next_cursor=statement.next_cursor,
        )
