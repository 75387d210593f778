"""The audit log: append (in the caller's transaction), search, export and verify the chain.

Each entry's ``hash`` is SHA-256 over its canonical content plus the previous entry's hash
(per account). A row of ``audit_chain_heads`` keeps each account's head (last ``seq`` and
``hash``), so an edited, removed or inserted entry — including one removed from the end — breaks
verification.

Appends take the account's lock first (``tenancy.lock``): one account's chain grows one
transaction at a time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import repository
from cockpit.audit.models import AuditEntry
from cockpit.audit.queries import AuditFilters
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.errors import NotFound
from cockpit.kit.jsonutil import canonical_json, to_jsonable
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.time import utcnow
from cockpit.tenancy.lock import lock_account_chain
from cockpit.tenancy.models import Account

GENESIS = "0" * 64


class Target(NamedTuple):
    type: str
    id: str | uuid.UUID | None
    label: str | None = None


def compute_hash(entry: AuditEntry) -> str:
    payload = {
        "id": str(entry.id),
        "account_id": str(entry.account_id),
        "seq": entry.seq,
        "created_at": entry.created_at.isoformat(timespec="microseconds"),
        "actor_id": str(entry.actor_id) if entry.actor_id else None,
        "actor_label": entry.actor_label,
        "actor_kind": entry.actor_kind,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "target_label": entry.target_label,
        "before": entry.before,
        "after": entry.after,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "prev_hash": entry.prev_hash,
    }
    return hashlib.sha256(canonical_json(payload)).hexdigest()


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    target: Target | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry to the actor's account chain, in the caller's transaction."""
    head = await lock_account_chain(session, actor.account_id)
    entry = AuditEntry(
        id=uuid.uuid4(),
        account_id=head.account_id,
        seq=head.seq + 1,
        created_at=utcnow(),
        actor_id=actor.user_id,
        actor_label=actor.label[:300],
        actor_kind=actor.kind.value,
        action=action,
        target_type=target.type if target else None,
        target_id=str(target.id) if target and target.id is not None else None,
        target_label=(target.label or "")[:300] if target else None,
        before=to_jsonable(before) if before is not None else None,
        after=to_jsonable(after) if after is not None else None,
        ip=actor.ip,
        user_agent=(actor.user_agent or "")[:400] or None,
        prev_hash=head.head or GENESIS,
    )
    entry.hash = compute_hash(entry)
    head.seq, head.head = entry.seq, entry.hash
    # Written with the caller's next flush or commit (bulk work appends thousands of entries).
    session.add(entry)
    return entry


async def record_changes(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    target: Target,
    before: dict[str, Any],
    after: dict[str, Any],
) -> AuditEntry | None:
    """Record an edit with only the fields that changed; nothing when nothing changed."""
    changed = [key for key in after if after[key] != before.get(key)]
    if not changed:
        return None
    return await record(
        session, actor, action, target=target,
        before={key: before.get(key) for key in changed}, after={key: after[key] for key in changed},
    )  # fmt: skip


async def search(
    session: AsyncSession, actor: Actor, filters: AuditFilters, params: PageParams
) -> Page[AuditEntry]:
    actor.require(Permission.audit_read)
    return await paginate(session, repository.search_stmt(actor.account_id, filters), params)


async def get_entry(session: AsyncSession, actor: Actor, entry_id: uuid.UUID) -> AuditEntry:
    actor.require(Permission.audit_read)
    entry = await repository.get_entry(session, actor.account_id, entry_id)
    if entry is None:
        raise NotFound("audit_entry_not_found", "No such audit entry.")
    return entry


async def actions(session: AsyncSession, actor: Actor) -> list[str]:
    actor.require(Permission.audit_read)
    return await repository.distinct_actions(session, actor.account_id)


CSV_COLUMNS = [
    "seq",
    "time",
    "actor",
    "actor_kind",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "before",
    "after",
    "ip",
    "user_agent",
    "hash",
]


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # Spreadsheet formula injection: a cell must not start a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def export_csv(session: AsyncSession, actor: Actor, filters: AuditFilters) -> AsyncIterator[str]:
    actor.require(Permission.audit_read)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    async for e in repository.stream_filtered(session, actor.account_id, filters):
        writer.writerow(
            _csv_cell(v)
            for v in (
                e.seq,
                e.created_at.isoformat(),
                e.actor_label,
                e.actor_kind,
                e.action,
                e.target_type,
                e.target_id,
                e.target_label,
                json.dumps(e.before, sort_keys=True) if e.before is not None else "",
                json.dumps(e.after, sort_keys=True) if e.after is not None else "",
                e.ip,
                e.user_agent,
                e.hash,
            )
        )
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@dataclass(frozen=True)
class ChainProblem:
    account_id: uuid.UUID
    seq: int
    entry_id: uuid.UUID | None
    message: str

    def __str__(self) -> str:
        return f"account {self.account_id}: {self.message}"


@dataclass(frozen=True)
class ChainReport:
    account_id: uuid.UUID
    entries: int
    head: str
    problem: ChainProblem | None


async def verify_account_chain(session: AsyncSession, account: Account) -> ChainReport:
    """Walk one account's chain and return the first problem found, if any."""
    expected_seq, prev_hash, count = 1, GENESIS, 0
    stored = await repository.chain_head(session, account.id)
    head_seq, head_hash = (stored.seq, stored.head) if stored is not None else (0, "")

    def problem(seq: int, entry_id: uuid.UUID | None, message: str) -> ChainReport:
        return ChainReport(account.id, count, prev_hash, ChainProblem(account.id, seq, entry_id, message))

    async for entry in repository.stream_chain(session, account.id):
        if entry.seq != expected_seq:
            missing = (
                f"entry #{expected_seq} is missing"
                if entry.seq == expected_seq + 1
                else f"entries #{expected_seq}..#{entry.seq - 1} are missing"
            )
            return problem(expected_seq, None, missing)
        if entry.prev_hash != prev_hash:
            return problem(
                entry.seq,
                entry.id,
                f"entry #{entry.seq} ({entry.id}) does not link to entry #{entry.seq - 1}: "
                f"entry #{entry.seq - 1} or this entry's link was altered",
            )
        if compute_hash(entry) != entry.hash:
            return problem(entry.seq, entry.id, f"entry #{entry.seq} ({entry.id}) was altered")
        expected_seq, prev_hash, count = entry.seq + 1, entry.hash, count + 1
    if head_seq != count:
        if head_seq > count:
            return problem(
                count + 1,
                None,
                f"entries #{count + 1}..#{head_seq} are missing (the log was truncated)"
                if head_seq > count + 1
                else f"entry #{count + 1} is missing (the log was truncated)",
            )
        return problem(head_seq + 1, None, "the chain head of the account does not match")
    if head_seq and head_hash != prev_hash:
        return problem(count, None, f"entry #{count} was altered (it does not match the chain head)")
    return ChainReport(account.id, count, prev_hash, None)


async def verify_all(session: AsyncSession, account_id: uuid.UUID | None = None) -> list[ChainReport]:
    stmt = select(Account).order_by(Account.created_at, Account.id)
    if account_id is not None:
        stmt = stmt.where(Account.id == account_id)
    reports = []
    for account in (await session.scalars(stmt)).all():
        reports.append(await verify_account_chain(session, account))
    return reports
