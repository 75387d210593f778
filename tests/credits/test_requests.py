"""Credit requests (/api/v1/credit-requests): filing, auto-approval, approving, denying, isolation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import (
    CreditRequest,
    EntryKind,
    GroupBudget,
    LedgerEntry,
    MemberAllocation,
    RequestStatus,
)
from cockpit.groups.repository import default_group
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import bearer, make_account, make_token, make_user

API = "/api/v1"


@dataclass
class Org:
    account: Account
    owner: User
    admin_headers: dict[str, str]
    group_id: uuid.UUID
    member: User
    member_headers: dict[str, str]


async def org(db: AsyncSession, *, monthly: str = "1000", auto: str = "100", name: str = "Acme") -> Org:
    account, owner = await make_account(db, name=name)
    group = await default_group(db, account.id)
    db.add(
        GroupBudget(
            group_id=group.id,
            account_id=account.id,
            monthly=Decimal(monthly),
            extra=Decimal(0),
            auto_approve_limit=Decimal(auto),
        )
    )
    await db.commit()
    member = await make_user(db, account, role=UserRole.member)
    member.name = "Mia Member"
    await db.commit()
    return Org(
        account=account,
        owner=owner,
        admin_headers=bearer(await make_token(db, owner)),
        group_id=group.id,
        member=member,
        member_headers=bearer(await make_token(db, member)),
    )


async def allocate(db: AsyncSession, org: Org, user: User, *, monthly: str, extra: str = "0") -> None:
    db.add(
        MemberAllocation(
            user_id=user.id,
            account_id=org.account.id,
            monthly=Decimal(monthly),
            extra=Decimal(extra),
            signup_shortfall=Decimal(0),
        )
    )
    await db.commit()


async def ask(
    client: AsyncClient, headers: dict[str, str], amount: Any, reason: str = "Big batch job"
) -> Response:
    return await client.post(
        f"{API}/credit-requests", json={"amount": amount, "reason": reason}, headers=headers
    )


def code(response: Response) -> str:
    return str(response.json()["error"]["code"])


async def allocation(db: AsyncSession, user_id: uuid.UUID) -> MemberAllocation | None:
    await db.commit()
    result = await db.scalar(
        select(MemberAllocation)
        .where(MemberAllocation.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    return result


async def ledger_entries(db: AsyncSession, account_id: uuid.UUID) -> list[LedgerEntry]:
    await db.commit()
    rows = await db.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.request_approved)
        .order_by(LedgerEntry.created_at)
    )
    return list(rows)


async def audit_actions(db: AsyncSession, account_id: uuid.UUID) -> list[str]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.account_id == account_id, AuditEntry.action.like("credit_request.%"))
        .order_by(AuditEntry.seq)
    )
    return list(rows)


# ---- filing ----


async def test_a_request_within_the_auto_approve_limit_is_approved_at_once(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db, monthly="1000", auto="100")

    response = await ask(client, o.member_headers, "100", reason="Quarterly report")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "auto_approved"
    assert (body["amount_requested"], body["amount_approved"]) == ("100", "100")
    assert (body["user_id"], body["user_name"], body["user_email"]) == (
        str(o.member.id),
        "Mia Member",
        o.member.email,
    )
    assert body["group_id"] == str(o.group_id)
    assert body["reason"] == "Quarterly report"
    assert body["decided_at"] is not None
    assert body["decided_by"] is None
    cycle = await current_cycle(db, o.account)
    mine = await allocation(db, o.member.id)
    assert mine is not None
    assert (mine.monthly, mine.extra, mine.extra_cycle_id) == (Decimal(0), Decimal(100), cycle.id)
    [entry] = await ledger_entries(db, o.account.id)
    assert (entry.amount, entry.user_id, entry.group_id) == (Decimal(100), o.member.id, o.group_id)
    assert (entry.cycle_id, str(entry.credit_request_id)) == (cycle.id, body["id"])
    assert await audit_actions(db, o.account.id) == ["credit_request.auto_approved"]


async def test_auto_approval_replaces_extra_credits_of_an_earlier_cycle(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db, monthly="1000", auto="100")
    # 30 extra credits given for no current cycle (an expired one): they count as zero now.
    await allocate(db, o, o.member, monthly="200", extra="30")

    response = await ask(client, o.member_headers, 12.5)

    assert response.json()["status"] == "auto_approved"
    mine = await allocation(db, o.member.id)
    assert mine is not None
    assert (mine.monthly, mine.extra) == (Decimal(200), Decimal("12.5"))
    # A second one adds to this cycle's extra.
    assert (await ask(client, o.member_headers, "7.25")).json()["status"] == "auto_approved"
    mine = await allocation(db, o.member.id)
    assert mine is not None
    assert mine.extra == Decimal("19.75")


async def test_a_request_above_the_limit_stays_pending(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db, monthly="1000", auto="100")

    response = await ask(client, o.member_headers, "100.000001")

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    assert response.json()["amount_approved"] is None
    assert await allocation(db, o.member.id) is None
    assert await ledger_entries(db, o.account.id) == []
    assert await audit_actions(db, o.account.id) == ["credit_request.created"]


async def test_a_request_the_group_cannot_cover_stays_pending(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db, monthly="100", auto="100")
    other = await make_user(db, o.account)
    await allocate(db, o, other, monthly="80")  # the group has 20 available

    assert (await ask(client, o.member_headers, "20.000001")).json()["status"] == "pending"
    assert (await ask(client, o.member_headers, "20")).json()["status"] == "auto_approved"
    # Now the group has nothing left: even a tiny request waits for an admin.
    assert (await ask(client, o.member_headers, "0.000001")).json()["status"] == "pending"
    mine = await allocation(db, o.member.id)
    assert mine is not None
    assert mine.extra == Decimal(20)


async def test_an_auto_approve_limit_of_zero_means_every_request_waits(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db, monthly="1000", auto="0")
    assert (await ask(client, o.member_headers, 1)).json()["status"] == "pending"


async def test_invalid_requests_are_refused_naming_the_field(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"amount": "1.1234567", "reason": "x"}, "amount"),
        ({"amount": -5, "reason": "x"}, "amount"),
        ({"amount": 0, "reason": "x"}, "amount"),
        ({"amount": "lots", "reason": "x"}, "amount"),
        ({"amount": 5}, "reason"),
        ({"amount": 5, "reason": "   "}, "reason"),
        ({"amount": 5, "reason": "x" * 1001}, "reason"),
        ({"amount": 5, "reason": "x", "user_id": str(o.owner.id)}, "user_id"),
    ]
    for body, field in cases:
        response = await client.post(f"{API}/credit-requests", json=body, headers=o.member_headers)
        assert response.status_code == 422, (body, response.text)
        assert field in [d["field"] for d in response.json()["error"]["details"]], (body, response.text)
    await db.commit()
    assert await db.scalar(select(CreditRequest).where(CreditRequest.account_id == o.account.id)) is None


# ---- deciding ----


async def pending(client: AsyncClient, o: Org, amount: str = "150", reason: str = "Training run") -> str:
    response = await ask(client, o.member_headers, amount, reason)
    assert response.json()["status"] == "pending", response.text
    return str(response.json()["id"])


async def test_approve_the_full_amount(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db, monthly="1000", auto="100")
    request_id = await pending(client, o, "150")

    response = await client.post(f"{API}/credit-requests/{request_id}/approve", headers=o.admin_headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["amount_requested"], body["amount_approved"]) == ("approved", "150", "150")
    assert body["decided_by"] == str(o.owner.id)
    assert body["decided_at"] is not None
    mine = await allocation(db, o.member.id)
    assert mine is not None
    assert mine.extra == Decimal(150)
    [entry] = await ledger_entries(db, o.account.id)
    assert (entry.amount, entry.user_id, str(entry.credit_request_id)) == (
        Decimal(150),
        o.member.id,
        request_id,
    )
    assert entry.actor_label == o.owner.email
    assert await audit_actions(db, o.account.id) == ["credit_request.created", "credit_request.approved"]


async def test_approve_a_smaller_amount(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db, monthly="1000", auto="100")
    request_id = await pending(client, o, "150")

    too_much = await client.post(
        f"{API}/credit-requests/{request_id}/approve", json={"amount": "150.000001"}, headers=o.admin_headers
    )
    assert too_much.status_code == 422
    assert code(too_much) == "amount_above_requested"
    response = await client.post(
        f"{API}/credit-requests/{request_id}/approve", json={"amount": 60.5}, headers=o.admin_headers
    )

    assert response.status_code == 200, response.text
    assert (response.json()["amount_requested"], response.json()["amount_approved"]) == ("150", "60.5")
    mine = await allocation(db, o.member.id)
    assert mine is not None
    assert mine.extra == Decimal("60.5")
    assert [e.amount for e in await ledger_entries(db, o.account.id)] == [Decimal("60.5")]


async def test_deny_with_a_note(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    request_id = await pending(client, o, "500")

    response = await client.post(
        f"{API}/credit-requests/{request_id}/deny", json={"note": "Not this month"}, headers=o.admin_headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["note"], body["amount_approved"]) == ("denied", "Not this month", None)
    assert body["decided_by"] == str(o.owner.id)
    assert await allocation(db, o.member.id) is None
    assert await ledger_entries(db, o.account.id) == []
    assert await audit_actions(db, o.account.id) == ["credit_request.created", "credit_request.denied"]


async def test_only_pending_requests_can_be_decided(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    approved = await pending(client, o, "150")
    denied = await pending(client, o, "160")
    auto = (await ask(client, o.member_headers, "5")).json()["id"]
    assert (
        await client.post(f"{API}/credit-requests/{approved}/approve", headers=o.admin_headers)
    ).is_success
    assert (await client.post(f"{API}/credit-requests/{denied}/deny", headers=o.admin_headers)).is_success

    for request_id in (approved, denied, auto):
        for verb in ("approve", "deny"):
            response = await client.post(
                f"{API}/credit-requests/{request_id}/{verb}", headers=o.admin_headers
            )
            assert response.status_code == 409, response.text
            assert code(response) == "credit_request_not_pending"
    # Nothing was granted twice: 150 approved + 5 auto-approved.
    mine = await allocation(db, o.member.id)
    assert mine is not None
    assert mine.extra == Decimal(155)


async def test_approving_more_than_the_group_has_is_refused_with_the_shortfall(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db, monthly="100", auto="0")
    other = await make_user(db, o.account)
    await allocate(db, o, other, monthly="70")  # 30 available
    request_id = await pending(client, o, "45.5")

    response = await client.post(f"{API}/credit-requests/{request_id}/approve", headers=o.admin_headers)

    assert response.status_code == 409, response.text
    assert code(response) == "group_budget_exceeded"
    assert "by 15.5 credits" in response.json()["error"]["message"]
    assert "30 credits available" in response.json()["error"]["message"]
    # Still pending; a smaller amount fits exactly.
    partial = await client.post(
        f"{API}/credit-requests/{request_id}/approve", json={"amount": "30"}, headers=o.admin_headers
    )
    assert partial.status_code == 200, partial.text
    assert partial.json()["amount_approved"] == "30"


# ---- who sees what ----


async def test_members_see_only_their_own_requests(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    other = await make_user(db, o.account)
    other_headers = bearer(await make_token(db, other))
    mine = await pending(client, o, "150", "mine")
    theirs = (await ask(client, other_headers, "200", "theirs")).json()["id"]

    listed = await client.get(f"{API}/credit-requests", headers=o.member_headers)
    assert [r["id"] for r in listed.json()["items"]] == [mine]
    assert listed.json()["meta"]["total"] == 1
    assert (await client.get(f"{API}/credit-requests/{theirs}", headers=o.member_headers)).status_code == 404
    assert (await client.get(f"{API}/credit-requests/{mine}", headers=o.member_headers)).status_code == 200
    # Members cannot decide, not even their own.
    for verb in ("approve", "deny"):
        response = await client.post(f"{API}/credit-requests/{mine}/{verb}", headers=o.member_headers)
        assert response.status_code == 403, response.text

    everyone = await client.get(f"{API}/credit-requests", headers=o.admin_headers)
    assert [r["id"] for r in everyone.json()["items"]] == [theirs, mine]  # newest first


async def test_another_accounts_requests_are_not_found(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db, name="First")
    elsewhere = await org(db, name="Second")
    request_id = await pending(client, o, "150")

    for verb in ("approve", "deny"):
        response = await client.post(
            f"{API}/credit-requests/{request_id}/{verb}", headers=elsewhere.admin_headers
        )
        assert response.status_code == 404, response.text
        assert code(response) == "credit_request_not_found"
    assert (await client.get(f"{API}/credit-requests", headers=elsewhere.admin_headers)).json()["items"] == []
    await db.commit()
    row = await db.scalar(
        select(CreditRequest)
        .where(CreditRequest.id == uuid.UUID(request_id))
        .execution_options(populate_existing=True)
    )
    assert row is not None
    assert row.status is RequestStatus.pending


async def test_list_filters_by_status_and_pages(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    auto = (await ask(client, o.member_headers, "5")).json()["id"]
    approved = await pending(client, o, "150")
    denied = await pending(client, o, "160")
    waiting = await pending(client, o, "170")
    await client.post(f"{API}/credit-requests/{approved}/approve", headers=o.admin_headers)
    await client.post(f"{API}/credit-requests/{denied}/deny", headers=o.admin_headers)

    async def ids(query: str) -> list[str]:
        response = await client.get(f"{API}/credit-requests{query}", headers=o.admin_headers)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["items"]]

    assert await ids("?status=pending") == [waiting]
    assert await ids("?status=approved") == [approved]
    assert await ids("?status=denied") == [denied]
    assert await ids("?status=auto_approved") == [auto]
    assert await ids("") == [waiting, denied, approved, auto]
    assert await ids("?per_page=2&page=2") == [approved, auto]
    bad = await client.get(f"{API}/credit-requests?status=maybe", headers=o.admin_headers)
    assert bad.status_code == 422


async def test_concurrent_requests_cannot_auto_approve_more_than_the_group_has(
    client: AsyncClient, db: AsyncSession
) -> None:
    import asyncio

    o = await org(db, monthly="100", auto="100")
    await current_cycle(db, o.account)  # exists already: creating it would serialise the requests
    await db.commit()
    # One token each: authenticating with one token serialises its requests on the token's row.
    tokens = [bearer(await make_token(db, o.member, name=f"t{i}")) for i in range(5)]

    responses = await asyncio.gather(*(ask(client, headers, "30") for headers in tokens))

    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["auto_approved"] * 3 + ["pending"] * 2
    mine = await allocation(db, o.member.id)
    assert mine is not None
    assert mine.extra == Decimal(90)
    assert [e.amount for e in await ledger_entries(db, o.account.id)] == [Decimal(30)] * 3
