"""Group budgets and member allocations (/api/v1/groups/{id}/allocation, /api/v1/users/{id}/allocation),
the members table of a group, and signup credits."""

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
from cockpit.credits.models import EntryKind, GroupBudget, LedgerEntry, MemberAllocation
from cockpit.groups.models import Group
from cockpit.groups.repository import default_group
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole, UserStatus
from tests.builders import bearer, make_account, make_token, make_user

API = "/api/v1"


@dataclass
class Org:
    account: Account
    owner: User
    admin: dict[str, str]
    default_id: uuid.UUID
    member: User
    member_headers: dict[str, str]


async def org(db: AsyncSession, *, limit: str = "10000", name: str = "Acme") -> Org:
    account, owner = await make_account(db, name=name)
    account.credits_per_cycle = Decimal(limit)
    await db.commit()
    member = await make_user(db, account, email=f"mia-{uuid.uuid4().hex[:6]}@example.com")
    member.name = "Mia Member"
    await db.commit()
    return Org(
        account=account,
        owner=owner,
        admin=bearer(await make_token(db, owner)),
        default_id=(await default_group(db, account.id)).id,
        member=member,
        member_headers=bearer(await make_token(db, member)),
    )


async def new_group(db: AsyncSession, account: Account, name: str) -> Group:
    group = Group(id=uuid.uuid4(), account_id=account.id, name=name, name_key=name.lower())
    db.add(group)
    await db.commit()
    return group


def ok(response: Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


async def put_group(client: AsyncClient, o: Org, group_id: uuid.UUID, **body: Any) -> Response:
    return await client.put(f"{API}/groups/{group_id}/allocation", json=body, headers=o.admin)


async def put_user(client: AsyncClient, o: Org, user_id: uuid.UUID, **body: Any) -> Response:
    return await client.put(f"{API}/users/{user_id}/allocation", json=body, headers=o.admin)


async def entries(db: AsyncSession, account_id: uuid.UUID, *kinds: EntryKind) -> list[LedgerEntry]:
    rows = await db.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind.in_(kinds))
        .order_by(LedgerEntry.created_at, LedgerEntry.amount)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def audits(db: AsyncSession, account_id: uuid.UUID, action: str) -> list[AuditEntry]:
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id, AuditEntry.action == action)
        .order_by(AuditEntry.seq)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def usage(db: AsyncSession, o: Org, user: User, kind: EntryKind, amount: str) -> None:
    cycle = await current_cycle(db, o.account)
    db.add(
        LedgerEntry(
            id=uuid.uuid4(), account_id=o.account.id, cycle_id=cycle.id, created_at=utcnow(), kind=kind,
            amount=Decimal(amount), user_id=user.id, group_id=user.group_id, description="call",
        )
    )  # fmt: skip
    await db.commit()


# ---- groups ----


