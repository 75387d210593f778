"""Recording gateway calls: durable at once, written to the database in batches, off the hot path.

How a call's record travels (see docs/usage-recording.md):

1. When a call finishes, ``Recorder.record`` appends the record as one JSON line to the process's
   journal segment (``<data_dir>/usage-journal/<pid>-<n>.jsonl``) with a single ``write`` system
   call. From then on the record survives a crash of the process (the kernel holds the data); the
   segment is also fsynced at every flush so that it survives a crash of the machine within one
   flush interval. The record is also kept in memory.
2. A background task writes the records in memory to the database in one transaction, at least
   every ``usage_flush_seconds`` or as soon as ``usage_batch_size`` records wait. Before writing,
   it starts a new segment; once the transaction commits, the old segments are deleted.
   If the database is unavailable, the records stay in memory and their segments on disk; the
   next flush retries them.
3. At start-up (and with ``cockpit usage recover``), segments left behind by a process that died
   are replayed: every complete line is inserted, ignoring records that were already written
   (same id), and the segment is deleted. A segment is locked (``flock``) by the process writing
   it, so a running process's segment is never taken.

A crash can lose only calls that had not finished (their record was not written yet); a record
that was only half written (the process died inside ``write``) is a call that had not finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from sqlalchemy import String, Table, insert, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from cockpit.auth import tokens
from cockpit.credits.usage import debit_usage
from cockpit.kit.bulk import insert_unnest
from cockpit.kit.db import dialect_name
from cockpit.kit.text import storable, storable_json
from cockpit.kit.time import utcnow
from cockpit.usage.models import UsageRecord
from cockpit.usage.writers import WriterProcess, WriterThread

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("cockpit.usage")

_UUID_FIELDS = (
    "id",
    "account_id",
    "user_id",
    "group_id",
    "project_id",
    "api_token_id",
    "model_id",
    "provider_id",
    "credit_lease_id",
)
_TIME_FIELDS = ("created_at", "content_expires_at")
# A token's last-used time is written at most this often.
TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)
# Rows prepared at a time when writing a batch (see Recorder._write).
WRITE_SLICE = 64
BACKLOG_ROWS = 1024
# A backlog (after an outage, or a writer behind a load) is written in transactions of at most this
# many records and this many bytes of journal lines: each a bounded message and transaction, few
# enough that the writer catches up (on SQLite every transaction waits for the write lock).
BACKLOG_CHUNK = 20_000
BACKLOG_BYTES = 64 * 2**20
# Expired stored content is cleared this often.


def journal_line(record: dict[str, Any]) -> bytes:
    """One record as a journal line: JSON with ids, times and decimals as strings."""
    return json.dumps(record, separators=(",", ":"), default=_plain).encode() + b"\n"


def _plain(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot go into the usage journal")


# Text columns whose values come from callers or upstreams: made storable (kit.text) before writing,
# so that a record can always be written, whatever its call contained.
_TEXT_FIELDS = ("model", "agent_id", "tool", "error_type", "error_message", "upstream_id", "response_content")


def to_row(record: dict[str, Any]) -> dict[str, Any]:
    """A journal record as column values, every text made storable (NUL and lone surrogates
    replaced), also for records journaled before that was done."""
    row = dict(record)
    for name in _TEXT_FIELDS:
        value = row.get(name)
        if isinstance(value, str):
            row[name] = storable(value)
    for name, length in _LENGTHS.items():  # never longer than its column (a record is never refused for it)
        value = row.get(name)
        if isinstance(value, str) and len(value) > length:
            row[name] = value[:length]
    content = row.get("request_content")
    if content is not None:
        row["request_content"] = storable_json(content)
    for name in _UUID_FIELDS:
        value = row.get(name)
        if isinstance(value, str):
            row[name] = uuid.UUID(value)
    for name in _TIME_FIELDS:
        value = row.get(name)
        if isinstance(value, str):
            row[name] = datetime.fromisoformat(value)
    cost = row.get("cost_usd")
    if not isinstance(cost, Decimal):
        row["cost_usd"] = Decimal(str(cost or 0))
    return row


_TABLE = cast(Table, UsageRecord.__table__)
_COLUMNS = tuple(c.name for c in _TABLE.columns)
_LENGTHS = {c.name: c.type.length for c in _TABLE.columns if isinstance(c.type, String) and c.type.length}
# Values for columns a record leaves out (e.g. one journaled by an older version).
_DEFAULTS = {
    c.name: c.default.arg for c in _TABLE.columns if isinstance(c.default, ScalarElementColumnDefault)
}


async def insert_records(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert records, skipping ids that are already there (a replayed journal).

    On PostgreSQL one ``INSERT … SELECT * FROM unnest(…)`` (kit.bulk). On SQLite multi-row
    ``INSERT … VALUES (…), (…)`` statements rather than a driver ``executemany``: the SQLite driver
    runs in a thread that must take the GIL back for every row of an executemany, and behind a busy
    event loop each of those waits (measured: about 1 ms per row under load).
    The Core table, not the ORM entity: the ORM's bulk path costs several times more per row."""
    if not rows:
        return
    dialect = dialect_name(session)
    if dialect == "postgresql":
        # One statement for the whole batch (kit.bulk): one round trip, prepared once.
        await insert_unnest(session, _TABLE, rows, defaults=_DEFAULTS, on_conflict_do_nothing=("id",))
        return
    stmt: Any
    if dialect == "sqlite":
        stmt = sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["id"])
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        stmt = insert(_TABLE)
    # RETURNING makes SQLAlchemy batch the rows into multi-row statements ("insertmanyvalues")
    # from one cached compilation, instead of handing the driver a row-by-row executemany.
    stmt = stmt.returning(_TABLE.c.id)
    values = [{name: row.get(name, _DEFAULTS.get(name)) for name in _COLUMNS} for row in rows]
    await session.execute(stmt, values)


