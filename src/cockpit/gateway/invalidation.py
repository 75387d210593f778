"""When the gateway directory forgets: what a commit changed, in this process and in the others.

**Per account.** Every commit that touched an API token, user, group, project, membership, account,
provider, model, credit cycle, budget, allocation or access policy (ORM changes, and ORM bulk
UPDATE/DELETE statements) names the accounts it touched, and only those accounts' callers and
catalogue are dropped, and only their credit leases retired (``generation(account_id)``): a change
in one tenant costs the others nothing. Columns that nothing here reads (``users.last_login_at``,
written at every sign-in, ``api_tokens.last_used_at``) do not count. A bulk statement whose account
cannot be read off its WHERE clause (``account_id = ...``) drops everything: the safe side.

**Across processes.** In this process the change applies at commit (a revoked token or a
deactivated user is refused by the very next call). Other processes learn of it:

- on PostgreSQL, through ``LISTEN/NOTIFY``: the committing transaction itself sends
  ``pg_notify('cockpit_directory', ...)`` with the account ids (delivered only if it commits), and
  every server process keeps one connection listening (``DirectoryListener``), on any machine. A
  request whose commit changed something waits, briefly (at most ``NOTIFY_WAIT_SECONDS``), until
  its own notification has come back to this process's listener before it answers: PostgreSQL
  sends a notification to every listener at once, so when the response that revoked a token
  arrives, the other processes have normally had it too. Guaranteed: a process that received the
  notification refuses every call it starts afterwards; every process has it within its listener's
  network delay of the commit. Not guaranteed: that another process has *processed* it before it
  serves a call that the revoking client sends the instant it has its answer (that process may not
  yet have read its socket). If the listening connection drops, everything is dropped and it
  reconnects (with backoff); everything is dropped again once it listens again.
- on SQLite (processes of one machine, sharing the data directory): through a stamp file that
  every invalidation touches and every call checks (one ``stat``); it drops everything.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import uuid
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Column, event, inspect, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList

from cockpit.agents.models import Agent
from cockpit.auth.models import ApiToken
from cockpit.credits.models import CreditCycle, GroupBudget, MemberAllocation
from cockpit.groups.models import Group
from cockpit.integrations.models import Integration
from cockpit.kit.db import after_commit
from cockpit.kit.pglisten import Listener
from cockpit.policies.models import AccessPolicy, PolicyDefaults
from cockpit.projects.models import Project, ProjectMember
from cockpit.providers.models import Model, Provider
from cockpit.tenancy.models import Account
from cockpit.users.models import User

if TYPE_CHECKING:
    from cockpit.gateway.directory import Directory

log = logging.getLogger("cockpit.gateway")

# Credits too: a new cycle (reset, cadence change, rollover) retires the credit leases, and a changed
# budget or allocation makes the next call look at the database again (see credits.enforcement).
# Access policies too: a changed rule or default applies to the very next call.
TRACKED = (
    ApiToken, User, Group, Project, ProjectMember, Account, Provider, Model,
    CreditCycle, GroupBudget, MemberAllocation, AccessPolicy, PolicyDefaults, Agent, Integration,
)  # fmt: skip
_TRACKED_TABLES = frozenset(cls.__tablename__ for cls in TRACKED)


# Every directory of this process: a commit that changed what they hold tells them all.
_DIRECTORIES: weakref.WeakSet[Directory] = weakref.WeakSet()


def register(directory: Directory) -> None:
    _DIRECTORIES.add(directory)


def changed(account_ids: Iterable[uuid.UUID] | None) -> None:
    """These accounts changed (None: anything may have): every directory of this process forgets
    them, and the processes sharing a stamp file (SQLite) forget everything."""
    ids = None if account_ids is None else frozenset(account_ids)
    for directory in _DIRECTORIES:
        directory.forget(ids)
        directory._touch_stamp()


# ---- what a transaction changed ----

_TOUCHED = "cockpit_gateway_touched"  # session.info: the accounts a transaction changed (None: any)
_WAITERS = "cockpit_gateway_waiters"  # session.info: tags of its notification, while it commits
# Columns written often that nothing in the directory or the credit leases depends on.
_UNTRACKED_COLUMNS: dict[type, frozenset[str]] = {
    User: frozenset({"last_login_at"}),
    ApiToken: frozenset({"last_used_at"}),
}
for _cls in TRACKED:  # every change must say which account it is of
    assert _cls is Account or hasattr(_cls, "account_id"), _cls


def _touch(session: Session, account_id: uuid.UUID | None) -> None:
    touched: set[uuid.UUID | None] = session.info.setdefault(_TOUCHED, set())
    touched.add(account_id)


def _account_of(obj: object) -> uuid.UUID | None:
    state = inspect(obj)
    value = state.dict.get("id" if isinstance(obj, Account) else "account_id")
    return value if isinstance(value, uuid.UUID) else None  # unknown (expired): everything


def _relevant_change(obj: object) -> bool:
    ignored = _UNTRACKED_COLUMNS.get(type(obj), frozenset())
    return any(attr.key not in ignored and attr.history.has_changes() for attr in inspect(obj).attrs)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    # Still the state before the flush here: new, dirty and deleted, and each attribute's history.
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, TRACKED):
            _touch(session, _account_of(obj))
    for obj in session.dirty:
        if isinstance(obj, TRACKED) and _relevant_change(obj):
            _touch(session, _account_of(obj))


@event.listens_for(Session, "do_orm_execute")
def _orm_execute(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and not state.execution_options.get("cockpit_keep_gateway_cache"):
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _TRACKED_TABLES:
            _touch(state.session, _statement_account(state.statement, table))


def _statement_account(statement: Any, table: Any) -> uuid.UUID | None:
    """The account a bulk UPDATE/DELETE is limited to by ``account_id = <value>`` (``id`` for
    ``accounts``) among the AND-ed conditions of its WHERE clause; None when there is none."""
    name = "id" if table.name == Account.__tablename__ else "account_id"
    where = getattr(statement, "whereclause", None)
    if where is None:
        return None
    conditions = (
        where.clauses
        if isinstance(where, BooleanClauseList) and where.operator is operators.and_
        else [where]
    )
    for condition in conditions:
        if (
            isinstance(condition, BinaryExpression)
            and condition.operator is operators.eq
            and isinstance(condition.left, Column)
            and condition.left.table.name == table.name  # (the statement's table is an annotated copy)
            and condition.left.name == name
            and isinstance(condition.right, BindParameter)
            and isinstance(condition.right.effective_value, uuid.UUID)
        ):
            return condition.right.effective_value
    return None


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    """PostgreSQL: tell the other processes, in the transaction itself (delivered only if it commits)."""
    try:
        bind = session.get_bind()
    except UnboundExecutionError:
        return
    if bind.dialect.name != "postgresql" or not isinstance(bind, Engine):
        return
    session.flush()  # the commit flushes after this hook: what it writes is part of the change
    touched: set[uuid.UUID | None] | None = session.info.get(_TOUCHED)
    if not touched:
        return
    tag = f"{_ORIGIN}:{next(_SEQUENCE)}"
    ids = (
        "*"
        if None in touched or len(touched) > MAX_NOTIFIED_ACCOUNTS
        else ",".join(sorted(a.hex for a in touched if a is not None))
    )
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": f"{tag} {ids}"}
    )
    loop = _listening(bind.url)
    if loop is not None:
        # The request answers once its own notification is back (see the module's docstring).
        _WAITING[tag] = loop.create_future()
        session.info.setdefault(_WAITERS, []).append(tag)
        after_commit(session, lambda: _notified_back(tag))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    session.info.pop(_WAITERS, None)
    touched: set[uuid.UUID | None] | None = session.info.pop(_TOUCHED, None)
    if touched:
        changed(None if None in touched else cast(set[uuid.UUID], touched))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_TOUCHED, None)
    for tag in session.info.pop(_WAITERS, ()):  # its notification is not sent
        _WAITING.pop(tag, None)


# ---- across processes: PostgreSQL's LISTEN/NOTIFY ----

CHANNEL = "cockpit_directory"
NOTIFY_WAIT_SECONDS = 1.0
MAX_NOTIFIED_ACCOUNTS = 200  # a notification carries at most 8000 bytes; more accounts: everything
_ORIGIN = uuid.uuid4().hex[:16]  # this process, in the tags of its notifications
_SEQUENCE = itertools.count(1)
_WAITING: dict[str, asyncio.Future[None]] = {}  # this process's notifications not seen back yet
_LISTENERS: weakref.WeakSet[DirectoryListener] = weakref.WeakSet()


def _forked() -> None:
    # A forked worker is another process: its notifications are not its parent's.
    global _ORIGIN
    _ORIGIN = uuid.uuid4().hex[:16]
    _WAITING.clear()


os.register_at_fork(after_in_child=_forked)


def _listening(url: URL) -> asyncio.AbstractEventLoop | None:
    """The running event loop, if a listener of this process on it is connected to this database."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop if any(listener.hears(url, loop) for listener in _LISTENERS) else None


