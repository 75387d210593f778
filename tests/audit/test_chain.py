"""The tamper-evident audit chain: every edit, deletion or truncation is found by verify_all."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.audit.service import GENESIS, ChainReport, compute_hash, verify_all
from cockpit.tenancy.models import AuditChainHead
from tests.builders import bearer, make_account, make_token

AUDIT = AuditEntry.__table__


async def _arrange(db: AsyncSession, client: AsyncClient, *, renames: int = 2) -> uuid.UUID:
    """A chain of account.created, user.created, api_token.created and ``renames`` account.updated."""
    account, owner = await make_account(db, name="Chain Co")
    raw = await make_token(db, owner)
    for i in range(renames):
        response = await client.patch("/api/v1/account", json={"name": f"Chain Co {i}"}, headers=bearer(raw))
        assert response.status_code == 200, response.text
    return account.id


async def _entries(db: AsyncSession, account_id: uuid.UUID) -> list[AuditEntry]:
    db.expire_all()
    rows = await db.scalars(
        select(AuditEntry).where(AuditEntry.account_id == account_id).order_by(AuditEntry.seq)
    )
    entries = list(rows)
    await db.commit()  # end the read transaction before the next change
    return entries


async def _sql(db: AsyncSession, statement: Any) -> None:
    """A change made behind the application's back, straight in the table."""
    await db.execute(statement)
    await db.commit()
    db.expire_all()


async def _report(db: AsyncSession, account_id: uuid.UUID) -> ChainReport:
    db.expire_all()
    [report] = await verify_all(db, account_id)
    await db.commit()
    return report


def _at(account_id: uuid.UUID, seq: int) -> Any:
    return (AUDIT.c.account_id == account_id) & (AUDIT.c.seq == seq)


