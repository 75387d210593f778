"""Helpers of the credit settings, cycles and overview API tests: an account with a member, budgets,
allocations, spending and holds in the current cycle, the audit trail."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind, GroupBudget, MemberAllocation
from cockpit.groups.repository import default_group
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import bearer, make_account, make_token, make_user

API = "/api/v1"


@dataclass
class Org:
    account: Account
    owner: User
    headers: dict[str, str]
    default_group_id: uuid.UUID
    member: User
    member_headers: dict[str, str]


async def org(db: AsyncSession, *, name: str = "Acme") -> Org:
    account, owner = await make_account(db, name=name)
    group = await default_group(db, account.id)
    member = await make_user(db, account, role=UserRole.member)
    return Org(
        account=account,
        owner=owner,
        headers=bearer(await make_token(db, owner)),
        default_group_id=group.id,
        member=member,
        member_headers=bearer(await make_token(db, member)),
    )


async def patch(client: AsyncClient, o: Org, body: dict[str, Any]) -> Any:
    return await client.patch(f"{API}/credits/settings", json=body, headers=o.headers)


async def new_group(client: AsyncClient, o: Org, name: str, *members: User) -> uuid.UUID:
    response = await client.post(f"{API}/groups", json={"name": name}, headers=o.headers)
    assert response.status_code == 201, response.text
    group_id = uuid.UUID(response.json()["id"])
    if members:
        moved = await client.post(
            f"{API}/groups/{group_id}/members",
            json={"user_ids": [str(u.id) for u in members]},
            headers=o.headers,
        )
        assert moved.status_code == 200, moved.text
    return group_id


async def budget(
    db: AsyncSession,
    o: Org,
    group_id: uuid.UUID,
    *,
    monthly: str,
    extra: str = "0",
    cycle: CreditCycle | None,
) -> None:
    db.add(
        GroupBudget(
            group_id=group_id, account_id=o.account.id, monthly=Decimal(monthly), extra=Decimal(extra),
            extra_cycle_id=cycle.id if cycle is not None else None, auto_approve_limit=Decimal(0),
        )
    )  # fmt: skip
    await db.commit()


async def allocate(
    db: AsyncSession, o: Org, user: User, *, monthly: str, extra: str = "0", cycle: CreditCycle | None
) -> None:
    db.add(
        MemberAllocation(
            user_id=user.id, account_id=o.account.id, monthly=Decimal(monthly), extra=Decimal(extra),
            extra_cycle_id=cycle.id if cycle is not None else None, signup_shortfall=Decimal(0),
        )
    )  # fmt: skip
    await db.commit()


async def cycle_now(db: AsyncSession, o: Org) -> CreditCycle:
    cycle = await current_cycle(db, o.account)
    await db.commit()
    return cycle


async def spend(
    db: AsyncSession, o: Org, cycle: CreditCycle, user: User, group_id: uuid.UUID, credits: str
) -> None:
    ledger.append(
        db, account_id=o.account.id, cycle=cycle, kind=EntryKind.usage_debit, amount=-Decimal(credits),
        user_id=user.id, group_id=group_id, description="gpt-test call", usage_request_id=uuid.uuid4(),
    )  # fmt: skip
    await db.commit()


async def hold(
    db: AsyncSession, o: Org, cycle: CreditCycle, user: User, group_id: uuid.UUID, credits: str
) -> None:
    kind = EntryKind.hold if Decimal(credits) > 0 else EntryKind.release
    ledger.append(
        db, account_id=o.account.id, cycle=cycle, kind=kind, amount=-Decimal(credits), user_id=user.id,
        group_id=group_id,
    )  # fmt: skip
    await db.commit()


async def audit(db: AsyncSession, account_id: uuid.UUID, prefix: str = "credits.") -> list[AuditEntry]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id, AuditEntry.action.like(prefix + "%"))
        .order_by(AuditEntry.seq)
    )
    return list(rows)


async def cycles_in_db(db: AsyncSession, account_id: uuid.UUID) -> list[CreditCycle]:
    await db.commit()
    rows = await db.scalars(
        select(CreditCycle)
        .where(CreditCycle.account_id == account_id)
        .order_by(CreditCycle.seq)
        .execution_options(populate_existing=True)
    )
    return list(rows)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
