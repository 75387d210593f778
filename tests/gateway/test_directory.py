"""The gateway's in-memory directory: invalidation within and across processes."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import ApiToken
from cockpit.gateway.directory import Directory
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.time import utcnow
from tests.conftest import TEST_SECRET
from tests.gateway.conftest import Org


async def test_a_change_committed_by_another_process_is_seen_on_the_next_call(
    database_url: str, db: AsyncSession, org: Org, tmp_path: Path, gateway_app: Any
) -> None:
    """Two directories sharing a stamp file stand for two worker processes of one deployment."""
    stamp = tmp_path / "gateway-cache.stamp"
    engine = make_engine(database_url)
    try:
        worker_a = Directory(make_sessionmaker(engine), TEST_SECRET, stamp)
        worker_b = Directory(make_sessionmaker(engine), TEST_SECRET, stamp)
        assert (await worker_a.caller(org.member_token)) is not None
        assert (await worker_b.caller(org.member_token)) is not None
        loads = worker_b.loads

        # Worker A's process revokes the token (a commit there invalidates A and touches the stamp).
        await db.execute(
            update(ApiToken).values(revoked_at=utcnow()).where(ApiToken.user_id == org.member.id)
        )
        await db.commit()
        worker_a.invalidate()

        assert await worker_b.caller(org.member_token) is None  # no TTL wait
        assert worker_b.loads == loads + 1
    finally:
        await engine.dispose()


async def test_without_changes_calls_are_served_from_memory(
    database_url: str, org: Org, tmp_path: Path, gateway_app: Any
) -> None:
    engine = make_engine(database_url)
    try:
        directory = Directory(make_sessionmaker(engine), TEST_SECRET, tmp_path / "stamp")
        caller = await directory.caller(org.member_token)
        assert caller is not None
        assert caller.user_id == org.member.id
        catalog = await directory.catalog(caller.account_id)
        assert "gpt-4o-mini" in catalog.routes
        loads = directory.loads
        for _ in range(50):
            assert await directory.caller(org.member_token) == caller
            assert await directory.catalog(caller.account_id) is catalog
        assert directory.loads == loads
        assert await directory.caller("ck_" + uuid.uuid4().hex) is None
        # A touched stamp (another process changed something) drops everything.
        stamp = tmp_path / "stamp"
        stamp.touch()
        os.utime(stamp, ns=(1, 1))
        await directory.caller(org.member_token)
        assert directory.loads > loads + 1
    finally:
        await engine.dispose()
