"""Migration 0009 creates the queue and hands it the imports that the old in-process runner left
"queued" or "running" (they were lost at a restart), so that they finish after the upgrade."""

from __future__ import annotations

import json
import uuid

from alembic import command

from cockpit.kit.migrate import alembic_config, upgrade
from tests.audit.test_migration import _run, _uuid, empty_database
from tests.conftest import _in_thread

__all__ = ["empty_database"]  # the fixture, shared with the audit migration's test


async def test_imports_left_unfinished_are_queued_by_the_upgrade(empty_database: str) -> None:
    url = empty_database
    _in_thread(upgrade, url, "0008")
    account = uuid.uuid4()
    imports = {status: uuid.uuid4() for status in ("queued", "running", "done", "failed")}
    await _run(
        url,
        "INSERT INTO accounts (id, created_at, name, timezone, seat_limit_copilot, seat_limit_console,"
        " seat_limit_compute, store_request_content, content_retention_days, credit_factor,"
        " credits_per_cycle, cycle_cadence, signup_credits)"
        " VALUES (:account, CURRENT_TIMESTAMP, 'Old Co', 'UTC', 25, 25, 25, false, 30, 0, 0, 'month', 0)",
        account=_uuid(url, account),
    )
    for status, import_id in imports.items():
        await _run(
            url,
            "INSERT INTO import_jobs (id, created_at, account_id, filename, status, total, processed,"
            " created, skipped, rejected, report, content) VALUES (:id, CURRENT_TIMESTAMP, :account,"
            " 'a.csv', :status, 1, 0, 0, 0, 0, '[]', 'email\nx@example.com\n')",
            id=_uuid(url, import_id), account=_uuid(url, account), status=status,
        )  # fmt: skip

    _in_thread(upgrade, url, "head")

    rows = await _run(url, "SELECT kind, payload, account_id, status, attempts, dedupe_key FROM jobs")
    found = {}
    for kind, payload, account_id, status, attempts, key in rows:
        data = json.loads(payload) if isinstance(payload, str) else payload
        assert (kind, uuid.UUID(str(account_id)), status, attempts) == ("users.import", account, "queued", 0)
        assert key == f"users.import:{data['import_id']}"
        found[uuid.UUID(data["import_id"])] = status
    assert set(found) == {imports["queued"], imports["running"]}

    _in_thread(command.downgrade, alembic_config(url), "0008")
    assert await _run(url, "SELECT count(*) FROM import_jobs") == [(4,)]
