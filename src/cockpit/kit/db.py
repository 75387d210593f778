"""Database plumbing: engine, sessions, the declarative base and shared column types."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator, Uuid

from cockpit.config import normalize_database_url
from cockpit.kit.time import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive values, we re-attach UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class MicroDecimal(TypeDecorator[Decimal]):
    """An exact decimal with 6 places, stored as an integer count of millionths.

    SQLite keeps NUMERIC values as floating point; integers are exact on every backend.
    """

    impl = BigInteger
    cache_ok = True
    PLACES = 6
    SCALE = Decimal(10) ** PLACES

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        scaled = Decimal(value) * self.SCALE
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {self.PLACES} decimal places")
        return int(scaled)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value) / self.SCALE


class PicoDecimal(MicroDecimal):
    """An exact decimal with 12 places (integer count of 10^-12): the cost of a call in USD.

    A price per million tokens has 6 places, so tokens x price / 10^6 always fits exactly;
    a BigInteger holds up to about $9.2 million per row.
    """

    cache_ok = True
    PLACES = 12
    SCALE = Decimal(10) ** PLACES


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def make_engine(url: str, *, sqlite_immediate: bool = True, **kwargs: Any) -> AsyncEngine:
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # The sqlite3 driver's own transaction handling starts transactions late and
            # breaks SAVEPOINTs; we turn it off and emit BEGIN ourselves (SQLAlchemy's recipe).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front, so concurrent writers queue (busy_timeout)
            # instead of failing with "database is locked" when a read transaction upgrades.
            # Read-only work (exports, inspection) opts out with READ_ONLY so it never blocks
            # writers (WAL). PostgreSQL uses row locks instead.
            if conn.get_execution_options().get("cockpit_read_only"):
                conn.exec_driver_sql("BEGIN")
            elif sqlite_immediate:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            # Otherwise (sessions that inspect while other connections write: the tests') reads run
            # outside a transaction, holding no lock and no snapshot, and the first write begins one
            # with IMMEDIATE: a deferred read transaction could not become a write transaction once
            # another connection has written ("database is locked" at once, whatever the timeout).

        if not sqlite_immediate:

            @event.listens_for(engine.sync_engine, "before_cursor_execute")
            def _sqlite_write_begins(
                conn: Any, cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
            ) -> None:
                if conn.info.get("cockpit_writing") or conn.get_execution_options().get("cockpit_read_only"):
                    return
                if statement.lstrip()[:7].upper().startswith(_WRITES):
                    cursor.execute("BEGIN IMMEDIATE")
                    conn.info["cockpit_writing"] = True

            @event.listens_for(engine.sync_engine, "commit")
            @event.listens_for(engine.sync_engine, "rollback")
            def _sqlite_written(conn: Any) -> None:
                conn.info.pop("cockpit_writing", None)

            @event.listens_for(engine.sync_engine.pool, "reset")
            def _sqlite_returned(_dbapi_connection: Any, record: Any, _state: Any = None) -> None:
                record.info.pop("cockpit_writing", None)  # the pool rolled back what was left open

        return engine
    # No JIT compilation: Cockpit's statements are short, and compiling one (70-80 ms measured on an
    # analytics view's aggregate over ~170,000 rollup rows) costs more than it saves.
    connect_args = {"server_settings": {"jit": "off"}}
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args, **kwargs
    )


def dialect_name(session: AsyncSession) -> str:
    """The session's database: "postgresql" or "sqlite" (the default when it has no bind)."""
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Every mapper must be known before the first flush (foreign keys between domains). Imported here,
    # not at the top: the kit sits below every domain, whose models import it (import contract).
    import cockpit.models  # noqa: F401

    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


# Execution options for a session that only reads (see make_engine).
READ_ONLY = {"cockpit_read_only": True}


@asynccontextmanager
async def read_only(session: AsyncSession) -> AsyncIterator[None]:
    """Reads that slow work follows (a password hash): they run in a read-only transaction that ends
    with the block, so that no pool connection, and on SQLite no write lock, is held during that work.
    The next statement begins a new transaction (for the writes). Inside a transaction that has begun
    already, the reads simply join it (and nothing is released). Nothing may be written in the block.
    """
    if session.in_transaction():
        yield
        return
    await session.connection(execution_options=READ_ONLY)
    yield
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("read_only: the block changed objects; it may only read")
    await session.commit()


AfterCommit = Callable[[], Awaitable[None]]


def after_commit(session: AsyncSession | Session, action: AfterCommit) -> None:
    """Run ``action`` once the unit of work has committed (e-mails, webhooks): never on rollback."""
    session.info.setdefault("after_commit", []).append(action)


async def run_after_commit(session: AsyncSession) -> None:
    actions: list[AfterCommit] = session.info.pop("after_commit", [])
    for action in actions:
        await action()


async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One request = one transaction: commit when the handler returns, roll back when it raises."""
    async with factory() as session:
        try:
            yield session
        except BaseException:
            session.info.pop("after_commit", None)
            await session.rollback()
            raise
        else:
            await session.commit()
            await run_after_commit(session)
