"""The account lock: the one serialisation point of an account's writers.

Serialisation. Appends to one account's chain, and the checks of account-wide invariants (the last
owner, seat limits, credit allocations, leases), happen one transaction at a time: each locks the
account's chain head row first (``lock_account``), and waits there, in order, for the transactions
ahead of it. The head lives in a table of its own because nothing references it: a row that
references ``accounts`` (a login session, a token, an audit entry) takes a KEY SHARE lock on the
account row on PostgreSQL, and when the account row itself was the lock, two transactions that had
each inserted such a row and then asked ``FOR UPDATE`` on it deadlocked. Now:

- the head lock is the first lock a transaction takes on the account's rows: it is taken before the
  caller's pending changes are flushed, so one order holds everywhere (head row, then the rows the
  transaction writes); code that must flush earlier calls ``lock_account`` before it writes;
- nothing locks the account row explicitly. Updating it (settings) takes FOR NO KEY UPDATE, which
  does not conflict with the KEY SHARE locks of inserts, and only happens under the head lock;
- SQLite serialises writers anyway (every write transaction begins IMMEDIATE).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.tenancy.models import Account, AuditChainHead


async def lock_account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """Lock the account (its audit chain head row) and return the account row read after the lock.

    Account-wide invariants (the last owner, seat limits, credit allocations and leases) take this
    lock before they check, so two concurrent requests cannot both pass the check, and read the
    account's settings from the row returned (current: read after the lock; its writers hold the
    lock too). Taken once per transaction; later calls and appends reuse it. Raises LookupError for
    an account that does not exist.

    Call it before the transaction writes anything of the account when it has to flush early: the
    lock must come first (see the module's docstring). Pending, unflushed changes are fine: they are
    written after the lock is taken.
    """
    await _begin(session)
    locks = _locks(session)
    account = locks.accounts.get(account_id)
    if account is None:
        await _lock_head(session, account_id)
        account = await _fresh_account(session, account_id)
        if account is None:
            raise LookupError(f"account {account_id} does not exist")
        locks.accounts[account_id] = account
    return account


async def lock_account_chain(session: AsyncSession, account_id: uuid.UUID) -> AuditChainHead:
    """The same lock as ``lock_account``, for code that needs no account settings (one query less).

    Returns the locked row: the audit log appends to the chain whose head it keeps.
    """
    await _begin(session)
    return await _lock_head(session, account_id)


@dataclass
class _Locks:
    """The chain heads locked by one transaction (and the accounts read under those locks)."""

    transaction: object
    heads: dict[uuid.UUID, AuditChainHead]
    accounts: dict[uuid.UUID, Account]


async def _begin(session: AsyncSession) -> None:
    """Begin the session's transaction if none has begun yet: the locks are remembered per
    transaction, and a lock asked for before the transaction began must not be taken for one held in
    an earlier transaction (committed or rolled back since, so no longer held)."""
    if session.sync_session.get_transaction() is None:
        await session.connection()


def _locks(session: AsyncSession) -> _Locks:
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    locks: _Locks | None = session.info.get("account_locks")
    if locks is None or locks.transaction is not transaction:
        locks = session.info["account_locks"] = _Locks(transaction, {}, {})
    return locks


async def _lock_head(session: AsyncSession, account_id: uuid.UUID) -> AuditChainHead:
    locks = _locks(session)
    head = locks.heads.get(account_id)
    if head is None:
        head = locks.heads[account_id] = await _select_head_for_update(session, account_id)
    return head


async def _select_head_for_update(session: AsyncSession, account_id: uuid.UUID) -> AuditChainHead:
    """Lock the account's chain head row (``FOR UPDATE``) and read it fresh; created on first use.

    Nothing the caller has pending is flushed first: the head lock must be the first lock its
    transaction takes on the account's rows (see ``lock_account``). A missing row (an account
    created since the migration) is inserted, unless the account does not exist: LookupError.
    """
    stmt = (
        select(AuditChainHead)
        .where(AuditChainHead.account_id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    with session.no_autoflush:
        head = await session.scalar(stmt)
    if head is None:
        # A new account: nobody else can be waiting on its rows yet, so flushing first is harmless
        # (and the account row itself may still be pending).
        await session.flush()
        upsert = _insert(session).from_select(
            ["account_id", "seq", "head"],
            select(Account.id, literal(0), literal("")).where(Account.id == account_id),
        )
        await session.execute(upsert.on_conflict_do_nothing(index_elements=["account_id"]))
        head = await session.scalar(stmt)
    if head is None:
        raise LookupError(f"account {account_id} does not exist")
    return head


def _insert(session: AsyncSession) -> Any:
    """INSERT with ON CONFLICT for the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert(AuditChainHead)
    return sqlite_insert(AuditChainHead)


async def _fresh_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """The account row as committed now (what the session may have loaded before is refreshed)."""
    return await session.scalar(
        select(Account).where(Account.id == account_id).execution_options(populate_existing=True)
    )
