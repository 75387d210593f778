"""Usage debits: every recorded gateway call that cost credits is one ledger entry.

Written by the usage recorder in the same transaction as the calls' rows, so the ledger and the
request log always agree: the sum of an account's usage debits equals the sum of its recorded
calls' credits. A replayed journal does not debit twice: the entry's id is derived from the call's.
"""

from __future__ import annotations

import bisect
import uuid
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits import balances, thresholds
from cockpit.credits.balances import Deltas
from cockpit.credits.cycles import current_cycle, cycles_of
from cockpit.credits.leases import release_from_lease
from cockpit.credits.models import CreditCycle, EntryKind, LedgerEntry
from cockpit.kit.bulk import insert_unnest
from cockpit.kit.db import dialect_name
from cockpit.kit.text import storable
from cockpit.tenancy.models import Account

# Namespace of the ids of usage debits (uuid5 of the call's id).
DEBIT_NAMESPACE = uuid.UUID("6f1d2f3e-7a52-4c1e-9a55-0b3c2a1d9e10")
_TABLE = cast(Table, LedgerEntry.__table__)


def debit_id(usage_request_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(DEBIT_NAMESPACE, str(usage_request_id))


def _as_uuid(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def _as_time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _containing(cycles: list[CreditCycle], moment: datetime) -> CreditCycle | None:
    """The cycle (sorted by start) that contained ``moment``; None before the first one."""
    index = bisect.bisect_right([c.starts_at for c in cycles], moment) - 1
    return cycles[index] if index >= 0 else None


async def debit_usage(session: AsyncSession, records: list[dict[str, Any]]) -> int:
    """Add a usage debit for each record with credits; returns how many were new or old."""
    by_account: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        credits = record.get("credits")
        if credits is not None and Decimal(str(credits)) > 0:
            account_id = _as_uuid(record["account_id"])
            assert account_id is not None
            by_account[account_id].append(record)
    if not by_account:
        return 0
    rows: list[dict[str, Any]] = []
    leases: dict[uuid.UUID, uuid.UUID | None] = {}
    currents: dict[uuid.UUID, tuple[Account, CreditCycle]] = {}
    for account_id, account_records in by_account.items():
        account = await session.get(Account, account_id)
        if account is None:
            continue
        current = await current_cycle(session, account)
        currents[account_id] = (account, current)
        earlier: list[CreditCycle] | None = None  # the account's cycles, loaded once if needed
        for record in account_records:
            created = _as_time(record["created_at"])
            cycle: CreditCycle | None = current
            if created < current.starts_at:  # recorded late (a replayed journal, the demo): its own cycle
                if earlier is None:
                    earlier = await cycles_of(session, account_id)
                cycle = _containing(earlier, created)
            call_id = _as_uuid(record["id"])
            assert call_id is not None
            leases[call_id] = _as_uuid(record.get("credit_lease_id"))
            model = storable(str(record.get("model") or ""))  # caller's text: see kit.text
            rows.append(
                {
                    "id": debit_id(call_id),
                    "account_id": account_id,
                    "cycle_id": cycle.id if cycle is not None else None,
                    "created_at": created,
                    "kind": EntryKind.usage_debit,
                    "user_id": _as_uuid(record.get("user_id")),
                    "group_id": _as_uuid(record.get("group_id")),
                    "amount": -Decimal(str(record["credits"])),
                    "description": f"{model} - {record.get('operation', 'chat')}"[:300],
                    "actor_label": None,
                    "usage_request_id": call_id,
                    "model": model[:200] or None,
                    "input_tokens": record.get("input_tokens"),
                    "output_tokens": record.get("output_tokens"),
                    "usd": Decimal(str(record.get("cost_usd") or 0)),
                    "credit_request_id": None,
                }
            )
    if not rows:
        return 0
    await session.flush()  # cycles created above go first
    dialect = dialect_name(session)
    stmt: Any
    if dialect == "postgresql":  # one statement for the whole batch (kit.bulk)
        new = set(await insert_unnest(session, _TABLE, rows, on_conflict_do_nothing=("id",), returning="id"))
    else:
        if dialect == "sqlite":
            stmt = sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["id"])
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            stmt = insert(_TABLE)
        result = await session.execute(stmt.returning(_TABLE.c.id), rows)
        new = set(result.scalars().all())
    await _move_to_used(
        session, [(row, leases.get(row["usage_request_id"])) for row in rows if row["id"] in new]
    )
    await _announce_thresholds(session, currents, [row for row in rows if row["id"] in new])
    return len(rows)


async def _announce_thresholds(
    session: AsyncSession,
    currents: dict[uuid.UUID, tuple[Account, CreditCycle]],
    debited: list[dict[str, Any]],
) -> None:
    """The budget thresholds the new debits made their account, groups and members reach in the
    current cycle (a debit recorded late, in an earlier cycle, announces nothing)."""
    touched: dict[uuid.UUID, tuple[dict[uuid.UUID, uuid.UUID | None], set[uuid.UUID]]] = {}
    for row in debited:
        account, cycle = currents[row["account_id"]]
        if row["cycle_id"] != cycle.id or account.credit_factor <= 0:
            continue
        members, group_ids = touched.setdefault(account.id, ({}, set()))
        if row["user_id"] is not None:
            members[row["user_id"]] = row["group_id"]
        if row["group_id"] is not None:
            group_ids.add(row["group_id"])
    for account_id, (members, group_ids) in touched.items():
        account, cycle = currents[account_id]
        await thresholds.detect(session, account, cycle, members, group_ids)


async def _move_to_used(session: AsyncSession, debits: list[tuple[dict[str, Any], uuid.UUID | None]]) -> None:
    """New debits count as used; the credits their calls held leave the calls' leases (released).
    A lease that is gone was swept (its process died) and released all it held then."""
    deltas = Deltas()
    by_lease: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    for row, lease_id in debits:
        credits = -row["amount"]
        if row["cycle_id"] is not None:
            deltas.add(
                row["cycle_id"],
                account_id=row["account_id"],
                group_id=row["group_id"],
                user_id=row["user_id"],
                used=credits,
            )
        if lease_id is not None:
            by_lease[lease_id] += credits
    for lease_id in sorted(by_lease, key=str):  # one lock order for every writer
        await release_from_lease(
            session, lease_id, by_lease[lease_id], "Held credits of recorded calls, now used", deltas
        )
    await balances.apply(session, deltas)
