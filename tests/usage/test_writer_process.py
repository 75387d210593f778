"""The usage writer process: batches written outside the gateway's process, nothing lost when it dies."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.usage.recorder import Recorder
from cockpit.usage.writers import WriterProcess
from tests.builders import make_account
from tests.gateway.test_recording import make_record, segments, stored


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def account_id(db: AsyncSession) -> uuid.UUID:
    account, _ = await make_account(db, name="Writer Co")
    return account.id


@pytest.fixture
async def recorder(
    sessionmaker: async_sessionmaker[AsyncSession], database_url: str, tmp_path: Path
) -> AsyncIterator[Recorder]:
    rec = Recorder(sessionmaker, tmp_path / "journal", flush_seconds=3600, writer_url=database_url)
    yield rec
    await rec.stop()


def writer_of(recorder: Recorder) -> WriterProcess:
    process = recorder._process
    assert process is not None
    return process


async def kill(recorder: Recorder) -> int:
    """Kill the writer process (SIGKILL) and wait until the recorder's side has seen it end."""
    process = writer_of(recorder)._process
    assert process is not None
    process.kill()
    await process.wait()
    return process.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_batches_are_written_by_a_process_of_their_own(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    batch = [
        make_record(account_id, latency_ms=1, input_tokens=3),
        make_record(account_id, latency_ms=2, model="x\ud800y\x00z"),  # a caller's hostile model name
        make_record(account_id, latency_ms=3, cost_usd="0.000000000001"),
    ]
    for record in batch:
        recorder.record(record)
    # They wait once in memory, as the journal lines the writer process reads.
    assert [json.loads(item) for item in recorder._pending if isinstance(item, bytes)] == batch
    assert await recorder.flush() == 3
    pid = writer_of(recorder).pid
    assert pid is not None
    assert pid != os.getpid()
    assert alive(pid)
    rows = await stored(sessionmaker, account_id)
    assert [str(r.id) for r in rows] == [r["id"] for r in batch]
    assert rows[0].input_tokens == 3
    assert rows[1].model == "x\ufffdy\ufffdz"
    assert rows[2].cost_usd == Decimal("0.000000000001")
    assert segments(tmp_path / "journal") == []

    # The same process writes the next batch; stopping the recorder stops it.
    recorder.record(make_record(account_id, latency_ms=4))
    assert await recorder.flush() == 1
    assert writer_of(recorder).pid == pid
    await recorder.stop()  # closes its input and waits for it to exit
    assert not alive(pid)


async def test_a_killed_writer_process_loses_nothing(
    recorder: Recorder,
    sessionmaker: Any,
    account_id: uuid.UUID,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder.record(make_record(account_id, latency_ms=0))
    assert await recorder.flush() == 1
    pid = await kill(recorder)  # between two batches: the next one starts a new writer
    recorder.record(make_record(account_id, latency_ms=1))
    assert await recorder.flush() == 1
    second = writer_of(recorder).pid
    assert second not in (None, pid)

    # A writer that dies holding a batch (it read it, then exited without an answer): the records
    # wait in memory and in the journal, and the next round writes them, once.
    real = WriterProcess.command
    monkeypatch.setattr(
        WriterProcess, "command", (sys.executable, "-c", "import sys; sys.stdin.buffer.read(8); sys.exit(9)")
    )
    assert second is not None
    await kill(recorder)
    for n in (2, 3):
        recorder.record(make_record(account_id, latency_ms=n))
    assert await recorder.flush() == 0
    assert recorder.stats.failed_flushes == 1
    assert len(segments(tmp_path / "journal")) == 1
    monkeypatch.setattr(WriterProcess, "command", real)
    assert await recorder.flush() == 2
    rows = await stored(sessionmaker, account_id)
    assert [r.latency_ms for r in rows] == [0, 1, 2, 3]
    assert segments(tmp_path / "journal") == []


async def test_a_record_the_writer_process_cannot_write_is_set_aside_alone(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    good = [make_record(account_id, latency_ms=n) for n in range(2)]
    orphan = make_record(uuid.uuid4(), latency_ms=5)  # its account does not exist
    for record in (good[0], orphan, good[1]):
        recorder.record(record)
    assert await recorder.flush() == 3
    assert [str(r.id) for r in await stored(sessionmaker, account_id)] == [r["id"] for r in good]
    rejected = (tmp_path / "journal" / "rejected.jsonl").read_bytes().splitlines()
    assert [json.loads(line) for line in rejected] == [orphan]
    assert recorder.stats.rejected == 1


async def test_a_writer_process_that_keeps_dying_is_replaced_by_a_thread(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WriterProcess, "command", (sys.executable, "-c", "import sys; sys.exit(3)"))
    record = make_record(account_id)
    recorder.record(record)
    for _ in range(3):
        assert await recorder.flush() == 0
    assert writer_of(recorder).given_up
    assert await recorder.flush() == 1  # from the gateway's thread now
    assert [str(r.id) for r in await stored(sessionmaker, account_id)] == [record["id"]]


async def test_stopping_during_a_write_that_hangs_loses_nothing(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    """The server stops while a batch is being written and the database does not answer within the
    grace period: the stop does not wait longer, and the batch stays in the journal (it used to be
    dropped with it), which the next start writes."""
    hung = asyncio.Event()

    async def hangs(_batch: Any) -> None:
        hung.set()
        await asyncio.Event().wait()  # the database never answers

    recorder._write = hangs  # type: ignore[method-assign]
    recorder.stop_grace_seconds = 0.3
    batch = [make_record(account_id, latency_ms=n) for n in range(3)]
    for record in batch:
        recorder.record(record)
    recorder._wake.set()
    await asyncio.wait_for(hung.wait(), 10)
    await asyncio.wait_for(recorder.stop(), 60)  # it does not wait for the database that hangs
    assert await stored(sessionmaker, account_id) == []
    journal = segments(tmp_path / "journal")
    assert [json.loads(line) for path in journal for line in path.read_bytes().splitlines()] == batch

    for segment in recorder._sealed:  # what the process's exit does
        os.close(segment.fd)
    recorder._sealed.clear()
    again = Recorder(sessionmaker, tmp_path / "journal", flush_seconds=3600)
    assert await again.recover() == 3
    assert [str(r.id) for r in await stored(sessionmaker, account_id)] == [r["id"] for r in batch]
    assert segments(tmp_path / "journal") == []
    await again.stop()


async def test_stopping_lets_a_write_in_progress_finish(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    """A write that takes a moment is not cut short by the stop (it was cancelled, and its batch lost)."""
    real_write = recorder._write
    started = asyncio.Event()

    async def slow(batch: Any) -> None:
        started.set()
        await asyncio.sleep(0.5)
        await real_write(batch)

    recorder._write = slow  # type: ignore[method-assign]
    batch = [make_record(account_id, latency_ms=n) for n in range(3)]
    for record in batch:
        recorder.record(record)
    recorder._wake.set()
    await asyncio.wait_for(started.wait(), 10)
    await recorder.stop()
    assert [str(r.id) for r in await stored(sessionmaker, account_id)] == [r["id"] for r in batch]
    assert segments(tmp_path / "journal") == []


async def test_a_writer_process_that_does_not_answer_is_replaced(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = "import sys, time; sys.stdin.buffer.read(8); time.sleep(60)"
    monkeypatch.setattr(WriterProcess, "command", (sys.executable, "-c", silent))
    monkeypatch.setattr(WriterProcess, "answer_seconds", 0.5)
    record = make_record(account_id)
    recorder.record(record)
    assert await recorder.flush() == 0
    assert writer_of(recorder).pid is None  # stopped: a late answer cannot be taken for another batch
    monkeypatch.undo()
    assert await recorder.flush() == 1
    assert [str(r.id) for r in await stored(sessionmaker, account_id)] == [record["id"]]


async def test_texts_longer_than_their_columns_are_cut_not_refused(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    long = make_record(account_id, agent_id="a" * 150, error_message="e" * 600, model="m" * 300)
    listed = [
        make_record(account_id, latency_ms=1, request_content=[1, 2]),
        make_record(account_id, latency_ms=2, request_content=[{"k": 0}]),
        make_record(account_id, latency_ms=3, request_content={"messages": [[1], []]}),
    ]
    for record in (long, *listed):
        recorder.record(record)
    assert await recorder.flush() == 4
    rows = {str(r.id): r for r in await stored(sessionmaker, account_id)}
    cut = rows[long["id"]]
    assert (len(cut.agent_id or ""), len(cut.error_message or ""), len(cut.model)) == (100, 500, 200)
    assert [rows[r["id"]].request_content for r in listed] == [[1, 2], [{"k": 0}], {"messages": [[1], []]}]
    assert not (tmp_path / "journal" / "rejected.jsonl").exists()


@pytest.mark.parametrize(
    ("state", "waits"),
    [
        ("25006", True),  # read-only server (after a failover)
        ("53300", True),  # too many connections
        ("55P03", True),  # lock timeout
        ("57014", True),  # statement cancelled / timeout
        ("57P01", True),  # administrator shutdown
        ("3D000", True),  # the database does not exist
        ("28P01", True),  # authentication failed
        ("40P01", True),  # deadlock
        ("42703", True),  # an unknown column (a migration not applied): not the record's fault
        ("23503", False),  # a foreign key: the record's account is gone
        ("23505", False),
        ("22021", False),  # a character the server refuses
        ("22003", False),  # a number out of range
    ],
)
def test_why_a_write_failed_is_read_from_the_sqlstate(state: str, waits: bool) -> None:
    from sqlalchemy.exc import DBAPIError

    from cockpit.usage.recorder import unavailable

    class DriverError(Exception):
        sqlstate = state

    assert unavailable(DBAPIError("INSERT …", {}, DriverError("x"))) is waits


async def test_a_backlog_is_written_in_bounded_transactions_and_a_failed_part_waits(
    recorder: Recorder,
    sessionmaker: Any,
    account_id: uuid.UUID,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from cockpit.usage import recorder as recorder_module

    monkeypatch.setattr(recorder_module, "BACKLOG_CHUNK", 2)
    real_write = recorder._write
    sizes: list[int] = []

    async def second_fails(batch: Any) -> None:
        sizes.append(len(batch))
        if len(sizes) == 2:
            raise ConnectionError("the database went away")
        await real_write(batch)

    recorder._write = second_fails  # type: ignore[method-assign]
    batch = [make_record(account_id, latency_ms=n) for n in range(5)]
    for record in batch:
        recorder.record(record)
    assert await recorder.flush() == 2  # the first part; the rest waits, in order, with its journal
    assert sizes == [2, 2]
    assert len(recorder._pending) == 3
    assert segments(tmp_path / "journal")
    assert await recorder.flush() == 3
    assert sizes == [2, 2, 2, 1]
    assert [str(r.id) for r in await stored(sessionmaker, account_id)] == [r["id"] for r in batch]
    assert segments(tmp_path / "journal") == []
