"""Cycles roll over on time by themselves: ``roll_over_due`` (run by the job queue) and ``cockpit worker``."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.credits import scheduler
from cockpit.credits.cycles import current_cycle, period_start
from cockpit.credits.models import Cadence, CreditCycle, CycleStart, EntryKind, LedgerEntry
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from tests import launcher
from tests.builders import make_account
from tests.conftest import TEST_SECRET


@pytest.fixture
async def sessions(database_url: str, db: AsyncSession) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions as the scheduler gets them in production (its own engine; writers queue on SQLite)."""
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _account_with_cycle(
    db: AsyncSession, cadence: Cadence, *, started_ago: timedelta, name: str = "Acme"
) -> tuple[Account, CreditCycle]:
    """An account whose first cycle was opened ``started_ago`` (nothing happened since)."""
    account, _ = await make_account(db, name=name)
    account.cycle_cadence = cadence.value
    account.credits_per_cycle = 1000
    await db.commit()
    cycle = await current_cycle(db, account, now=utcnow() - started_ago)
    await db.commit()
    return account, cycle


async def _cycles(db: AsyncSession, account_id: uuid.UUID) -> list[CreditCycle]:
    await db.commit()  # a fresh read: see what the scheduler committed (keeps loaded objects)
    rows = await db.scalars(
        select(CreditCycle)
        .where(CreditCycle.account_id == account_id)
        .order_by(CreditCycle.seq)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def test_an_ended_cycle_rolls_over_to_the_next_one_from_its_end(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # A daily cycle opened yesterday ended at today's midnight.
    account, old = await _account_with_cycle(db, Cadence.day, started_ago=timedelta(days=1))
    assert old.ends_at <= utcnow()

    assert await scheduler.roll_over_due(sessions) == 1

    first, second = await _cycles(db, account.id)
    assert (first.seq, second.seq) == (old.seq, old.seq + 1)
    assert first.closed_at == old.ends_at
    assert first.ends_at == old.ends_at  # it ran its full length
    assert second.started_by == CycleStart.scheduled.value
    assert second.starts_at == old.ends_at
    assert second.ends_at == old.ends_at + timedelta(days=1)
    assert second.closed_at is None
    assert second.credits_per_cycle == 1000
    # The new cycle's opening entry is in the ledger (the account's statement shows it).
    start = await db.scalar(
        select(LedgerEntry).where(
            LedgerEntry.cycle_id == second.id, LedgerEntry.kind == EntryKind.cycle_reset
        )
    )
    assert start is not None
    assert start.amount == 1000
    # Nothing is due any more.
    assert await scheduler.roll_over_due(sessions) == 0
    assert len(await _cycles(db, account.id)) == 2


async def test_after_several_missed_boundaries_the_new_cycle_is_the_one_containing_now(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The server was down for five days: four daily boundaries passed without anyone looking.
    account, old = await _account_with_cycle(db, Cadence.day, started_ago=timedelta(days=5))

    assert await scheduler.roll_over_due(sessions) == 1

    cycles = await _cycles(db, account.id)
    # One new cycle (the days in between had no activity), not one per missed day.
    assert [c.seq for c in cycles] == [old.seq, old.seq + 1]
    new = cycles[1]
    now = utcnow()
    assert new.starts_at == period_start(Cadence.day, now, ZoneInfo(account.timezone or "UTC"))
    assert new.starts_at <= now < new.ends_at
    assert new.ends_at - new.starts_at == timedelta(days=1)
    assert new.started_by == CycleStart.scheduled.value
    assert cycles[0].closed_at == new.starts_at


async def test_accounts_whose_cycle_has_not_ended_are_left_alone(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    running, current = await _account_with_cycle(db, Cadence.month, started_ago=timedelta(0), name="Running")
    due, _ = await _account_with_cycle(db, Cadence.hour, started_ago=timedelta(hours=3), name="Due")
    never, _ = await make_account(db, name="No cycle yet")

    assert await scheduler.roll_over_due(sessions) == 1

    [untouched] = await _cycles(db, running.id)
    assert (untouched.id, untouched.seq, untouched.ends_at, untouched.closed_at) == (
        current.id,
        current.seq,
        current.ends_at,
        None,
    )
    assert [c.seq for c in await _cycles(db, due.id)] == [1, 2]
    assert await _cycles(db, never.id) == []  # the first cycle opens on first use, not here


async def test_concurrent_passes_roll_each_account_over_once(
    db: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    accounts = [
        (await _account_with_cycle(db, Cadence.hour, started_ago=timedelta(hours=2), name=f"A{i}"))[0]
        for i in range(4)
    ]

    # Two schedulers (a server and a worker, say) and a request needing the cycle, all at once.
    async def request_path() -> int:
        async with sessions() as session, session.begin():
            account = await session.get(Account, accounts[0].id)
            assert account is not None
            await current_cycle(session, account)
        return 0

    results = await asyncio.gather(
        scheduler.roll_over_due(sessions), scheduler.roll_over_due(sessions), request_path()
    )

    assert sum(results) <= len(accounts)
    assert sum(results) >= len(accounts) - 1  # the request may have rolled the first one
    for account in accounts:
        cycles = await _cycles(db, account.id)
        assert [c.seq for c in cycles] == [1, 2]
        assert [c.closed_at is None for c in cycles] == [False, True]
    total = await db.scalar(select(func.count()).select_from(CreditCycle))
    assert total == 2 * len(accounts)


async def test_cockpit_worker_rolls_cycles_over_and_stops_on_sigterm(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    account, _ = await _account_with_cycle(db, Cadence.hour, started_ago=timedelta(hours=2))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}
    env.update(
        COCKPIT_DATABASE_URL=database_url,
        COCKPIT_DATA_DIR=str(tmp_path),
        COCKPIT_SECRET_KEY=TEST_SECRET,
        COCKPIT_ENV="test",
    )
    out, err = tmp_path / "worker.out", tmp_path / "worker.err"
    process = launcher.start(["worker", "--interval", "0.2"], env=env, output=out, errors=err)
    try:
        for _ in range(150):
            await asyncio.sleep(0.1)
            if len(await _cycles(db, account.id)) == 2 or process.poll() is not None:
                break
        assert process.poll() is None, process.errors.read_text()
        assert [c.seq for c in await _cycles(db, account.id)] == [1, 2]

        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.exited(), timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            await asyncio.wait_for(process.exited(), timeout=15)
    stderr = process.errors.read_text()

    assert process.returncode == 0, stderr
    assert "credit cycles checked every 0.2s" in stderr
    assert "job worker stopped" in stderr
    assert "cockpit worker stopped" in stderr
    assert "Traceback" not in stderr