class BatchWriter:
    """Writes a batch of records in one transaction: their rows, their usage debits and their tokens'
    last use. Used in the writer process, the writer thread or on the caller's loop (writers.py)."""

    def __init__(self) -> None:
        self._token_touched: dict[uuid.UUID, datetime] = {}

    async def write(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        batch: list[dict[str, Any]],
        *,
        sliced: bool = False,
    ) -> None:
        """One transaction. ``sliced`` (on the gateway's own event loop) goes in slices, yielding
        between them: preparing rows is Python work, and short stretches of it do not hold up gateway
        calls. A batch that has grown under a sustained load is then written in one go (each slice
        would queue behind the calls being served, and the writer would fall behind)."""
        size = WRITE_SLICE if sliced and len(batch) <= BACKLOG_ROWS else len(batch)
        async with sessionmaker() as session:
            for start in range(0, len(batch), size):
                await insert_records(session, [to_row(r) for r in batch[start : start + size]])
                if sliced:
                    await asyncio.sleep(0)
            await debit_usage(session, batch)
            await self._touch_tokens(session, batch)
            await session.commit()

    async def _touch_tokens(self, session: AsyncSession, batch: Iterable[dict[str, Any]]) -> None:
        latest: dict[uuid.UUID, datetime] = {}
        for record in batch:
            token_id = record.get("api_token_id")
            if token_id:
                key = uuid.UUID(str(token_id))
                created = record["created_at"]
                when = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
                if key not in latest or when > latest[key]:
                    latest[key] = when
        touches = []
        for token_id, when in latest.items():
            previous = self._token_touched.get(token_id)
            if previous is not None and when - previous < TOKEN_TOUCH_INTERVAL:
                continue
            self._token_touched[token_id] = when
            touches.append({"token_id": token_id, "when": when})
        if touches:
            await tokens.mark_used(session, touches)


@dataclass
class _Segment:
    path: Path
    fd: int
    bytes: int = 0


