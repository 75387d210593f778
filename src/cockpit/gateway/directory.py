"""What the gateway needs to know per call, kept in memory: callers (by token) and each account's catalogue.

The hot path must not make a database round-trip per call. Entries are loaded on first use (one
load shared by concurrent callers) and dropped as soon as anything they were built from changes:
every commit that touched an API token, user, group, project, membership, account, provider or
model (ORM changes and ORM bulk UPDATE/DELETE statements) clears the directory of this process,
so a revoked token or a deactivated user is refused by the very next call. Other processes of the
same deployment (``cockpit serve --workers N``) learn of it through a stamp file in the data
directory that every invalidation touches and every call checks (one ``stat``). As a safety net
for changes made outside the ORM, an entry older than ``TTL_SECONDS`` is reloaded in the
background (it serves that one call meanwhile). Expiry of a token is checked on every call
against the cached expiry time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
import uuid
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, selectinload

from cockpit.accounts.models import Account
from cockpit.auth.models import ApiToken
from cockpit.auth.tokens import TOKEN_PREFIX
from cockpit.credits.enforcement import Pricing
from cockpit.credits.models import CreditCycle, GroupBudget, MemberAllocation
from cockpit.groups.models import Group
from cockpit.kit import secrets
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
        self, sessionmaker: async_sessionmaker[AsyncSession], secret_key: str, stamp: Path | None = None
    ) -> None:
        self.sessionmaker = sessionmaker
        self.secret_key = secret_key
        # A file whose modification time changes at every invalidation: other processes of the same
        # deployment (``cockpit serve --workers N``) notice it on their next call.
        self.stamp = stamp
        self._seen_stamp = _stamp_of(stamp)
        self._callers: dict[str, tuple[Caller | None, float]] = {}
        self._catalogs: dict[uuid.UUID, Catalog] = {}
        self.loads = 0  # database loads (for tests and benchmarks)
        self._generation = 0
        self._loading: dict[tuple[str, object], asyncio.Future[Any]] = {}
        _DIRECTORIES.add(self)

    def generation(self) -> int:
        """Changes whenever what the directory holds may have changed (here or in another process)."""
        return self._generation

    def invalidate(self) -> None:
        self._clear()
        if self.stamp is not None:
            try:
                self.stamp.parent.mkdir(parents=True, exist_ok=True)
                self.stamp.touch()
                now = time.time_ns()
                os.utime(self.stamp, ns=(now, now))
            except OSError:
                log.warning(
                    "could not touch %s; other gateway processes see changes within %ss",
                    self.stamp,
                    TTL_SECONDS,
                )
            self._seen_stamp = _stamp_of(self.stamp)

    def _check_stamp(self) -> None:
        stamp = _stamp_of(self.stamp)
        if stamp != self._seen_stamp:
            self._seen_stamp = stamp
            self._clear()

    def _clear(self) -> None:
        # Loads that started before the change must not store what they read.
        self._generation += 1
        self._callers.clear()
        self._catalogs.clear()
        self._loading.clear()

    async def caller(self, raw: str) -> Caller | None:
        """The caller a bearer token stands for, or None (unknown, revoked, user inactive)."""
        if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
            return None
        if self.stamp is not None:
            self._check_stamp()
        digest = hashlib.sha256(raw.encode()).hexdigest()
        hit = self._callers.get(digest)
        if hit is not None:
            if time.monotonic() - hit[1] >= TTL_SECONDS:
                self._refresh(("caller", digest), self._reload_caller(raw, digest))
            return hit[0]
        return await self._single(("caller", digest), self._reload_caller(raw, digest))

    async def _reload_caller(self, raw: str, digest: str) -> Caller | None:
        generation = self._generation
        caller = await self._load_caller(raw, digest)
        if generation == self._generation:  # nothing changed while loading
            if len(self._callers) >= MAX_CALLERS:
                self._callers.clear()
            self._callers[digest] = (caller, time.monotonic())
        return caller

    async def _single(self, key: tuple[str, object], load: Coroutine[Any, Any, T]) -> T:
        """Concurrent misses of one entry share a single load."""
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(load)
            self._loading[key] = task
            task.add_done_callback(lambda _t: self._loading.pop(key, None))
        else:
            load.close()
        return cast(T, await asyncio.shield(task))

    def _refresh(self, key: tuple[str, object], load: Coroutine[Any, Any, Any]) -> None:
        """An entry past its TTL is served once more while it reloads in the background."""
        if key in self._loading:
            load.close()
            return
        task = asyncio.ensure_future(load)
        self._loading[key] = task

        def done(t: asyncio.Future[Any]) -> None:
            self._loading.pop(key, None)
            if not t.cancelled() and t.exception() is not None:
                log.warning("gateway directory refresh failed: %s", type(t.exception()).__name__)

        task.add_done_callback(done)

    async def _load_caller(self, raw: str, digest: str) -> Caller | None:
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
                return None
            return Caller(
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
        return None

    async def catalog(self, account_id: uuid.UUID) -> Catalog:
        catalog = self._catalogs.get(account_id)
        if catalog is not None:
            if time.monotonic() - catalog.loaded >= TTL_SECONDS:
                self._refresh(("catalog", account_id), self._reload_catalog(account_id))
            return catalog
        return await self._single(("catalog", account_id), self._reload_catalog(account_id))

    async def _reload_catalog(self, account_id: uuid.UUID) -> Catalog:
        generation = self._generation
        catalog = await self._load_catalog(account_id)
        if generation == self._generation:
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


# Every directory of this process; a commit that changed what they hold clears them all.
_DIRECTORIES: weakref.WeakSet[Directory] = weakref.WeakSet()


def invalidate_all() -> None:
    for directory in _DIRECTORIES:
        directory.invalidate()


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, TRACKED):
            session.info["cockpit_gateway_dirty"] = True
            return


@event.listens_for(Session, "do_orm_execute")
def _orm_execute(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and not state.execution_options.get("cockpit_keep_gateway_cache"):
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _TRACKED_TABLES:
            state.session.info["cockpit_gateway_dirty"] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop("cockpit_gateway_dirty", False):
        invalidate_all()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop("cockpit_gateway_dirty", None)