async def test_a_group_without_a_budget_reads_as_zero(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    await make_user(db, o.account, status=UserStatus.deactivated)
    body = ok(await client.get(f"{API}/groups/{o.default_id}/allocation", headers=o.admin))
    assert body == {
        "group_id": str(o.default_id),
        "group_name": "Default",
        "monthly": "0",
        "extra": "0",
        "budget": "0",
        "distributed": "0",
        "available": "0",
        "used": "0",
        "members": 2,  # the owner and Mia; the deactivated user is not counted
        "auto_approve_limit": "0",
    }


async def test_setting_a_group_budget_reports_every_figure(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    body = ok(await put_group(client, o, o.default_id, monthly=4000, extra="500.25", auto_approve_limit=100))
    assert (body["monthly"], body["extra"], body["budget"]) == ("4000", "500.25", "4500.25")
    assert (body["distributed"], body["available"], body["auto_approve_limit"]) == ("0", "4500.25", "100")
    ok(await put_user(client, o, o.member.id, monthly=1000, extra="200.5"))
    other = await make_user(db, o.account)
    ok(await put_user(client, o, other.id, monthly=300))
    await usage(db, o, o.member, EntryKind.usage_debit, "-42.125")
    await usage(db, o, other, EntryKind.usage_debit, "-7.875")
    body = ok(await client.get(f"{API}/groups/{o.default_id}/allocation", headers=o.admin))
    assert body["distributed"] == "1500.5"
    assert body["available"] == "2999.75"
    assert body["used"] == "50"
    assert body["members"] == 3
    # Fields left out stay as they are.
    body = ok(await put_group(client, o, o.default_id, auto_approve_limit=0))
    assert (body["monthly"], body["extra"], body["auto_approve_limit"]) == ("4000", "500.25", "0")


async def test_extra_credits_of_another_cycle_count_as_zero(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    ok(await put_group(client, o, o.default_id, monthly=1000, extra=300))
    ok(await put_user(client, o, o.member.id, monthly=100, extra=50))
    # The cycle the extra credits were given for ends: a fresh one starts (as "Reset cycle now" does).
    from cockpit.credits.cycles import start_cycle
    from cockpit.credits.models import CycleStart

    account = await db.get(Account, o.account.id, populate_existing=True)
    assert account is not None
    old = await current_cycle(db, account)
    await start_cycle(db, account, started_by=CycleStart.reset, at=utcnow(), previous=old)
    await db.commit()
    body = ok(await client.get(f"{API}/groups/{o.default_id}/allocation", headers=o.admin))
    assert (body["monthly"], body["extra"], body["budget"], body["distributed"]) == (
        "1000",
        "0",
        "1000",
        "100",
    )
    member = ok(await client.get(f"{API}/users/{o.member.id}/allocation", headers=o.admin))
    assert (member["monthly"], member["extra"], member["remaining"]) == ("100", "0", "100")


async def test_group_budgets_may_not_exceed_the_accounts_credits(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db, limit="10000")
    sales = await new_group(db, o.account, "Sales")
    ok(await put_group(client, o, o.default_id, monthly=6000, extra=500))
    err = error(await put_group(client, o, sales.id, monthly=4000, extra=1000), 409)
    assert err["code"] == "account_budget_exceeded"
    assert err["message"] == (
        "The groups' budgets would total 11,500 credits, which exceeds the account's "
        "10,000 credits per cycle by 1,500."
    )
    # Nothing was written by the refused edit.
    body = ok(await client.get(f"{API}/groups/{sales.id}/allocation", headers=o.admin))
    assert body["budget"] == "0"
    # Exactly the account's credits is allowed.
    body = ok(await put_group(client, o, sales.id, monthly=3500))
    assert body["budget"] == "3500"
    err = error(await put_group(client, o, sales.id, extra="0.000001"), 409)
    assert err["message"].endswith("10,000 credits per cycle by 0.000001.")


async def test_lowering_a_budget_is_allowed_after_the_account_limit_dropped(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db, limit="10000")
    ok(await put_group(client, o, o.default_id, monthly=8000))
    o.account.credits_per_cycle = Decimal(5000)
    db.add(o.account)
    await db.commit()
    body = ok(await put_group(client, o, o.default_id, monthly=7000))
    assert body["budget"] == "7000"
    err = error(await put_group(client, o, o.default_id, monthly=7001), 409)
    assert err["message"].endswith("exceeds the account's 5,000 credits per cycle by 2,001.")


async def test_a_budget_may_not_drop_below_what_was_distributed(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    ok(await put_group(client, o, o.default_id, monthly=1000, extra=200))
    ok(await put_user(client, o, o.member.id, monthly=900, extra=50))
    err = error(await put_group(client, o, o.default_id, monthly=700), 409)
    assert err["code"] == "budget_below_distributed"
    assert err["message"] == (
        "Default has already distributed 950 credits to its members; a budget of 900 is 50 below that."
    )
    body = ok(await put_group(client, o, o.default_id, monthly=750))
    assert (body["budget"], body["distributed"], body["available"]) == ("950", "950", "0")


async def test_group_edits_write_ledger_and_audit_entries(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    ok(await put_group(client, o, o.default_id, monthly=1000, extra=200, auto_approve_limit=50))
    ok(await put_group(client, o, o.default_id, monthly=800, extra=200))
    rows = await entries(db, o.account.id, EntryKind.allocation_set, EntryKind.extra_granted)
    assert [(e.kind, e.amount, e.group_id, e.user_id) for e in rows] == [
        (EntryKind.allocation_set, Decimal(1000), o.default_id, None),
        (EntryKind.extra_granted, Decimal(200), o.default_id, None),
        (EntryKind.allocation_set, Decimal(-200), o.default_id, None),
    ]
    assert all(e.actor_label == o.owner.email for e in rows)
    logged = await audits(db, o.account.id, "credits.group_allocation_updated")
    assert [(a.before, a.after) for a in logged] == [
        (
            {"monthly": "0", "extra": "0", "auto_approve_limit": "0"},
            {"monthly": "1000", "extra": "200", "auto_approve_limit": "50"},
        ),
        ({"monthly": "1000"}, {"monthly": "800"}),
    ]
    assert logged[0].target_id == str(o.default_id)


# ---- members ----


async def test_member_allocation_figures(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    ok(await put_group(client, o, o.default_id, monthly=1000))
    body = ok(await put_user(client, o, o.member.id, monthly="300.5", extra=100))
    assert body == {
        "user_id": str(o.member.id),
        "group_id": str(o.default_id),
        "monthly": "300.5",
        "extra": "100",
        "used": "0",
        "held": "0",
        "remaining": "400.5",
        "signup_shortfall": "0",
    }
    await usage(db, o, o.member, EntryKind.usage_debit, "-30.25")
    await usage(db, o, o.member, EntryKind.hold, "-10")
    await usage(db, o, o.member, EntryKind.release, "4")
    body = ok(await client.get(f"{API}/users/{o.member.id}/allocation", headers=o.member_headers))
    assert (body["used"], body["held"], body["remaining"]) == ("30.25", "6", "364.25")


async def test_a_group_may_not_distribute_more_than_its_budget(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    other = await make_user(db, o.account)
    ok(await put_group(client, o, o.default_id, monthly=800, extra=200))
    ok(await put_user(client, o, o.member.id, monthly=600))
    err = error(await put_user(client, o, other.id, monthly=300, extra=200), 409)
    assert err["code"] == "group_budget_exceeded"
    assert (
        err["message"] == "Default would distribute 1,100 credits, which exceeds its budget of 1,000 by 100."
    )
    body = ok(await put_user(client, o, other.id, monthly=300, extra=100))
    assert body["remaining"] == "400"
    group = ok(await client.get(f"{API}/groups/{o.default_id}/allocation", headers=o.admin))
    assert (group["distributed"], group["available"]) == ("1000", "0")
    # Lowering is always allowed, also while the group is fully distributed.
    ok(await put_user(client, o, o.member.id, monthly=500))


async def test_member_edits_write_ledger_and_audit_entries(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    ok(await put_group(client, o, o.default_id, monthly=1000))
    ok(await put_user(client, o, o.member.id, monthly=300, extra=20))
    ok(await put_user(client, o, o.member.id, extra=5))
    rows = await entries(db, o.account.id, EntryKind.allocation_set, EntryKind.extra_granted)
    member_rows = [(e.kind, e.amount, e.group_id) for e in rows if e.user_id == o.member.id]
    assert member_rows == [
        (EntryKind.allocation_set, Decimal(300), o.default_id),
        (EntryKind.extra_granted, Decimal(20), o.default_id),
        (EntryKind.extra_granted, Decimal(-15), o.default_id),
    ]
    logged = await audits(db, o.account.id, "credits.member_allocation_updated")
    assert [(a.target_id, a.before, a.after) for a in logged] == [
        (str(o.member.id), {"monthly": "0", "extra": "0"}, {"monthly": "300", "extra": "20"}),
        (str(o.member.id), {"extra": "20"}, {"extra": "5"}),
    ]


async def test_a_moved_user_takes_their_allocation_to_the_new_group(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    sales = await new_group(db, o.account, "Sales")
    ok(await put_group(client, o, o.default_id, monthly=1000))
    ok(await put_group(client, o, sales.id, monthly=500))
    ok(await put_user(client, o, o.member.id, monthly=400))
    response = await client.post(
        f"{API}/groups/{sales.id}/members", json={"user_ids": [str(o.member.id)]}, headers=o.admin
    )
    assert response.status_code == 200, response.text
    default = ok(await client.get(f"{API}/groups/{o.default_id}/allocation", headers=o.admin))
    moved_to = ok(await client.get(f"{API}/groups/{sales.id}/allocation", headers=o.admin))
    assert (default["distributed"], moved_to["distributed"], moved_to["available"]) == ("0", "400", "100")
    member = ok(await client.get(f"{API}/users/{o.member.id}/allocation", headers=o.admin))
    assert (member["group_id"], member["monthly"]) == (str(sales.id), "400")


async def test_invalid_amounts_are_refused_naming_the_field(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    err = error(await put_group(client, o, o.default_id, monthly=-1), 422)
    assert err["details"][0]["field"] == "monthly"
    err = error(await put_group(client, o, o.default_id, extra="1.0000001"), 422)
    assert err["details"][0]["field"] == "extra"
    err = error(await put_group(client, o, o.default_id, auto_approve_limit="lots"), 422)
    assert err["details"][0]["field"] == "auto_approve_limit"
    err = error(await put_user(client, o, o.member.id, monthly=5, bonus=1), 422)
    assert err["details"][0] == {"field": "bonus", "message": "unknown field"}
    err = error(await put_user(client, o, o.member.id, extra=-0.5), 422)
    assert err["details"][0]["field"] == "extra"
    # Six places are fine, as a number or as a string.
    body = ok(await put_group(client, o, o.default_id, monthly="1500.123456", extra=0.5))
    assert (body["monthly"], body["extra"]) == ("1500.123456", "0.5")


# ---- who may do what ----


async def test_members_read_only_their_own_allocation(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    other = await make_user(db, o.account)
    ok(await client.get(f"{API}/users/{o.member.id}/allocation", headers=o.member_headers))
    err = error(await client.get(f"{API}/users/{other.id}/allocation", headers=o.member_headers), 404)
    assert err["code"] == "user_not_found"
    error(
        await client.put(
            f"{API}/users/{o.member.id}/allocation", json={"monthly": 5}, headers=o.member_headers
        ),
        403,
    )
    error(await client.get(f"{API}/groups/{o.default_id}/allocation", headers=o.member_headers), 403)
    error(
        await client.put(
            f"{API}/groups/{o.default_id}/allocation", json={"monthly": 5}, headers=o.member_headers
        ),
        403,
    )
    error(await client.get(f"{API}/groups/{o.default_id}/allocation/members", headers=o.member_headers), 403)
    # An administrator (not only the owner) manages allocations.
    admin = await make_user(db, o.account, role=UserRole.admin)
    headers = bearer(await make_token(db, admin))
    ok(await client.put(f"{API}/users/{other.id}/allocation", json={"monthly": 0}, headers=headers))


async def test_another_accounts_groups_and_users_are_not_found(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    theirs = await org(db, name="Globex")
    for method, path in [
        ("GET", f"/groups/{theirs.default_id}/allocation"),
        ("PUT", f"/groups/{theirs.default_id}/allocation"),
        ("GET", f"/groups/{theirs.default_id}/allocation/members"),
        ("GET", f"/users/{theirs.member.id}/allocation"),
        ("PUT", f"/users/{theirs.member.id}/allocation"),
        ("GET", f"/groups/{uuid.uuid4()}/allocation"),
    ]:
        body = {"monthly": 1} if method == "PUT" else None
        response = await client.request(method, API + path, json=body, headers=o.admin)
        assert response.status_code == 404, (method, path, response.text)
    assert await db.scalar(select(GroupBudget).where(GroupBudget.group_id == theirs.default_id)) is None
    assert (
        await db.scalar(select(MemberAllocation).where(MemberAllocation.user_id == theirs.member.id)) is None
    )


# ---- signup credits ----


async def join(client: AsyncClient, o: Org, email: str) -> str:
    invited = await client.post(f"{API}/invitations", json={"email": email}, headers=o.admin)
    assert invited.status_code == 201, invited.text
    token = invited.json()["accept_url"].rsplit("/", 1)[1]
    accepted = await client.post(
        f"{API}/invitations/accept",
        json={"token": token, "name": "Nina Newcomer", "password": "a-brand-new-passphrase-42"},
    )
    assert accepted.status_code in (200, 201), accepted.text
    user = await db_user(client, o, email)
    return user


async def db_user(client: AsyncClient, o: Org, email: str) -> str:
    response = await client.get(f"{API}/users", params={"q": email}, headers=o.admin)
    assert response.status_code == 200, response.text
    items = [u for u in response.json()["items"] if u["email"] == email]
    assert len(items) == 1
    return str(items[0]["id"])


async def set_signup(db: AsyncSession, o: Org, amount: str) -> None:
    o.account.signup_credits = Decimal(amount)
    db.add(o.account)
    await db.commit()


async def test_a_new_user_gets_the_signup_credits(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    await set_signup(db, o, "25.5")
    ok(await put_group(client, o, o.default_id, monthly=100))
    user_id = await join(client, o, "nina@example.com")
    body = ok(await client.get(f"{API}/users/{user_id}/allocation", headers=o.admin))
    assert (body["monthly"], body["extra"], body["remaining"], body["signup_shortfall"]) == (
        "0", "25.5", "25.5", "0",
    )  # fmt: skip
    group = ok(await client.get(f"{API}/groups/{o.default_id}/allocation", headers=o.admin))
    assert (group["distributed"], group["available"]) == ("25.5", "74.5")
    rows = await entries(db, o.account.id, EntryKind.signup_grant)
    assert [(str(e.user_id), e.group_id, e.amount, e.actor_label) for e in rows] == [
        (user_id, o.default_id, Decimal("25.5"), "system")
    ]
    logged = await audits(db, o.account.id, "credits.signup_granted")
    assert len(logged) == 1
    assert (logged[0].actor_kind, logged[0].target_id) == ("system", user_id)
    assert logged[0].after == {
        "signup_credits": "25.5",
        "granted": "25.5",
        "shortfall": "0",
        "group": "Default",
    }


async def test_signup_credits_the_group_cannot_cover_are_a_shortfall(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    await set_signup(db, o, "50")
    ok(await put_group(client, o, o.default_id, monthly=100))
    ok(await put_user(client, o, o.member.id, monthly=70))
    user_id = await join(client, o, "nina@example.com")
    body = ok(await client.get(f"{API}/users/{user_id}/allocation", headers=o.admin))
    assert (body["extra"], body["signup_shortfall"]) == ("30", "20")
    group = ok(await client.get(f"{API}/groups/{o.default_id}/allocation", headers=o.admin))
    assert (group["distributed"], group["available"]) == ("100", "0")
    rows = await entries(db, o.account.id, EntryKind.signup_grant)
    assert [e.amount for e in rows] == [Decimal(30)]
    # The next one gets nothing: the whole amount is a shortfall, and no ledger entry of 0 is written.
    second = await join(client, o, "otto@example.com")
    body = ok(await client.get(f"{API}/users/{second}/allocation", headers=o.admin))
    assert (body["extra"], body["signup_shortfall"]) == ("0", "50")
    assert len(await entries(db, o.account.id, EntryKind.signup_grant)) == 1
    # Covering it later: raising the extra credits lowers the shortfall by as much.
    ok(await put_group(client, o, o.default_id, monthly=200))
    body = ok(await put_user(client, o, user_id, extra=45))
    assert (body["extra"], body["signup_shortfall"]) == ("45", "5")


async def test_no_signup_credits_when_the_setting_is_zero(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    ok(await put_group(client, o, o.default_id, monthly=100))
    user_id = await join(client, o, "nina@example.com")
    body = ok(await client.get(f"{API}/users/{user_id}/allocation", headers=o.admin))
    assert (body["extra"], body["signup_shortfall"]) == ("0", "0")
    assert await entries(db, o.account.id, EntryKind.signup_grant) == []
    assert await audits(db, o.account.id, "credits.signup_granted") == []
    assert (
        await db.scalar(select(MemberAllocation).where(MemberAllocation.user_id == uuid.UUID(user_id)))
        is None
    )


# ---- the members table ----


async def test_group_members_list_with_search_and_pages(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    sales = await new_group(db, o.account, "Sales")
    ok(await put_group(client, o, sales.id, monthly=1000))
    people = []
    for name in ["Zoe Zed", "Adam Apple", "Bea Banana", "Carl Cherry"]:
        user = await make_user(db, o.account, email=f"{name.split()[0].lower()}@example.com")
        user.name, user.group_id = name, sales.id
        people.append(user)
    await db.commit()
    zoe, adam, _, _ = people
    ok(await put_user(client, o, adam.id, monthly=100, extra=10))
    ok(await put_user(client, o, zoe.id, monthly=50))
    await usage(db, o, adam, EntryKind.usage_debit, "-12.5")
    await usage(db, o, adam, EntryKind.hold, "-2")
    await usage(db, o, zoe, EntryKind.usage_debit, "-1")

    url = f"{API}/groups/{sales.id}/allocation/members"
    body = ok(await client.get(url, params={"per_page": 2}, headers=o.admin))
    assert body["meta"] == {"page": 1, "per_page": 2, "total": 4, "pages": 2}
    assert [r["name"] for r in body["items"]] == ["Adam Apple", "Bea Banana"]
    assert body["items"][0] == {
        "user_id": str(adam.id),
        "name": "Adam Apple",
        "email": "adam@example.com",
        "status": "active",
        "monthly": "100",
        "extra": "10",
        "used": "12.5",
        "held": "2",
        "remaining": "95.5",
        "signup_shortfall": "0",
    }
    assert (body["items"][1]["monthly"], body["items"][1]["remaining"]) == ("0", "0")
    body = ok(await client.get(url, params={"per_page": 2, "page": 2}, headers=o.admin))
    assert [(r["name"], r["used"], r["remaining"]) for r in body["items"]] == [
        ("Carl Cherry", "0", "0"),
        ("Zoe Zed", "1", "49"),
    ]
    # Search by name or e-mail, case-insensitively; the Default group's members are not listed.
    body = ok(await client.get(url, params={"q": "ZED"}, headers=o.admin))
    assert [r["email"] for r in body["items"]] == ["zoe@example.com"]
    body = ok(await client.get(url, params={"q": "bea@"}, headers=o.admin))
    assert [r["name"] for r in body["items"]] == ["Bea Banana"]
    body = ok(await client.get(url, params={"q": "mia"}, headers=o.admin))
    assert body["items"] == []
    assert body["meta"]["total"] == 0
    body = ok(await client.get(url, params={"q": "%"}, headers=o.admin))
    assert body["meta"]["total"] == 0