async def _notified_back(tag: str) -> None:
    waiter = _WAITING.get(tag)
    if waiter is None:
        return  # seen already
    try:
        await asyncio.wait_for(asyncio.shield(waiter), NOTIFY_WAIT_SECONDS)
    except TimeoutError:
        log.warning(
            "the directory change notification %s did not come back within %ss", tag, NOTIFY_WAIT_SECONDS
        )
    finally:
        _WAITING.pop(tag, None)


def _release_waiters() -> None:
    for waiter in _WAITING.values():
        if not waiter.done():
            waiter.set_result(None)
    _WAITING.clear()


class DirectoryListener:
    """Keeps a directory in step with the commits of every other process (PostgreSQL).

    One connection of its own LISTENs to ``CHANNEL``; each notification names the accounts a commit
    changed. While the connection is down nothing is heard: everything is dropped when it goes and
    again once it listens again (the TTL bounds what is served meanwhile).
    """

    def __init__(self, directory: Directory, engine: AsyncEngine) -> None:
        self.directory = directory
        self.listener = Listener(engine, CHANNEL, on_message=self._message, on_reset=self._reset)
        _LISTENERS.add(self)

    async def start(self, *, wait: float = 5.0) -> None:
        """Start listening; returns once it listens (or after ``wait`` seconds: it keeps trying)."""
        await self.listener.start(wait=wait)

    async def stop(self) -> None:
        await self.listener.stop()

    @property
    def connected(self) -> bool:
        return self.listener.connected

    def hears(self, url: URL, loop: asyncio.AbstractEventLoop) -> bool:
        return self.listener.connected and self.listener.loop is loop and self.listener.same_database(url)

    def _message(self, payload: str) -> None:
        tag, _, ids = payload.partition(" ")
        if tag.startswith(_ORIGIN + ":"):  # this process's own commit: applied when it committed
            waiter = _WAITING.pop(tag, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if ids == "*":
            self.directory.forget(None)
            return
        try:
            accounts = [uuid.UUID(hex=value) for value in ids.split(",") if value]
        except ValueError:
            log.warning("unexpected directory notification %r: everything is dropped", payload[:100])
            self.directory.forget(None)
            return
        self.directory.forget(accounts)

    def _reset(self) -> None:
        self.directory.forget(None)
        _release_waiters()  # waiting for a notification would not help any more
