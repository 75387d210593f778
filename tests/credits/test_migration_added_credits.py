"""Migration 0029 carries the top-ups already in the ledger into their cycles' added credits, and
its downgrade keeps every ledger entry's cycle (no table copy on SQLite)."""

from __future__ import annotations

import uuid

from alembic import command

from cockpit.kit.migrate import alembic_config, upgrade
from tests.audit.test_migration import _run, _uuid, empty_database
from tests.conftest import _in_thread

__all__ = ["empty_database"]


async def test_top_ups_in_the_ledger_become_the_cycles_added_credits(empty_database: str) -> None:
    url = empty_database
    _in_thread(upgrade, url, "0028")
    account, cycle, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _run(
        url,
        "INSERT INTO accounts (id, created_at, name, timezone, seat_limit_copilot, seat_limit_console,"
        " seat_limit_compute, store_request_content, content_retention_days, credit_factor,"
        " credits_per_cycle, cycle_cadence, signup_credits)"
        " VALUES (:account, CURRENT_TIMESTAMP, 'Old Co', 'UTC', 25, 25, 25, false, 30, 0, 0, 'month', 0)",
        "INSERT INTO credit_cycles (id, created_at, account_id, seq, cadence, starts_at, ends_at, started_by,"
        " credits_per_cycle) VALUES (:cycle, CURRENT_TIMESTAMP, :account, 1, 'month', CURRENT_TIMESTAMP,"
        " CURRENT_TIMESTAMP, 'initial', 1000000000)",
        account=_uuid(url, account),
        cycle=_uuid(url, cycle),
    )
    entries = [  # (kind, user, amount in micro-credits)
        ("extra_granted", None, 250_000_000),  # a top-up: 250 credits
        ("extra_granted", None, 500_000),  # another: 0.5
        ("extra_granted", user, 9_000_000),  # extra credits of a member: not the account's
        ("cycle_reset", None, 1_000_000_000),
    ]
    for kind, user_id, amount in entries:
        await _run(
            url,
            "INSERT INTO credit_ledger (id, account_id, cycle_id, created_at, kind, user_id, amount,"
            " description) VALUES (:id, :account, :cycle, CURRENT_TIMESTAMP, :kind, :user, :amount, '')",
            id=_uuid(url, uuid.uuid4()), account=_uuid(url, account), cycle=_uuid(url, cycle), kind=kind,
            user=None if user_id is None else _uuid(url, user_id), amount=amount,
        )  # fmt: skip

    _in_thread(upgrade, url, "0029")
    assert await _run(url, "SELECT added_credits FROM credit_cycles") == [(250_500_000,)]

    _in_thread(command.downgrade, alembic_config(url), "0028")
    assert await _run(url, "SELECT count(*) FROM credit_ledger WHERE cycle_id IS NOT NULL") == [(4,)]
    assert await _run(url, "SELECT count(*) FROM credit_cycles") == [(1,)]