@dataclass
class RecorderStats:
    recorded: int = 0
    written: int = 0
    failed_flushes: int = 0
    recovered: int = 0
    rejected: int = 0
    last_error: str | None = None
    pending: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Recorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        directory: Path,
        *,
        flush_seconds: float = 0.25,
        batch_size: int = 1000,
        writer_url: str | None = None,
        writer: str = "process",
    ) -> None:
        self.sessionmaker = sessionmaker
        # With a database URL, batches are written by a process of their own, or a thread (writers.py);
        # without, on the caller's event loop.
        self._process = WriterProcess(writer_url) if writer_url and writer == "process" else None
        self._thread = WriterThread(writer_url) if writer_url else None
        self._batches = BatchWriter()
        self.directory = directory
        self.flush_seconds = flush_seconds
        self.batch_size = batch_size
        self.stop_grace_seconds = 10.0
        self.stats = RecorderStats()
        # The records waiting: their journal lines for the writer process (which reads those), else
        # the records themselves (kept once in memory, not twice).
        self._pending: list[dict[str, Any] | bytes] = []
        self._sealed: list[_Segment] = []  # rotated segments whose records are not in the database yet
        self._segment: _Segment | None = None
        self._counter = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._closed = False
        self._recovery_due = False  # a journal left by a dead process waits to be replayed

    # ---- the hot path ----

    def record(self, record: dict[str, Any]) -> None:
        """Make a finished call's record durable and queue it for the database. Never blocks on it."""
        line = journal_line(record)
        segment = self._segment or self._open_segment()
        _write_all(segment.fd, line)
        segment.bytes += len(line)
        self._pending.append(line if self._process is not None else record)
        self.stats.recorded += 1
        if self._task is None and not self._closed:
            self._start_task()
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    # ---- segments ----

    def _open_segment(self) -> _Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}-{next(self._counter)}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._segment = _Segment(path, fd)
        return self._segment

    def _seal(self) -> None:
        """Close the current segment for writing; later records go to a new one."""
        if self._segment is not None and self._segment.bytes:
            self._sealed.append(self._segment)
            self._segment = None

    def _sync_segments(self) -> None:
        for segment in [*self._sealed, *([self._segment] if self._segment else [])]:
            with contextlib.suppress(OSError):
                os.fsync(segment.fd)

    def _drop_sealed(self) -> None:
        for segment in self._sealed:
            with contextlib.suppress(OSError):
                segment.path.unlink()
            with contextlib.suppress(OSError):
                os.close(segment.fd)
        self._sealed.clear()

    # ---- the background writer ----

    def _start_task(self) -> None:
        try:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cockpit-usage-recorder")
        except RuntimeError:  # no running loop (a synchronous caller): flushed by stop()
            self._task = None

    async def start(self) -> None:
        """Replay what a crashed process left behind, then start the background writer."""
        self._closed = False
        await self.recover()
        if self._task is None:
            self._start_task()

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return  # stop() writes what waits
            try:
                await self.flush()
                await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the writer die; the records wait for the next round
                log.exception("usage recorder round failed")

    async def flush(self) -> int:
        """Write the waiting records to the database; returns how many were written."""
        async with self._flush_lock:
            if not self._pending:
                return 0
            batch, self._pending = self._pending, []
            self._seal()
            written = 0
            try:
                await asyncio.to_thread(self._sync_segments)
                # A backlog (after an outage) goes in transactions of at most BACKLOG_CHUNK records.
                for chunk in _chunks(batch):
                    await self._write_batch(chunk)
                    written += len(chunk)
            except BaseException as exc:  # also when cancelled: what was not written waits
                self._pending[:0] = batch[written:]  # keep order; their segments stay on disk
                self.stats.written += written
                if not isinstance(exc, Exception):
                    raise
                self.stats.failed_flushes += 1
                self.stats.last_error = type(exc).__name__
                log.warning(
                    "usage records not written yet (%s); %d waiting", type(exc).__name__, len(self._pending)
                )
                return written
            self._drop_sealed()
            self.stats.written += written
            return written

    async def _write_batch(self, batch: Sequence[dict[str, Any] | bytes]) -> None:
        """Write a batch (records, or their journal lines) in one transaction; if a record of it
        cannot be written, write the others one by one and set that one aside. Raises only when the
        database cannot be used just now (then every record waits for the next round)."""
        try:
            await self._write(batch)
        except Exception as exc:
            if unavailable(exc):
                raise
            log.warning("a batch of usage records failed (%s); writing them one by one", type(exc).__name__)
            await self._write_one_by_one(_records(batch))

    async def _write(self, batch: Sequence[dict[str, Any] | bytes]) -> None:
        if self._process is not None and not self._process.given_up:
            lines = [item if isinstance(item, bytes) else journal_line(item) for item in batch]
            await self._process.write(lines)
        elif self._thread is not None:
            records = _records(batch)
            await self._thread.run(lambda sessionmaker: self._batches.write(sessionmaker, records))
        else:
            await self._batches.write(self.sessionmaker, _records(batch), sliced=True)

    async def _write_one_by_one(self, batch: list[dict[str, Any]]) -> None:
        """Write the rows that can be written; a record that cannot (its account was deleted
        meanwhile, or anything else about the record itself) is set aside in ``rejected.jsonl``
        instead of blocking all the others. The database being unavailable is not the record's
        fault: that raises, and the whole batch waits."""
        rejected: list[dict[str, Any]] = []
        async with self.sessionmaker() as session:
            for record in batch:
                try:
                    async with session.begin_nested():
                        await insert_records(session, [to_row(record)])
                        await debit_usage(session, [record])
                except Exception as exc:
                    if unavailable(exc):
                        raise
                    log.error("usage record %s cannot be written: %s", record.get("id"), type(exc).__name__)
                    rejected.append(record)
            await session.commit()
        if rejected:
            self.stats.rejected += len(rejected)
            log.error("%d usage records cannot be written; kept in rejected.jsonl", len(rejected))
            with (self.directory / "rejected.jsonl").open("ab") as handle:
                for record in rejected:
                    handle.write(journal_line(record))

    async def _housekeeping(self) -> None:
        if self._recovery_due:
            await self.recover()

    async def stop(self) -> None:
        """Write everything that waits and stop the background writer."""
        self._closed = True
        # A flush in progress finishes, then what waits is written, within the grace period; if the
        # database hangs longer, the flush is cancelled: its records go back to waiting, and stay in
        # the journal, which the next start replays. Shutdown does not wait for the database longer.
        task, self._task = self._task, None
        try:
            async with asyncio.timeout(self.stop_grace_seconds):
                if task is not None:
                    self._wake.set()
                    await asyncio.wait([task])
                await self.flush()
        except TimeoutError:
            log.error("usage records not written at stop (the database hangs): kept in the journal")
        finally:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._process is not None:
            await self._process.stop()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.stop)
        if not self._pending:
            self._seal()
            self._drop_sealed()
            if self._segment is not None:
                with contextlib.suppress(OSError):
                    self._segment.path.unlink()
                    os.close(self._segment.fd)
                self._segment = None

    # ---- recovery ----

    async def recover(self) -> int:
        """Insert the records of segments no live process holds; returns how many were new or old.

        Never raises: a segment that cannot be replayed now (the database is unavailable) stays on
        disk and is tried again by the background writer; a record that can never be written is
        set aside. Start-up must not depend on what a journal contains."""
        if not self.directory.exists():
            return 0
        own = {s.path for s in self._sealed} | ({self._segment.path} if self._segment else set())
        total = 0
        self._recovery_due = False
        for path in sorted(self.directory.glob("*-*-*.jsonl")):
            if path in own:
                continue
            try:
                total += await self._replay(path)
            except Exception as exc:
                self._recovery_due = True
                log.warning("usage journal %s not replayed yet (%s)", path.name, type(exc).__name__)
        self.stats.recovered += total
        return total

    async def _replay(self, path: Path) -> int:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return 0
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return 0  # a live process is writing it
            records = list(read_segment(path))
            for start in range(0, len(records), 1000):
                await self._write_batch(records[start : start + 1000])
            os.unlink(path)
            if records:
                log.info("recovered %d usage records from %s", len(records), path.name)
            return len(records)
        finally:
            os.close(fd)


