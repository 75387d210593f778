"""What the gateway needs to know per call, kept in memory: callers (by token) and each account's catalogue.

The hot path must not make a database round-trip per call. Entries are loaded on first use (one
load shared by concurrent callers) and dropped as soon as anything they were built from changes.

What makes entries go: a commit that changed what they were built from, in this process or another
(see ``gateway.invalidation``: per account, and across processes through PostgreSQL's LISTEN/NOTIFY
or, with SQLite, a stamp file in the shared data directory).

As a safety net for changes made outside the ORM, an entry older than ``ttl_seconds``
(``COCKPIT_GATEWAY_CACHE_TTL_SECONDS``, default ``TTL_SECONDS``) is reloaded
in the background (it serves that one call meanwhile). Expiry of a token is checked on every call
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
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from cockpit.agents.models import Agent, AgentStatus
from cockpit.auth.models import ApiToken
from cockpit.auth.tokens import TOKEN_PREFIX
from cockpit.credits.enforcement import Pricing
from cockpit.gateway import invalidation
from cockpit.integrations.models import Integration
from cockpit.kit import secrets
from cockpit.kit.text import is_header_name, is_header_value
from cockpit.policies.engine import PolicySet
from cockpit.policies.service import policy_set
from cockpit.projects.models import Project, ProjectMember
from cockpit.providers.models import Model, Provider, ProviderKind
from cockpit.tenancy.models import Account
from cockpit.users.models import UserRole, UserStatus

log = logging.getLogger("cockpit.gateway")
T = TypeVar("T")

TTL_SECONDS = 5.0
MAX_CALLERS = 100_000  # bounds memory when someone tries many random tokens


@dataclass(frozen=True, slots=True)
class Caller:
    token_id: uuid.UUID | None  # None: a person in the console (e.g. the agent wizard)
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


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """What running an agent needs (its tools are listed per integration, see ``agent_run``)."""

    id: uuid.UUID
    slug: str
    name: str
    active: bool
    project_id: uuid.UUID | None
    model_id: uuid.UUID | None
    instructions: str
    temperature: float | None
    max_output_tokens: int | None
    integration_ids: tuple[uuid.UUID, ...]
    tools: dict[str, Any]
    visibility: str
    group_ids: frozenset[uuid.UUID]
    max_steps: int
    created: int = 0


@dataclass(frozen=True, slots=True)
class IntegrationSpec:
    id: uuid.UUID
    slug: str
    name: str
    enabled: bool
    price_credits: Decimal
    tools: tuple[dict[str, Any], ...]


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
    agents: dict[str, AgentSpec] = field(default_factory=dict)  # by slug
    integrations: dict[uuid.UUID, IntegrationSpec] = field(default_factory=dict)
    # Prepended to every agent's instructions (the organisation's custom instructions).
    custom_instructions: str = ""


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
        invalidation.register(self)

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

    def cached_catalog(self, account_id: uuid.UUID) -> Catalog | None:
        """The account's catalogue if it is in memory, as it is: never loads, so it may be asked for
        inside a database transaction (on SQLite a load would wait for that transaction's lock)."""
        return self._catalogs.get(account_id)

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
            agents = (await session.scalars(select(Agent).where(Agent.account_id == account_id))).all()
            integrations = (
                await session.scalars(select(Integration).where(Integration.account_id == account_id))
            ).all()
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
            agents={a.slug: _agent_spec(a) for a in agents},
            integrations={i.id: _integration_spec(i) for i in integrations},
            custom_instructions=str(getattr(account, "custom_instructions", "") or ""),
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


def _ids(values: Iterable[object]) -> list[uuid.UUID]:
    found = []
    for value in values:
        try:
            found.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return found


def _agent_spec(agent: Agent) -> AgentSpec:
    return AgentSpec(
        id=agent.id,
        slug=agent.slug,
        name=agent.name,
        active=agent.status is AgentStatus.active,
        project_id=agent.project_id,
        model_id=agent.model_id,
        instructions=agent.instructions or "",
        temperature=agent.temperature,
        max_output_tokens=agent.max_output_tokens,
        integration_ids=tuple(_ids(agent.integration_ids or [])),
        tools=dict(agent.tools or {}),
        visibility=str(agent.visibility),
        group_ids=frozenset(_ids(agent.group_ids or [])),
        max_steps=agent.max_steps,
        created=int(agent.created_at.timestamp()),
    )


def _integration_spec(integration: Integration) -> IntegrationSpec:
    tools = [t for t in integration.tools or [] if isinstance(t, dict) and isinstance(t.get("name"), str)]
    return IntegrationSpec(
        id=integration.id,
        slug=integration.slug,
        name=integration.name,
        enabled=integration.enabled,
        price_credits=integration.price_credits,
        tools=tuple(tools),
    )


def _stamp_of(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0
