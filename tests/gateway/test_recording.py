"""Recording gateway calls: stored content, the journal-backed recorder, crash recovery, disconnects."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.auth.models import ApiToken
from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.gateway import tokencount
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from cockpit.usage.recorder import Recorder, insert_records, journal_line, purge_expired_content, to_row
from tests.builders import make_account
from tests.gateway.conftest import UPSTREAM_KEY, Org, add_model, client_for, records
from tests.gateway.live import (  # noqa: F401
    LiveServer,
    add_live_model,
    arrange,
    fast_passwords,
    live_db_fixture,
    live_records,
    live_server_fixture,
    live_session_fixture,
    share,
    shared_server,
)
from tests.upstream import Upstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


# --- (a) stored content -------------------------------------------------------------------------


async def store_content(db: AsyncSession, org: Org, days: int = 30) -> None:
    account = await db.get(Account, org.account_id)
    assert account is not None
    account.store_request_content = True
    account.content_retention_days = days
    await db.commit()


async def test_content_is_not_stored_by_default(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.request_content, row.response_content, row.content_expires_at) == (None, None, None)


async def test_content_is_stored_when_enabled(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await store_content(db, org, days=7)
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, temperature=0.5)
    [row] = await records(gateway_app, db, org.account_id)
    assert row.request_content == {"model": "gpt-4o-mini", "messages": HELLO, "temperature": 0.5}
    assert row.response_content == "Hello from upstream."
    assert row.content_expires_at == row.created_at + timedelta(days=7)


async def test_streamed_content_is_stored(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await store_content(db, org)
    await add_model(db, org, "gpt-three", org.openai_provider_id, "gpt-4o-mini-chunks-3")
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(model="gpt-three", messages=HELLO, stream=True)
    assert len([chunk async for chunk in stream]) == 5
    [row] = await records(gateway_app, db, org.account_id)
    assert row.request_content == {"model": "gpt-three", "messages": HELLO, "stream": True}
    assert row.response_content == "tok0 tok1 tok2 "
    assert row.content_expires_at == row.created_at + timedelta(days=30)


async def test_content_of_failed_and_embedding_calls(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await store_content(db, org)
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="gpt-nope", messages=HELLO)
    await client.embeddings.create(model="embed-small", input="hi", encoding_format="float")
    failed, embedding = await records(gateway_app, db, org.account_id)
    assert failed.request_content == {"model": "gpt-nope", "messages": HELLO}
    assert failed.response_content is None
    assert embedding.request_content == {"model": "embed-small", "input": "hi", "encoding_format": "float"}
    assert embedding.response_content == "(embedding vectors)"


async def test_smuggled_credentials_are_not_stored(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await store_content(db, org)
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, extra_body={"api_key": "sk-stolen-0123456789"}
        )
    [row] = await records(gateway_app, db, org.account_id)
    assert row.error_type == "forbidden_parameter"
    assert row.request_content == {"model": "gpt-4o-mini", "messages": HELLO, "api_key": "[redacted]"}
    assert "sk-stolen" not in str(row.request_content) + str(row.error_message)


async def test_purge_expired_content(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await store_content(db, org)
    client = client_for(gateway_app, org.member_token)
    for _ in range(2):
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    old, recent = await records(gateway_app, db, org.account_id)
    await db.execute(
        update(UsageRecord)
        .where(UsageRecord.id == old.id)
        .values(content_expires_at=utcnow() - timedelta(minutes=1))
    )
    await db.commit()

    await purge_expired_content(gateway_app.state.recorder.sessionmaker)

    old, recent = await records(gateway_app, db, org.account_id)
    assert (old.request_content, old.response_content, old.content_expires_at) == (None, None, None)
    assert old.input_tokens == 7
    assert old.cost_usd == Decimal("0.0000675")  # the call itself stays
    assert recent.request_content == {"model": "gpt-4o-mini", "messages": HELLO}
    assert recent.response_content == "Hello from upstream."


# --- (b) the recorder ---------------------------------------------------------------------------


def make_record(account_id: uuid.UUID, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "account_id": str(account_id),
        "created_at": utcnow().isoformat(),
        "user_id": None,
        "group_id": None,
        "project_id": None,
        "agent_id": None,
        "api_token_id": None,
        "model_id": None,
        "model": "gpt-4o-mini",
        "provider_id": None,
        "provider_kind": "openai",
        "operation": "chat",
        "stream": False,
        "status": "success",
        "error_type": None,
        "error_message": None,
        "http_status": 200,
        "latency_ms": 12,
        "ttft_ms": 10,
        "input_tokens": 7,
        "output_tokens": 5,
        "cached_tokens": 0,
        "tokens_estimated": False,
        "cost_usd": "0.0000675",
        "upstream_id": None,
    }
    record.update(fields)
    return record


@pytest.fixture
async def sessionmaker(
    db: AsyncSession, database_url: str
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def account_id(db: AsyncSession) -> uuid.UUID:
    account, _ = await make_account(db, name="Recorder Co")
    return account.id


@pytest.fixture
async def recorder(sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path) -> AsyncIterator[Recorder]:
    rec = Recorder(sessionmaker, tmp_path / "journal", flush_seconds=3600)
    yield rec
    await rec.stop()


async def stored(sessionmaker: async_sessionmaker[AsyncSession], account_id: uuid.UUID) -> list[UsageRecord]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(UsageRecord).where(UsageRecord.account_id == account_id).order_by(UsageRecord.latency_ms)
        )
        return list(rows.all())


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*-*-*.jsonl"))


async def test_record_is_journaled_before_any_flush(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    first, second = make_record(account_id, latency_ms=1), make_record(account_id, latency_ms=2)
    recorder.record(first)
    [segment] = segments(tmp_path / "journal")
    assert segment.name.startswith(f"{os.getpid()}-")
    assert [json.loads(line) for line in segment.read_bytes().splitlines()] == [first]
    recorder.record(second)
    lines = segment.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert len(lines) == 3  # one line per record, newline-terminated
    assert json.loads(lines[1]) == second
    assert await stored(sessionmaker, account_id) == []
    assert recorder.stats.recorded == 2


async def test_flush_writes_rows_and_deletes_the_segment(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    for n in range(3):
        recorder.record(make_record(account_id, latency_ms=n, input_tokens=n))
    [segment] = segments(tmp_path / "journal")
    assert await recorder.flush() == 3
    assert not segment.exists()
    assert segments(tmp_path / "journal") == []
    rows = await stored(sessionmaker, account_id)
    assert [(r.latency_ms, r.input_tokens, r.cost_usd) for r in rows] == [
        (n, n, Decimal("0.0000675")) for n in range(3)
    ]
    assert await recorder.flush() == 0  # nothing waits
    assert recorder.stats.written == 3


async def test_failed_flush_keeps_records_and_segment(
    sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    broken = make_sessionmaker(make_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db"))
    rec = Recorder(broken, tmp_path / "journal", flush_seconds=3600)
    try:
        batch = [make_record(account_id, latency_ms=n) for n in range(4)]
        for record in batch[:3]:
            rec.record(record)
        [segment] = segments(tmp_path / "journal")
        assert await rec.flush() == 0
        assert rec.stats.failed_flushes == 1
        assert rec.stats.last_error == "OperationalError"
        assert segment.exists()
        assert len(segment.read_bytes().splitlines()) == 3
        rec.record(batch[3])  # goes to a new segment; the failed one is sealed
        assert len(segments(tmp_path / "journal")) == 2

        rec.sessionmaker = sessionmaker  # the database is back
        assert await rec.flush() == 4
        assert segments(tmp_path / "journal") == []
        rows = await stored(sessionmaker, account_id)
        assert [str(r.id) for r in rows] == [r["id"] for r in batch]  # each exactly once, in order
        assert await rec.flush() == 0
    finally:
        await rec.stop()


async def test_failed_write_is_retried_once(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = recorder._write

    async def fail(_batch: list[dict[str, Any]]) -> None:
        raise ConnectionError("database down")

    monkeypatch.setattr(recorder, "_write", fail)
    recorder.record(make_record(account_id))
    assert await recorder.flush() == 0
    assert await recorder.flush() == 0
    assert recorder.stats.failed_flushes == 2
    monkeypatch.setattr(recorder, "_write", real_write)
    assert await recorder.flush() == 1
    assert len(await stored(sessionmaker, account_id)) == 1


async def test_recover_replays_a_dead_process_segment(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    batch = [make_record(account_id, latency_ms=n) for n in range(3)]
    torn = journal_line(make_record(account_id, latency_ms=99))[:-20]  # died inside write()
    segment = directory / "123-abcd1234-0.jsonl"
    segment.write_bytes(b"".join(journal_line(r) for r in batch) + torn)

    assert await recorder.recover() == 3
    assert not segment.exists()
    rows = await stored(sessionmaker, account_id)
    assert [str(r.id) for r in rows] == [r["id"] for r in batch]

    # The same segment again (a crash after the insert, before the unlink): nothing is doubled.
    segment.write_bytes(b"".join(journal_line(r) for r in batch) + torn)
    assert await recorder.recover() == 3
    assert len(await stored(sessionmaker, account_id)) == 3
    assert recorder.stats.recovered == 6


async def test_recover_skips_ids_already_written(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    batch = [make_record(account_id, latency_ms=n, input_tokens=n) for n in range(3)]
    async with sessionmaker() as session:
        await insert_records(session, [to_row(batch[1])])
        await session.commit()
    directory = tmp_path / "journal"
    directory.mkdir()
    (directory / "123-abcd1234-0.jsonl").write_bytes(b"".join(journal_line(r) for r in batch))
    await recorder.recover()
    rows = await stored(sessionmaker, account_id)
    assert [(str(r.id), r.input_tokens) for r in rows] == [(r["id"], r["input_tokens"]) for r in batch]


async def test_recover_skips_a_locked_segment(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    segment = directory / "456-0badf00d-0.jsonl"
    segment.write_bytes(journal_line(make_record(account_id)))
    fd = os.open(segment, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live process is writing it
        assert await recorder.recover() == 0
        assert segment.exists()
        assert await stored(sessionmaker, account_id) == []
    finally:
        os.close(fd)  # the process ended
    assert await recorder.recover() == 1
    assert not segment.exists()
    assert len(await stored(sessionmaker, account_id)) == 1


async def test_recover_leaves_own_segment_alone(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    recorder.record(make_record(account_id))
    assert await recorder.recover() == 0
    assert len(segments(tmp_path / "journal")) == 1
    assert await recorder.flush() == 1
    assert len(await stored(sessionmaker, account_id)) == 1


async def test_a_record_of_a_missing_account_is_rejected_alone(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    good = [make_record(account_id, latency_ms=n) for n in range(2)]
    orphan = make_record(uuid.uuid4(), latency_ms=5)
    recorder.record(good[0])
    recorder.record(orphan)
    recorder.record(good[1])
    assert await recorder.flush() == 3  # the batch is done: two written, one set aside
    rows = await stored(sessionmaker, account_id)
    assert [str(r.id) for r in rows] == [r["id"] for r in good]
    rejected = (tmp_path / "journal" / "rejected.jsonl").read_bytes().splitlines()
    assert [json.loads(line) for line in rejected] == [orphan]
    assert recorder.stats.rejected == 1
    assert segments(tmp_path / "journal") == []
    # Nothing waits: the rejected record does not block later flushes.
    recorder.record(make_record(account_id, latency_ms=9))
    assert await recorder.flush() == 1
    assert len(await stored(sessionmaker, account_id)) == 3


async def test_recovery_rejects_a_missing_account_alone(
    recorder: Recorder, sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    good = make_record(account_id)
    orphan = make_record(uuid.uuid4())
    (directory / "789-12345678-3.jsonl").write_bytes(journal_line(orphan) + journal_line(good))
    await recorder.recover()
    assert [str(r.id) for r in await stored(sessionmaker, account_id)] == [good["id"]]
    assert [json.loads(x) for x in (directory / "rejected.jsonl").read_bytes().splitlines()] == [orphan]
    assert segments(directory) == []


async def test_stop_flushes_and_removes_the_journal(
    sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    rec = Recorder(sessionmaker, tmp_path / "journal", flush_seconds=3600)
    rec.record(make_record(account_id))
    rec.record(make_record(account_id))
    await rec.stop()
    assert len(await stored(sessionmaker, account_id)) == 2
    assert segments(tmp_path / "journal") == []


async def test_background_writer_flushes_on_its_own(
    sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    rec = Recorder(sessionmaker, tmp_path / "journal", flush_seconds=0.05)
    try:
        rec.record(make_record(account_id))
        for _ in range(60):  # up to 3 s
            if await stored(sessionmaker, account_id):
                break
            await asyncio.sleep(0.05)
        assert len(await stored(sessionmaker, account_id)) == 1
    finally:
        await rec.stop()


async def test_a_full_batch_wakes_the_writer(
    sessionmaker: Any, account_id: uuid.UUID, tmp_path: Path
) -> None:
    rec = Recorder(sessionmaker, tmp_path / "journal", flush_seconds=3600, batch_size=3)
    try:
        for _ in range(3):
            rec.record(make_record(account_id))
        for _ in range(60):  # up to 3 s
            if not (len(await stored(sessionmaker, account_id)) < 3):
                break
            await asyncio.sleep(0.05)
        assert len(await stored(sessionmaker, account_id)) == 3
    finally:
        await rec.stop()


# --- (c) a crash of the server process ----------------------------------------------------------


async def count_rows(sessionmaker: Any, account_id: uuid.UUID) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(UsageRecord).where(UsageRecord.account_id == account_id)
        )
        return int(count or 0)


async def test_records_survive_a_killed_server(
    live_db: str, live_session: Any, upstream: Upstream, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    calls = 20
    org = await arrange(live_session, upstream, UPSTREAM_KEY)
    await add_live_model(live_session, org, "gpt-4o-mini")
    data_dir = tmp_path / "data"
    server = LiveServer(live_db, data_dir, flush_seconds=3600).start()
    try:
        client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key=org.token, max_retries=0)
        ids = []
        for _ in range(calls):
            answer = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            ids.append(answer.id)
        await client.close()
        server.kill()
    finally:
        server.stop()

    assert await count_rows(live_session, org.account_id) == 0  # nothing was flushed before the kill
    journal = segments(data_dir / "usage-journal")
    assert journal, "the killed server left no journal"
    lines = [json.loads(line) for path in journal for line in path.read_bytes().splitlines()]
    assert len(lines) == calls
    assert sorted(r["upstream_id"] for r in lines) == sorted(ids)

    # A new server on the same data dir and database recovers the journal at start-up (it is then
    # kept as the shared live server of the session: starting one costs seconds).
    again = LiveServer(live_db, data_dir, flush_seconds=0.2).start()
    if shared_server(live_db) is None:
        share(request.config, again)
    else:
        request.addfinalizer(again.stop)
    rows = await live_records(live_session, org.account_id)
    assert len(rows) == calls
    assert sorted(r.upstream_id for r in rows) == sorted(ids)
    assert {(r.input_tokens, r.output_tokens, r.status, r.cost_usd) for r in rows} == {
        (7, 5, "success", Decimal("0.0000675"))
    }
    assert len({r.id for r in rows}) == calls
    assert segments(data_dir / "usage-journal") == []


# --- (d) a client that goes away mid-stream -----------------------------------------------------


async def test_client_disconnect_mid_stream(
    live_server: LiveServer, live_session: Any, upstream: Upstream
) -> None:
    org = await arrange(live_session, upstream, UPSTREAM_KEY)
    name = "gpt-4o-mini-chunks-50-chunkdelay-400"  # 20 s if the stream were read to its end
    await add_live_model(live_session, org, name)
    client = openai.AsyncOpenAI(base_url=live_server.base_url + "/v1", api_key=org.token, max_retries=0)
    try:
        stream = await client.chat.completions.create(model=name, messages=HELLO, stream=True)
        received = []
        async for chunk in stream:
            received.append(chunk)
            if len(received) == 3:  # the role chunk and two content chunks
                break
        await stream.close()
        closed = time.monotonic()
    finally:
        await client.close()
    assert [c.choices[0].delta.content for c in received[1:]] == ["tok0 ", "tok1 "]

    rows: list[Any] = []
    while time.monotonic() - closed < 30 and not rows:
        await asyncio.sleep(0.1)
        rows = await live_records(live_session, org.account_id)
    # Recorded when the client left, not when the upstream would have finished (20 s later).
    assert time.monotonic() - closed < 10, "the disconnect was recorded only when the stream ended"
    [row] = rows
    assert row.status == "client_disconnected"
    assert row.http_status == 499
    assert row.stream is True
    assert row.tokens_estimated is True
    # The text relayed before the disconnect was noticed: at least the two chunks read, not all 50.
    possible = {
        tokencount.count_text("".join(f"tok{i} " for i in range(k)), model=name) for k in range(2, 50)
    }
    assert row.output_tokens in possible
    body = {"model": name, "messages": HELLO, "stream": True}
    assert row.input_tokens == tokencount.count_input(body, model=name, operation="chat")
    assert row.cost_usd == (row.input_tokens * Decimal("2.50") + row.output_tokens * Decimal(10)) / Decimal(
        1_000_000
    )
    assert row.error_type is None


async def test_a_tokens_calls_set_its_last_used_at_at_most_once_a_minute(
    recorder: Recorder, sessionmaker: Any, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Touch Co")
    token, _ = await issue_token(db, Actor.system(account.id, "tests"), owner, name="ci", scopes=["gateway"])
    await db.commit()
    start = utcnow().replace(microsecond=0)

    async def used_at(*seconds: int) -> datetime | None:
        for s in seconds:
            when = (start + timedelta(seconds=s)).isoformat()
            recorder.record(make_record(account.id, api_token_id=str(token.id), created_at=when))
        await recorder.flush()
        async with sessionmaker() as session:
            return await session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token.id))

    assert await used_at(0, 5) == start + timedelta(seconds=5)  # the latest call of a batch
    assert await used_at(30) == start + timedelta(seconds=5)  # within the minute: no write
    assert await used_at(70) == start + timedelta(seconds=70)