async def test_intact_chain_verifies_with_count_and_head(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _arrange(db, client)
    entries = await _entries(db, account_id)
    assert [e.action for e in entries] == [
        "account.created", "user.created", "api_token.created", "account.updated", "account.updated",
    ]  # fmt: skip

    report = await _report(db, account_id)

    assert report.problem is None
    assert report.entries == 5
    assert report.head == entries[-1].hash
    stored = await db.get(AuditChainHead, account_id)
    assert stored is not None
    assert (stored.seq, stored.head) == (5, entries[-1].hash)


async def test_each_entry_links_to_the_previous_one(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _arrange(db, client)
    entries = await _entries(db, account_id)

    assert entries[0].prev_hash == GENESIS == "0" * 64
    for previous, entry in itertools.pairwise(entries):
        assert entry.prev_hash == previous.hash
    for entry in entries:
        assert entry.hash == compute_hash(entry)
        assert len(entry.hash) == 64
    assert len({e.hash for e in entries}) == len(entries)


async def test_editing_the_after_values_names_the_altered_entry(
    db: AsyncSession, client: AsyncClient
) -> None:
    account_id = await _arrange(db, client)
    entries = await _entries(db, account_id)
    await _sql(db, update(AUDIT).where(_at(account_id, 4)).values(after={"name": "Someone Else Entirely"}))

    report = await _report(db, account_id)

    assert report.problem is not None
    assert report.problem.seq == 4
    assert report.problem.entry_id == entries[3].id
    assert report.problem.message.startswith("entry #4 ")
    assert "altered" in report.problem.message
    assert report.entries == 3  # the entries before the altered one are intact


async def test_editing_the_actor_label_names_the_altered_entry(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _arrange(db, client)
    await _sql(
        db, update(AUDIT).where(_at(account_id, 2)).values(actor_label="innocent-bystander@example.com")
    )

    report = await _report(db, account_id)

    assert report.problem is not None
    assert report.problem.seq == 2
    assert "entry #2" in report.problem.message
    assert "altered" in report.problem.message


async def test_deleting_a_middle_entry_reports_it_missing(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _arrange(db, client)
    await _sql(db, delete(AUDIT).where(_at(account_id, 3)))

    report = await _report(db, account_id)

    assert report.problem is not None
    assert report.problem.seq == 3
    assert "entry #3 is missing" in report.problem.message


async def test_deleting_the_last_entry_reports_truncation(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _arrange(db, client)
    await _sql(db, delete(AUDIT).where(_at(account_id, 5)))

    report = await _report(db, account_id)

    assert report.problem is not None
    assert "entry #5 is missing" in report.problem.message
    assert "truncated" in report.problem.message


async def test_deleting_several_last_entries_reports_truncation(
    db: AsyncSession, client: AsyncClient
) -> None:
    account_id = await _arrange(db, client)
    await _sql(db, delete(AUDIT).where((AUDIT.c.account_id == account_id) & (AUDIT.c.seq >= 4)))

    report = await _report(db, account_id)

    assert report.problem is not None
    assert "#4..#5" in report.problem.message
    assert "truncated" in report.problem.message


async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(
    db: AsyncSession, client: AsyncClient
) -> None:
    account_id = await _arrange(db, client)
    await _sql(db, update(AUDIT).where(_at(account_id, 3)).values(target_label="a harmless token"))
    forged = (await _entries(db, account_id))[2]
    await _sql(db, update(AUDIT).where(_at(account_id, 3)).values(hash=compute_hash(forged)))

    report = await _report(db, account_id)

    assert report.problem is not None
    assert report.problem.seq == 4
    assert "entry #4" in report.problem.message
    assert "does not link to entry #3" in report.problem.message


async def test_an_edit_of_the_last_entry_with_a_recomputed_hash_is_caught_by_the_head(
    db: AsyncSession, client: AsyncClient
) -> None:
    account_id = await _arrange(db, client)
    await _sql(db, update(AUDIT).where(_at(account_id, 5)).values(after={"name": "Rewritten"}))
    forged = (await _entries(db, account_id))[4]
    await _sql(db, update(AUDIT).where(_at(account_id, 5)).values(hash=compute_hash(forged)))

    report = await _report(db, account_id)

    assert report.problem is not None
    assert "entry #5" in report.problem.message
    assert "chain head" in report.problem.message


async def test_chains_are_per_account(db: AsyncSession, client: AsyncClient) -> None:
    tampered = await _arrange(db, client)
    untouched = await _arrange(db, client)
    await _sql(db, update(AUDIT).where(_at(tampered, 4)).values(actor_label="mallory"))

    db.expire_all()
    reports = {r.account_id: r for r in await verify_all(db)}
    await db.commit()

    assert reports[tampered].problem is not None
    assert "entry #4" in reports[tampered].problem.message  # type: ignore[union-attr]
    assert reports[untouched].problem is None
    assert reports[untouched].entries == 5
    # Each account's chain starts from the genesis hash: numbering does not continue across accounts.
    first_untouched = (await _entries(db, untouched))[0]
    assert (first_untouched.seq, first_untouched.prev_hash) == (1, GENESIS)
    assert (await _report(db, untouched)).problem is None


async def test_concurrent_writes_keep_numbering_contiguous(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await make_account(db, name="Busy Co")
    raw = await make_token(db, owner)
    other, other_owner = await make_account(db, name="Other Co")
    other_raw = await make_token(db, other_owner)
    busy_id, other_id = account.id, other.id

    responses = await asyncio.gather(
        *(
            client.patch("/api/v1/account", json={"name": f"Busy Co {i}"}, headers=bearer(raw))
            for i in range(6)
        ),
        *(
            client.patch("/api/v1/account", json={"name": f"Other {i}"}, headers=bearer(other_raw))
            for i in range(4)
        ),
    )

    assert [r.status_code for r in responses] == [200] * 10
    for acct_id, expected in ((busy_id, 3 + 6), (other_id, 3 + 4)):
        entries = await _entries(db, acct_id)
        assert [e.seq for e in entries] == list(range(1, expected + 1))
        report = await _report(db, acct_id)
        assert report.problem is None
        assert report.entries == expected