def _chunks(batch: list[dict[str, Any] | bytes]) -> Iterable[list[dict[str, Any] | bytes]]:
    """A batch in parts of at most BACKLOG_CHUNK records and (journal lines) BACKLOG_BYTES."""
    start, size = 0, 0
    for index, item in enumerate(batch):
        size += len(item) if isinstance(item, bytes) else 0
        if index > start and (index - start >= BACKLOG_CHUNK or size > BACKLOG_BYTES):
            yield batch[start:index]
            start, size = index, len(item) if isinstance(item, bytes) else 0
    if start < len(batch):
        yield batch[start:]


def _records(batch: Sequence[dict[str, Any] | bytes]) -> list[dict[str, Any]]:
    return [json.loads(item) if isinstance(item, bytes) else item for item in batch]


def unavailable(exc: BaseException) -> bool:
    """Whether a write failed because the database cannot be used just now (down, unreachable, its
    connection lost, locked), as opposed to something about the rows themselves."""
    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        # PostgreSQL says why (SQLSTATE): only a data exception (22) or a violated constraint (23) is
        # about the rows; a read-only server after a failover, too many connections, a lock or
        # statement timeout, a shutdown, a missing database or role, a deadlock are not.
        state = getattr(exc.orig, "sqlstate", None)
        if isinstance(state, str) and len(state) == 5:
            return state[:2] not in ("22", "23")
    return isinstance(exc, OSError) and not isinstance(exc, UnicodeError)


def read_segment(path: Path) -> Iterable[dict[str, Any]]:
    """The complete records of a segment; a torn last line (a crash inside write) is skipped."""
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
            except ValueError:
                log.warning("skipping a malformed usage journal line in %s", path.name)
                continue
            if isinstance(record, dict):
                yield record


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


async def purge_expired_content(
    sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime | None = None
) -> None:
    """Clear stored inputs and outputs whose retention period ended (run hourly by the job queue,
    usage/tasks.py)."""
    async with sessionmaker() as session:
        await session.execute(
            update(UsageRecord)
            .where(
                UsageRecord.content_expires_at.is_not(None),
                UsageRecord.content_expires_at < (now or utcnow()),
            )
            .values(request_content=None, response_content=None, content_expires_at=None)
        )
        await session.commit()
