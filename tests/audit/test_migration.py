"""Migration 0008 moves each account's audit chain head to ``audit_chain_heads`` and keeps every row."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from cockpit.kit.db import make_engine
from cockpit.kit.migrate import alembic_config, upgrade
from tests.conftest import PG_ADMIN_URL, _in_thread, _pg_admin, _worker

HEAD = "ab" * 32


@pytest.fixture
def empty_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database of the session's backend with no schema yet."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"
        return
    name = f"cockpit_test_migrate_{_worker()}_{os.getpid()}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    _in_thread(asyncio.run, _pg_admin(drop))
    _in_thread(asyncio.run, _pg_admin(f'CREATE DATABASE "{name}"'))
    yield f"{base}/{name}"
    _in_thread(asyncio.run, _pg_admin(drop))


async def _run(url: str, *statements: str, **params: object) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            result = None
            for statement in statements:
                result = await conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result is not None and result.returns_rows else []
    finally:
        await engine.dispose()


def _uuid(url: str, value: uuid.UUID) -> object:
    return value.hex if url.startswith("sqlite") else value


async def test_the_head_moves_to_its_own_table_and_nothing_else_changes(empty_database: str) -> None:
    url = empty_database
    _in_thread(upgrade, url, "0007")
    account = uuid.uuid4()
    await _run(
        url,
        "INSERT INTO accounts (id, created_at, name, timezone, seat_limit_copilot, seat_limit_console,"
        " seat_limit_compute, store_request_content, content_retention_days, credit_factor,"
        " credits_per_cycle, cycle_cadence, signup_credits, audit_seq, audit_head)"
        " VALUES (:account, CURRENT_TIMESTAMP, 'Old Co', 'UTC', 25, 25, 25, false, 30, 0, 0, 'month', 0,"
        " 7, :head)",
        "INSERT INTO login_failures (id, created_at, email, ip, account_id)"
        " VALUES (:failure, CURRENT_TIMESTAMP, 'kept@example.com', '192.0.2.1', :account)",
        # As SQLAlchemy's Uuid type stores them: 32 hex digits on SQLite, native on PostgreSQL.
        account=_uuid(url, account), failure=_uuid(url, uuid.uuid4()), head=HEAD,
    )  # fmt: skip

    _in_thread(upgrade, url, "head")

    heads = await _run(url, "SELECT account_id, seq, head FROM audit_chain_heads")
    assert [(uuid.UUID(str(a)), s, h) for a, s, h in heads] == [(account, 7, HEAD)]
    # The account's other rows are kept (no cascade), and the old columns are gone.
    assert await _run(url, "SELECT email FROM login_failures") == [("kept@example.com",)]
    [account_row] = await _run(url, "SELECT * FROM accounts")
    assert HEAD not in account_row

    _in_thread(command.downgrade, alembic_config(url), "0007")

    assert await _run(url, "SELECT audit_seq, audit_head FROM accounts") == [(7, HEAD)]
    assert await _run(url, "SELECT email FROM login_failures") == [("kept@example.com",)]
