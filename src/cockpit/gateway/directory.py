"""What the gateway needs to know per call, kept in memory: callers (by token) and each account's catalogue.

The hot path must not make a database round-trip per call. Entries are loaded on first use (one
load shared by concurrent callers) and dropped as soon as anything they were built from changes.

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

As a safety net for changes made outside the ORM, an entry older than ``ttl_seconds``
(``COCKPIT_GATEWAY_CACHE_TTL_SECONDS``, default ``TTL_SECONDS``) is reloaded
in the background (it serves that one call meanwhile). Expiry of a token is checked on every call
against the cached expiry time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import os
import time
import uuid
import weakref
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Column, event, inspect, select, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, selectinload
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList

from cockpit.accounts.models import Account
from cockpit.auth.models import ApiToken
from cockpit.auth.tokens import TOKEN_PREFIX
from cockpit.credits.enforcement import Pricing
from cockpit.credits.models import CreditCycle, GroupBudget, MemberAllocation
from cockpit.groups.models import Group
from cockpit.kit import secrets
from cockpit.kit.db import after_commit
from cockpit.kit.pglisten import Listener
from cockpit.kit.text import is_header_name, is_header_value
from cockpit.policies.engine import PolicySet
from cockpit.policies.models import AccessPolicy, PolicyDefaults
from cockpit.policies.service import policy_set
from cockpit.projects.models import Project, ProjectMember
from cockpit.providers.models import Model, Provider, ProviderKind
from cockpit.users.models import User, UserRole, UserStatus

log = logging.getLogger("cockpit.gateway")
T = TypeVar("T")

TTL_SECONDS = 5.0
MAX_CALLERS = 100_000  # bounds memory when someone tries many random tokens
# Credits too: a new cycle (reset, cadence change, rollover) retires the credit leases, and a changed
# budget or allocation makes the next call look at the database again (see credits.enforcement).
# Access policies too: a changed rule or default applies to the very next call.
TRACKED = (
    ApiToken, User, Group, Project, ProjectMember, Account, Provider, Model,
    CreditCycle, GroupBudget, MemberAllocation, AccessPolicy, PolicyDefaults,
)  # fmt: skip
_TRACKED_TABLES = frozenset(cls.__tablename__ for cls in TRACKED)


@dataclass(frozen=True, slots=True)
class Caller:
    token_id: uuid.UUID
    account_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    role: UserRole
    group_id: uuid.UUID
    scopes: frozenset[str]
    expires_at: datetime | None
    project_id: uuid.UUID | None  # a project token attributes its calls to the project


@dataclass(frozen=True, slots=True)
class Upstream:
    provider_id: uuid.UUID
    name: str
    kind: ProviderKind
    base_url: str | None
    api_key: str | None
    settings: dict[str, Any]
    # Request targets and headers built once per catalogue load (see upstreams.py).
    prepared: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Route:
    model_id: uuid.UUID
    name: str
    upstream_model: str
    upstream: Upstream
    input_price: Decimal  # USD per million tokens
    output_price: Decimal
    cached_price: Decimal
    context_window: int | None
    max_output_tokens: int | None
    capabilities: frozenset[str]
    created: int

    @property
    def pricing(self) -> Pricing:
        return Pricing(
            self.input_price,
            self.output_price,
            self.cached_price,
            self.max_output_tokens,
            self.context_window,
        )


@dataclass(slots=True)
class Catalog:
    account_id: uuid.UUID
    store_content: bool
    retention_days: int
    routes: dict[str, Route]
    projects_by_id: dict[uuid.UUID, str]
    projects_by_name: dict[str, uuid.UUID]
    members: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)  # (project, user)
    loaded: float = 0.0
    # Credits per $1 of cost (0: credits are not tracked for this account).
    credit_factor: Decimal = Decimal(0)
    # The account's access policies, indexed: a decision is a few dictionary lookups.
    policies: PolicySet = field(default_factory=PolicySet)


class Directory:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        secret_key: str,
        stamp: Path | None = None,
        *,
        ttl_seconds: float = TTL_SECONDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.secret_key = secret_key
        self.ttl = ttl_seconds
        # A file whose modification time changes at every invalidation: other processes of the same
        # deployment sharing the data directory (SQLite) notice it on their next call.
        self.stamp = stamp
        self._seen_stamp = _stamp_of(stamp)
        # Token digest -> (the caller or None, when it was loaded, its account if known).
        self._callers: dict[str, tuple[Caller | None, float, uuid.UUID | None]] = {}
        self._digests: dict[uuid.UUID, set[str]] = {}  # each account's entries in _callers
        self._catalogs: dict[uuid.UUID, Catalog] = {}
        self.loads = 0  # database loads (for tests and benchmarks)
        # Generations: a counter that every invalidation advances, and the value it had at the last
        # invalidation of everything and of each account. A load that started before one of them
        # does not store what it read.
        self._counter = 0
        self._everything = 0
        self._changed: dict[uuid.UUID, int] = {}
        self._loading: dict[tuple[str, object], asyncio.Future[Any]] = {}
        _DIRECTORIES.add(self)

    def generation(self, account_id: uuid.UUID) -> int:
        """Changes whenever what the directory holds of this account may have changed (here or in
        another process); the credit keeper retires the account's leases when it does."""
        return max(self._everything, self._changed.get(account_id, 0))

    def invalidate(self) -> None:
        """Drop everything, here and (through the stamp file) in the processes sharing it."""
        self.forget(None)
        self._touch_stamp()

    def forget(self, account_ids: Iterable[uuid.UUID] | None) -> None:
        """Drop what this process holds of these accounts (None: of every account)."""
        self._counter += 1
        if account_ids is None:
            self._everything = self._counter
            self._changed.clear()
            self._callers.clear()
            self._digests.clear()
            self._catalogs.clear()
            self._loading.clear()
            return
        for account_id in account_ids:
            self._changed[account_id] = self._counter
            for digest in self._digests.pop(account_id, ()):
                self._callers.pop(digest, None)
            self._catalogs.pop(account_id, None)
            self._loading.pop(("catalog", account_id), None)
        # Whose token a caller load in flight is for is known only when it returns: calls from now
        # on start a load of their own (the one in flight does not store what it read).
        for key in [key for key in self._loading if key[0] == "caller"]:
            del self._loading[key]

    def _touch_stamp(self) -> None:
        if self.stamp is None:
            return
        try:
            self.stamp.parent.mkdir(parents=True, exist_ok=True)
            self.stamp.touch()
            now = time.time_ns()
            os.utime(self.stamp, ns=(now, now))
        except OSError:
            log.warning(
                "could not touch %s; other gateway processes see changes within %ss", self.stamp, self.ttl
            )
        self._seen_stamp = _stamp_of(self.stamp)

    def _check_stamp(self) -> None:
        stamp = _stamp_of(self.stamp)
        if stamp != self._seen_stamp:
            self._seen_stamp = stamp
            self.forget(None)

    def _fresh(self, started: int, account_id: uuid.UUID | None) -> bool:
        """Nothing that a load started at ``started`` read has been invalidated since."""
        return (self._everything if account_id is None else self.generation(account_id)) <= started

    async def caller(self, raw: str) -> Caller | None:
        """The caller a bearer token stands for, or None (unknown, revoked, user inactive)."""
        if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
            return None
        if self.stamp is not None:
            self._check_stamp()
        digest = hashlib.sha256(raw.encode()).hexdigest()
        hit = self._callers.get(digest)
        if hit is not None:
            if time.monotonic() - hit[1] >= self.ttl:
                self._refresh(("caller", digest), self._reload_caller(raw, digest))
            return hit[0]
        return await self._single(("caller", digest), self._reload_caller(raw, digest))

    async def _reload_caller(self, raw: str, digest: str) -> Caller | None:
        started = self._counter
        caller, account_id = await self._load_caller(raw, digest)
        if self._fresh(started, account_id):  # nothing changed while loading
            if len(self._callers) >= MAX_CALLERS:
                self._callers.clear()
                self._digests.clear()
            self._callers[digest] = (caller, time.monotonic(), account_id)
            if account_id is not None:
                self._digests.setdefault(account_id, set()).add(digest)
        return caller

    async def _single(self, key: tuple[str, object], load: Coroutine[Any, Any, T]) -> T:
        """Concurrent misses of one entry share a single load."""
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(load)
            self._loading[key] = task
            task.add_done_callback(lambda done: self._done_loading(key, done))
        else:
            load.close()
        return cast(T, await asyncio.shield(task))

    def _done_loading(self, key: tuple[str, object], task: asyncio.Future[Any]) -> None:
        if self._loading.get(key) is task:  # not a newer load of the same entry
            del self._loading[key]

    def _refresh(self, key: tuple[str, object], load: Coroutine[Any, Any, Any]) -> None:
        """An entry past its TTL is served once more while it reloads in the background."""
        if key in self._loading:
            load.close()
            return
        task = asyncio.ensure_future(load)
        self._loading[key] = task

        def done(t: asyncio.Future[Any]) -> None:
            self._done_loading(key, t)
            if not t.cancelled() and t.exception() is not None:
                log.warning("gateway directory refresh failed: %s", type(t.exception()).__name__)

        task.add_done_callback(done)

    async def _load_caller(self, raw: str, digest: str) -> tuple[Caller | None, uuid.UUID | None]:
        """The caller, and the token's account (None when no token has this value)."""
        self.loads += 1
        async with self.sessionmaker() as session:
            candidates = (
                await session.scalars(
                    select(ApiToken).where(ApiToken.prefix == raw[:10]).options(selectinload(ApiToken.user))
                )
            ).all()
        for token in candidates:
            # Compared in constant time; the prefix only narrows the search.
            if not hmac.compare_digest(token.token_hash, digest):
                continue
            user = token.user
            if token.revoked_at is not None or user.status is not UserStatus.active:
                return None, token.account_id
            caller = Caller(
                token_id=token.id,
                account_id=token.account_id,
                user_id=user.id,
                email=user.email,
                role=user.role,
                group_id=user.group_id,
                scopes=frozenset(token.scopes),
                expires_at=token.expires_at,
                project_id=token.project_id,
            )
            return caller, token.account_id
        # No such token. An unknown value cannot become a token later (tokens are random): this
        # entry is dropped only with everything.
        return None, None

    async def catalog(self, account_id: uuid.UUID) -> Catalog:
        catalog = self._catalogs.get(account_id)
        if catalog is not None:
            if time.monotonic() - catalog.loaded >= self.ttl:
                self._refresh(("catalog", account_id), self._reload_catalog(account_id))
            return catalog
        return await self._single(("catalog", account_id), self._reload_catalog(account_id))

    async def _reload_catalog(self, account_id: uuid.UUID) -> Catalog:
        started = self._counter
        catalog = await self._load_catalog(account_id)
        if self._fresh(started, account_id):
            self._catalogs[account_id] = catalog
        return catalog

    async def _load_catalog(self, account_id: uuid.UUID) -> Catalog:
        self.loads += 1
        async with self.sessionmaker() as session:
            account = await session.get(Account, account_id)
            rows = (
                await session.execute(
                    select(Model, Provider)
                    .join(Provider, Provider.id == Model.provider_id)
                    .where(Model.account_id == account_id)
                )
            ).all()
            projects = (
                await session.execute(
                    select(Project.id, Project.name).where(Project.account_id == account_id)
                )
            ).all()
            members = (
                await session.execute(
                    select(ProjectMember.project_id, ProjectMember.user_id).where(
                        ProjectMember.account_id == account_id
                    )
                )
            ).all()
            policies = await policy_set(session, account_id)
        upstreams: dict[uuid.UUID, Upstream] = {}
        routes: dict[str, Route] = {}
        for model, provider in rows:
            if not model.enabled:
                continue
            upstream = upstreams.get(provider.id)
            if upstream is None:
                upstream = upstreams[provider.id] = self._upstream(provider)
            routes[model.name] = Route(
                model_id=model.id,
                name=model.name,
                upstream_model=model.upstream_model,
                upstream=upstream,
                input_price=model.input_price_per_million,
                output_price=model.output_price_per_million,
                cached_price=model.cached_input_price_per_million,
                context_window=model.context_window,
                max_output_tokens=model.max_output_tokens,
                capabilities=frozenset(model.capabilities),
                created=int(model.created_at.timestamp()),
            )
        return Catalog(
            account_id=account_id,
            store_content=bool(account and account.store_request_content),
            retention_days=account.content_retention_days if account else 30,
            credit_factor=account.credit_factor if account else Decimal(0),
            routes=routes,
            projects_by_id={pid: name for pid, name in projects},
            projects_by_name={name.lower(): pid for pid, name in projects},
            members={(pid, uid) for pid, uid in members},
            loaded=time.monotonic(),
            policies=policies,
        )

    def _upstream(self, provider: Provider) -> Upstream:
        key: str | None = None
        if provider.api_key_encrypted:
            try:
                key = secrets.decrypt(provider.api_key_encrypted, self.secret_key)
            except ValueError:
                key = None  # the secret key changed: the upstream will refuse, reported as such
        settings = dict(provider.settings or {})
        # Saved before these were checked: a key or header name that cannot go into an HTTP header
        # is left out, so the upstream refuses the call (a 502 naming the key) instead of a crash.
        if key is not None and not is_header_value(key):
            log.warning(
                "provider %s has an API key that cannot be sent in a header; save it again", provider.id
            )
            key = None
        header = settings.get("api_key_header")
        if header is not None and not (isinstance(header, str) and is_header_name(header)):
            settings.pop("api_key_header")
        return Upstream(
            provider_id=provider.id,
            name=provider.name,
            kind=provider.kind,
            base_url=provider.base_url,
            api_key=key,
            settings=settings,
        )


def _stamp_of(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


# Every directory of this process: a commit that changed what they hold tells them all.
_DIRECTORIES: weakref.WeakSet[Directory] = weakref.WeakSet()


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
