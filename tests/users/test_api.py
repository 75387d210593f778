"""The people REST API: /api/v1/users and /api/v1/seats, and who may call the admin endpoints.

Search and filters, role changes, seats, deactivation and reactivation; a member's token is refused
everywhere; another account's ids are unknown; every change is audited and a failed request
writes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.models import Account
from cockpit.audit.models import AuditEntry
from cockpit.auth.actor import Actor
from cockpit.auth.passwords import hash_password
from cockpit.groups.models import Group
from cockpit.groups.repository import default_group
from cockpit.kit.errors import Conflict
from cockpit.users import service as users_service
from cockpit.users.models import User, UserRole, UserStatus
from tests.builders import PASSWORD, bearer, console_login, make_account, make_token

API = "/api/v1"
PASSWORD_HASH = hash_password(PASSWORD)
SESSION = "cockpit_session"


# ---- helpers ----


@dataclass
class Org:
    account: Account
    owner: User
    headers: dict[str, str]  # the owner's admin-scope token

    @property
    def id(self) -> uuid.UUID:
        return self.account.id


async def org(db: AsyncSession, *, name: str = "Acme", email: str | None = None) -> Org:
    account, owner = await make_account(db, name=name, email=email)
    return Org(account, owner, bearer(await make_token(db, owner)))


async def person(
    db: AsyncSession,
    account: Account,
    *,
    email: str | None = None,
    name: str = "Test User",
    role: UserRole = UserRole.member,
    status: UserStatus = UserStatus.active,
    seats: Iterable[str] = (),
    group_id: uuid.UUID | None = None,
) -> User:
    if group_id is None:
        group_id = (await default_group(db, account.id)).id
    user = User(
        account_id=account.id,
        email=email or f"user-{uuid.uuid4().hex[:8]}@example.com",
        name=name,
        role=role,
        status=status,
        password_hash=PASSWORD_HASH,
        group_id=group_id,
        **{f"seat_{seat}": True for seat in seats},
    )
    db.add(user)
    await db.commit()
    return user


async def make_group(db: AsyncSession, account: Account, name: str) -> Group:
    group = Group(account_id=account.id, name=name, name_key=name.lower(), description="")
    db.add(group)
    await db.commit()
    return group


async def token_of(db: AsyncSession, user: User) -> dict[str, str]:
    return bearer(await make_token(db, user))


async def audit_actions(db: AsyncSession, account_id: uuid.UUID) -> list[str]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry.action).where(AuditEntry.account_id == account_id).order_by(AuditEntry.seq)
    )
    result = list(rows)
    await db.commit()
    return result


async def audit_entries(db: AsyncSession, account_id: uuid.UUID, action: str) -> list[AuditEntry]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id, AuditEntry.action == action)
        .order_by(AuditEntry.seq)
        .execution_options(populate_existing=True)
    )
    result = list(rows)
    await db.commit()
    return result


async def active_owners(db: AsyncSession, account_id: uuid.UUID) -> int:
    await db.commit()
    count = await db.scalar(
        select(func.count())
        .select_from(User)
        .where(User.account_id == account_id, User.role == UserRole.owner, User.status == UserStatus.active)
    )
    await db.commit()
    return int(count or 0)


def code(response: Response) -> str:
    return str(response.json()["error"]["code"])


async def get_user(client: AsyncClient, headers: dict[str, str], user_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"{API}/users/{user_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def seat_table(client: AsyncClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = await client.get(f"{API}/seats", headers=headers)
    assert response.status_code == 200, response.text
    return {item["product"]: item for item in response.json()["items"]}


async def set_limits(client: AsyncClient, headers: dict[str, str], **limits: int) -> None:
    response = await client.patch(f"{API}/seats", json=limits, headers=headers)
    assert response.status_code == 200, response.text


async def emails(client: AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = await client.get(f"{API}/users", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["email"] for item in response.json()["items"]]


@asynccontextmanager
async def browser(app: Any) -> AsyncIterator[AsyncClient]:
    """A separate browser (its own cookie jar) on the same app."""
    transport = ASGITransport(app=app, client=("203.0.113.7", 50001))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def console_works(http: AsyncClient) -> bool:
    response = await http.get("/")
    if response.status_code == 200:
        return True
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/login")
    return False


# ---- search, filters, sort and pagination ----


@dataclass
class Directory:
    org: Org
    users: dict[str, User]
    engineering: Group


async def directory(db: AsyncSession) -> Directory:
    """Olivia (owner), Alice (admin), Bob (deactivated), Carol (Engineering), Dave; plus another account."""
    o = await org(db, email="olivia@example.com")
    owner = await db.get(User, o.owner.id)
    assert owner is not None
    owner.name = "Olivia Owner"
    await db.commit()
    engineering = await make_group(db, o.account, "Engineering")
    users = {
        "olivia": owner,
        "alice": await person(
            db, o.account, email="alice.martin@example.com", name="Alice Martin", role=UserRole.admin,
            seats=["copilot"],
        ),
        "bob": await person(
            db, o.account, email="bob@example.org", name="Bob Stone", status=UserStatus.deactivated,
            seats=["console"],
        ),
        "carol": await person(
            db, o.account, email="carol@example.com", name="Carol Martinez", group_id=engineering.id,
            seats=["copilot", "compute"],
        ),
        "dave": await person(db, o.account, email="d_ave@example.com", name="Dave"),
    }  # fmt: skip
    other = await org(db, name="Other Org", email="other-owner@other.example")
    await person(db, other.account, email="martin@other.example", name="Martin Other", seats=["copilot"])
    return Directory(o, users, engineering)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("martin", ["alice.martin@example.com", "carol@example.com"]),  # e-mail or name
        ("MARTIN", ["alice.martin@example.com", "carol@example.com"]),
        ("  stone ", ["bob@example.org"]),
        ("example.org", ["bob@example.org"]),
        ("_", ["d_ave@example.com"]),  # LIKE wildcards are taken literally
        ("%", []),
        ("nobody", []),
    ],
)
async def test_search_matches_name_or_email_within_the_account(
    client: AsyncClient, db: AsyncSession, q: str, expected: list[str]
) -> None:
    d = await directory(db)

    response = await client.get(f"{API}/users", params={"q": q}, headers=d.org.headers)

    assert response.status_code == 200
    body = response.json()
    assert [u["email"] for u in body["items"]] == expected
    assert body["meta"]["total"] == len(expected)


async def test_filters_by_role_status_group_and_seat(client: AsyncClient, db: AsyncSession) -> None:
    d = await directory(db)
    h = d.org.headers
    default = await default_group(db, d.org.id)

    assert await emails(client, h, role="admin") == ["alice.martin@example.com"]
    assert await emails(client, h, role="owner") == ["olivia@example.com"]
    assert await emails(client, h, status="deactivated") == ["bob@example.org"]
    assert await emails(client, h, status="active") == [
        "alice.martin@example.com", "carol@example.com", "d_ave@example.com", "olivia@example.com",
    ]  # fmt: skip
    assert await emails(client, h, group_id=str(d.engineering.id)) == ["carol@example.com"]
    assert await emails(client, h, group_id=str(default.id)) == [
        "alice.martin@example.com", "bob@example.org", "d_ave@example.com", "olivia@example.com",
    ]  # fmt: skip
    assert await emails(client, h, seat="copilot") == ["alice.martin@example.com", "carol@example.com"]
    assert await emails(client, h, seat="compute") == ["carol@example.com"]
    assert await emails(client, h, role="member", status="active") == [
        "carol@example.com",
        "d_ave@example.com",
    ]
    assert await emails(client, h, q="martin", seat="compute") == ["carol@example.com"]


@pytest.mark.parametrize(
    "params", [{"role": "superuser"}, {"status": "gone"}, {"seat": "gpu"}, {"group_id": "nope"}]
)
async def test_unknown_filter_values_are_refused(
    client: AsyncClient, db: AsyncSession, params: dict[str, str]
) -> None:
    o = await org(db)

    response = await client.get(f"{API}/users", params=params, headers=o.headers)

    assert response.status_code == 422
    assert code(response) == "invalid_input"


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("email", ["alice", "bob", "carol", "dave", "olivia"]),
        ("-email", ["olivia", "dave", "carol", "bob", "alice"]),
        ("name", ["alice", "bob", "carol", "dave", "olivia"]),
        ("-name", ["olivia", "dave", "carol", "bob", "alice"]),
        ("created_at", ["olivia", "alice", "bob", "carol", "dave"]),
        ("-created_at", ["dave", "carol", "bob", "alice", "olivia"]),
    ],
)
async def test_sort(client: AsyncClient, db: AsyncSession, sort: str, expected: list[str]) -> None:
    d = await directory(db)

    listed = await emails(client, d.org.headers, sort=sort)

    assert listed == [d.users[key].email for key in expected]


async def test_default_sort_is_by_email_and_unknown_sorts_are_refused(
    client: AsyncClient, db: AsyncSession
) -> None:
    d = await directory(db)

    assert await emails(client, d.org.headers) == sorted(u.email for u in d.users.values())
    response = await client.get(f"{API}/users", params={"sort": "password_hash"}, headers=d.org.headers)
    assert response.status_code == 422


async def test_pagination_meta_and_pages_that_neither_overlap_nor_skip(
    client: AsyncClient, db: AsyncSession
) -> None:
    d = await directory(db)
    h = d.org.headers

    pages = []
    for page in (1, 2, 3):
        response = await client.get(f"{API}/users", params={"page": page, "per_page": 2}, headers=h)
        assert response.status_code == 200
        body = response.json()
        assert body["meta"] == {"page": page, "per_page": 2, "total": 5, "pages": 3}
        pages.append([u["email"] for u in body["items"]])

    assert [len(p) for p in pages] == [2, 2, 1]
    assert [e for p in pages for e in p] == sorted(u.email for u in d.users.values())
    beyond = await client.get(f"{API}/users", params={"page": 4, "per_page": 2}, headers=h)
    assert beyond.json()["items"] == []
    assert beyond.json()["meta"]["total"] == 5
    for bad in ({"per_page": 0}, {"per_page": 201}, {"page": 0}):
        assert (await client.get(f"{API}/users", params=bad, headers=h)).status_code == 422


async def test_get_user_shows_the_profile(client: AsyncClient, db: AsyncSession) -> None:
    d = await directory(db)
    carol = d.users["carol"]

    body = await get_user(client, d.org.headers, carol.id)

    assert body["id"] == str(carol.id)
    assert (body["email"], body["name"], body["role"], body["status"]) == (
        "carol@example.com", "Carol Martinez", "member", "active",
    )  # fmt: skip
    assert body["group_id"] == str(d.engineering.id)
    assert body["seats"] == ["copilot", "compute"]
    assert body["deactivated_at"] is None


# ---- roles ----


@pytest.mark.parametrize("role", [UserRole.owner, UserRole.admin])
async def test_nobody_changes_their_own_role(client: AsyncClient, db: AsyncSession, role: UserRole) -> None:
    o = await org(db)
    me = o.owner if role is UserRole.owner else await person(db, o.account, role=role)
    headers = o.headers if role is UserRole.owner else await token_of(db, me)
    before = await audit_actions(db, o.id)

    response = await client.patch(f"{API}/users/{me.id}", json={"role": "member"}, headers=headers)

    assert response.status_code == 403
    assert code(response) == "own_role"
    assert (await get_user(client, o.headers, me.id))["role"] == role.value
    assert await audit_actions(db, o.id) == before


async def test_only_an_owner_grants_or_removes_the_owner_role(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    admin = await person(db, o.account, role=UserRole.admin)
    admin_headers = await token_of(db, admin)
    member = await person(db, o.account)
    second_owner = await person(db, o.account, role=UserRole.owner)
    before = await audit_actions(db, o.id)

    grant = await client.patch(f"{API}/users/{member.id}", json={"role": "owner"}, headers=admin_headers)
    remove = await client.patch(
        f"{API}/users/{second_owner.id}", json={"role": "admin"}, headers=admin_headers
    )

    assert (grant.status_code, code(grant)) == (403, "owner_role_restricted")
    assert (remove.status_code, code(remove)) == (403, "owner_role_restricted")
    assert (await get_user(client, o.headers, member.id))["role"] == "member"
    assert (await get_user(client, o.headers, second_owner.id))["role"] == "owner"
    assert await audit_actions(db, o.id) == before


async def test_an_owner_grants_owner_and_the_new_owner_can_demote_the_first(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    member = await person(db, o.account)
    member_headers = await token_of(db, member)

    granted = await client.patch(f"{API}/users/{member.id}", json={"role": "owner"}, headers=o.headers)
    assert granted.status_code == 200
    assert granted.json()["role"] == "owner"

    demoted = await client.patch(f"{API}/users/{o.owner.id}", json={"role": "admin"}, headers=member_headers)
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "admin"

    entries = await audit_entries(db, o.id, "user.role_changed")
    assert [(e.target_id, e.actor_id, e.before, e.after) for e in entries] == [
        (str(member.id), o.owner.id, {"role": "member"}, {"role": "owner"}),
        (str(o.owner.id), member.id, {"role": "owner"}, {"role": "admin"}),
    ]
    assert await active_owners(db, o.id) == 1


async def test_admin_promotes_a_member_to_admin(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    admin = await person(db, o.account, role=UserRole.admin)
    admin_headers = await token_of(db, admin)
    member = await person(db, o.account)
    member_headers = await token_of(db, member)
    assert (await client.get(f"{API}/users", headers=member_headers)).status_code == 403

    response = await client.patch(f"{API}/users/{member.id}", json={"role": "admin"}, headers=admin_headers)

    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    # The promotion takes effect at once for the promoted user's existing token.
    assert (await client.get(f"{API}/users", headers=member_headers)).status_code == 200
    [entry] = await audit_entries(db, o.id, "user.role_changed")
    assert (entry.actor_id, entry.target_id) == (admin.id, str(member.id))
    assert (entry.before, entry.after) == ({"role": "member"}, {"role": "admin"})


async def test_the_last_owner_keeps_the_owner_role(db: AsyncSession) -> None:
    """Through the API the caller is always another active owner; the CLI (a system actor) is not."""
    o = await org(db)
    account_id, owner_id = o.id, o.owner.id  # the rollbacks below expire the loaded objects
    system = Actor.system(account_id, "tests")

    with pytest.raises(Conflict) as demote:
        await users_service.change_user(db, system, owner_id, role=UserRole.admin)
    await db.rollback()
    with pytest.raises(Conflict) as deactivate:
        await users_service.deactivate_user(db, system, owner_id)
    await db.rollback()

    assert demote.value.code == "last_owner"
    assert deactivate.value.code == "last_owner"
    assert await active_owners(db, account_id) == 1


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    second = await person(db, o.account, role=UserRole.owner)
    second_headers = await token_of(db, second)

    first_call, second_call = await asyncio.gather(
        client.patch(f"{API}/users/{second.id}", json={"role": "admin"}, headers=o.headers),
        client.patch(f"{API}/users/{o.owner.id}", json={"role": "admin"}, headers=second_headers),
    )

    statuses = sorted([first_call.status_code, second_call.status_code])
    assert await active_owners(db, o.id) == 1, f"responses {statuses}"
    assert statuses in ([200, 403], [200, 409])


# ---- deactivation and reactivation ----


async def test_deactivation_cuts_token_and_console_access_frees_seats_and_keeps_the_data(
    app: Any, client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    member = await person(db, o.account, name="Mia", seats=["copilot", "console"])
    member_headers = await token_of(db, member)
    async with browser(app) as member_browser:
        assert (await console_login(member_browser, member.email)).status_code == 303
        assert await console_works(member_browser)
        assert (await client.get(f"{API}/account", headers=member_headers)).status_code == 200
        before = await seat_table(client, o.headers)
        assert (before["copilot"]["used"], before["console"]["used"]) == (1, 2)

        response = await client.post(f"{API}/users/{member.id}/deactivate", headers=o.headers)

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "deactivated"
        assert body["deactivated_at"] is not None
        refused = await client.get(f"{API}/account", headers=member_headers)
        assert refused.status_code == 401
        assert code(refused) == "invalid_token"
        assert not await console_works(member_browser)

    async with browser(app) as fresh_browser:
        again = await console_login(fresh_browser, member.email)
        assert again.status_code == 401  # as for a wrong password (tests/auth/test_sessions.py)
        assert SESSION not in fresh_browser.cookies

    after = await seat_table(client, o.headers)
    assert (after["copilot"]["used"], after["console"]["used"]) == (0, 1)
    assert (after["copilot"]["available"], after["console"]["available"]) == (25, 24)
    kept = await get_user(client, o.headers, member.id)
    assert (kept["email"], kept["name"], kept["status"]) == (member.email, "Mia", "deactivated")
    assert await emails(client, o.headers, status="deactivated") == [member.email]
    [entry] = await audit_entries(db, o.id, "user.deactivated")
    assert (entry.actor_id, entry.target_id) == (o.owner.id, str(member.id))
    assert set(entry.after["seats_freed"]) == {"copilot", "console"}


async def test_reactivation_restores_the_token_and_retakes_the_seats(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    member = await person(db, o.account, seats=["copilot"])
    member_headers = await token_of(db, member)
    assert (await client.post(f"{API}/users/{member.id}/deactivate", headers=o.headers)).status_code == 200
    assert (await seat_table(client, o.headers))["copilot"]["used"] == 0

    response = await client.post(f"{API}/users/{member.id}/reactivate", headers=o.headers)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["deactivated_at"]) == ("active", None)
    assert body["seats"] == ["copilot"]
    assert body["seats_not_available"] == []
    assert (await client.get(f"{API}/account", headers=member_headers)).status_code == 200
    assert (await seat_table(client, o.headers))["copilot"]["used"] == 1
    [entry] = await audit_entries(db, o.id, "user.reactivated")
    assert entry.target_id == str(member.id)
    assert entry.after == {"status": "active", "seats": ["copilot"], "seats_not_available": []}


async def test_reactivation_reports_seats_filled_in_the_meantime(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)  # the owner holds a console seat
    member = await person(db, o.account, seats=["copilot", "console"])
    newcomer = await person(db, o.account)
    assert (await client.post(f"{API}/users/{member.id}/deactivate", headers=o.headers)).status_code == 200
    taken = await client.patch(f"{API}/users/{newcomer.id}", json={"seats": ["console"]}, headers=o.headers)
    assert taken.status_code == 200
    await set_limits(client, o.headers, console=2)

    response = await client.post(f"{API}/users/{member.id}/reactivate", headers=o.headers)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "active"
    assert body["seats_not_available"] == ["console"]
    assert body["seats"] == ["copilot"]
    seats = await seat_table(client, o.headers)
    assert (seats["console"]["used"], seats["console"]["limit"]) == (2, 2)
    assert seats["copilot"]["used"] == 1
    assert (await get_user(client, o.headers, member.id))["seats"] == ["copilot"]


async def test_deactivation_and_reactivation_refusals_change_nothing(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    admin = await person(db, o.account, role=UserRole.admin)
    admin_headers = await token_of(db, admin)
    second_owner = await person(db, o.account, role=UserRole.owner)
    active = await person(db, o.account)
    gone = await person(db, o.account, status=UserStatus.deactivated)
    before = await audit_actions(db, o.id)

    cases = {
        "self": await client.post(f"{API}/users/{admin.id}/deactivate", headers=admin_headers),
        "owner_by_admin": await client.post(
            f"{API}/users/{second_owner.id}/deactivate", headers=admin_headers
        ),
        "twice": await client.post(f"{API}/users/{gone.id}/deactivate", headers=o.headers),
        "active": await client.post(f"{API}/users/{active.id}/reactivate", headers=o.headers),
        "unknown": await client.post(f"{API}/users/{uuid.uuid4()}/deactivate", headers=o.headers),
    }

    assert {k: (r.status_code, code(r)) for k, r in cases.items()} == {
        "self": (403, "own_account"),
        "owner_by_admin": (403, "owner_role_restricted"),
        "twice": (409, "already_deactivated"),
        "active": (409, "already_active"),
        "unknown": (404, "user_not_found"),
    }
    assert (await get_user(client, o.headers, second_owner.id))["status"] == "active"
    assert (await get_user(client, o.headers, admin.id))["status"] == "active"
    assert await audit_actions(db, o.id) == before


# ---- seats ----


async def test_seats_show_limit_used_reserved_and_available(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)  # the owner holds a console seat
    await person(db, o.account, seats=["copilot", "compute"])
    await person(db, o.account, seats=["copilot"], status=UserStatus.deactivated)

    response = await client.get(f"{API}/seats", headers=o.headers)

    assert response.status_code == 200
    assert response.json()["items"] == [
        {"product": "copilot", "limit": 25, "used": 1, "reserved": 0, "available": 24},
        {"product": "console", "limit": 25, "used": 1, "reserved": 0, "available": 24},
        {"product": "compute", "limit": 25, "used": 1, "reserved": 0, "available": 24},
    ]


async def test_seat_changes_are_applied_and_audited(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    member = await person(db, o.account, seats=["copilot"])

    response = await client.patch(
        f"{API}/users/{member.id}", json={"seats": ["console", "compute"]}, headers=o.headers
    )

    assert response.status_code == 200
    assert response.json()["seats"] == ["console", "compute"]
    seats = await seat_table(client, o.headers)
    assert [seats[p]["used"] for p in ("copilot", "console", "compute")] == [0, 2, 1]
    [entry] = await audit_entries(db, o.id, "user.seats_changed")
    assert entry.target_id == str(member.id)
    assert (entry.before, entry.after) == ({"seats": ["copilot"]}, {"seats": ["console", "compute"]})


async def test_a_seat_beyond_the_limit_is_refused_and_nothing_changes(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    await person(db, o.account, seats=["copilot"])
    bob = await person(db, o.account, name="Bob")
    await set_limits(client, o.headers, copilot=1)
    before = await audit_actions(db, o.id)

    response = await client.patch(
        f"{API}/users/{bob.id}", json={"name": "Robert", "seats": ["copilot"]}, headers=o.headers
    )

    assert response.status_code == 409
    assert code(response) == "seat_limit_reached"
    unchanged = await get_user(client, o.headers, bob.id)
    assert (unchanged["name"], unchanged["seats"]) == ("Bob", [])
    assert (await seat_table(client, o.headers))["copilot"]["used"] == 1
    assert await audit_actions(db, o.id) == before


async def test_two_users_taking_the_last_seat_at_once_get_one_seat(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    first = await person(db, o.account)
    second = await person(db, o.account)
    await set_limits(client, o.headers, copilot=1)

    responses = await asyncio.gather(
        client.patch(f"{API}/users/{first.id}", json={"seats": ["copilot"]}, headers=o.headers),
        client.patch(f"{API}/users/{second.id}", json={"seats": ["copilot"]}, headers=o.headers),
    )

    seats = await seat_table(client, o.headers)
    assert seats["copilot"]["used"] == 1, f"responses {[r.status_code for r in responses]}"
    assert sorted(r.status_code for r in responses) == [200, 409]


async def test_seat_limits_change_but_never_below_usage(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)  # the owner holds a console seat
    await person(db, o.account, seats=["console"])
    before = await audit_actions(db, o.id)

    below = await client.patch(f"{API}/seats", json={"copilot": 5, "console": 1}, headers=o.headers)

    assert below.status_code == 409
    assert code(below) == "seat_limit_below_usage"
    seats = await seat_table(client, o.headers)
    assert (seats["copilot"]["limit"], seats["console"]["limit"]) == (25, 25)
    assert await audit_actions(db, o.id) == before

    ok = await client.patch(f"{API}/seats", json={"console": 2, "compute": 0}, headers=o.headers)

    assert ok.status_code == 200
    items = {i["product"]: i for i in ok.json()["items"]}
    assert (items["console"]["limit"], items["console"]["available"]) == (2, 0)
    assert (items["compute"]["limit"], items["copilot"]["limit"]) == (0, 25)
    [entry] = await audit_entries(db, o.id, "seats.limits_changed")
    assert (entry.before, entry.after) == ({"console": 25, "compute": 25}, {"console": 2, "compute": 0})


async def test_negative_seat_limits_are_invalid(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)

    response = await client.patch(f"{API}/seats", json={"copilot": -1}, headers=o.headers)

    assert response.status_code == 422
    assert (await seat_table(client, o.headers))["copilot"]["limit"] == 25


# ---- other fields of PATCH /users/{id} ----


async def test_patch_moves_to_a_group_and_renames(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    member = await person(db, o.account, name="Old Name")
    sales = await make_group(db, o.account, "Sales")

    response = await client.patch(
        f"{API}/users/{member.id}", json={"group_id": str(sales.id), "name": "New Name"}, headers=o.headers
    )

    assert response.status_code == 200
    assert (response.json()["group_id"], response.json()["name"]) == (str(sales.id), "New Name")
    actions = await audit_actions(db, o.id)
    assert actions[-2:] == ["user.renamed", "user.group_changed"]
    [moved] = await audit_entries(db, o.id, "user.group_changed")
    assert (moved.before, moved.after) == ({"group": "Default"}, {"group": "Sales"})


async def test_an_unknown_group_is_refused(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    other = await org(db, name="Other")
    foreign = await make_group(db, other.account, "Foreign")
    member = await person(db, o.account)
    default = await default_group(db, o.id)
    before = await audit_actions(db, o.id)

    for group_id in (uuid.uuid4(), foreign.id):
        response = await client.patch(
            f"{API}/users/{member.id}", json={"group_id": str(group_id)}, headers=o.headers
        )
        assert response.status_code == 422
        assert code(response) == "unknown_group"
        assert response.json()["error"]["details"][0]["field"] == "group_id"

    assert (await get_user(client, o.headers, member.id))["group_id"] == str(default.id)
    assert await audit_actions(db, o.id) == before


@pytest.mark.parametrize(
    "body", [{"role": "superuser"}, {"seats": ["gpu"]}, {"email": "x@example.com"}, {"name": "x" * 201}]
)
async def test_invalid_patch_bodies_are_refused(
    client: AsyncClient, db: AsyncSession, body: dict[str, Any]
) -> None:
    o = await org(db)
    member = await person(db, o.account)

    response = await client.patch(f"{API}/users/{member.id}", json=body, headers=o.headers)

    assert response.status_code == 422
    assert (await get_user(client, o.headers, member.id))["email"] == member.email


# ---- who may call ----


async def test_a_member_token_is_refused_on_every_admin_endpoint(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    member = await person(db, o.account)
    other = await person(db, o.account)
    headers = await token_of(db, member)
    group = (await client.post(f"{API}/groups", json={"name": "Sales"}, headers=o.headers)).json()
    invitation = (
        await client.post(f"{API}/invitations", json={"email": "new@example.com"}, headers=o.headers)
    ).json()
    project = (await client.post(f"{API}/projects", json={"name": "Apollo"}, headers=o.headers)).json()
    before = await audit_actions(db, o.id)

    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/users", None),
        ("GET", f"/users/{member.id}", None),
        ("GET", f"/users/{other.id}", None),
        ("PATCH", f"/users/{other.id}", {"role": "admin"}),
        ("PATCH", f"/users/{member.id}", {"role": "admin"}),
        ("POST", f"/users/{other.id}/deactivate", None),
        ("POST", f"/users/{other.id}/reactivate", None),
        ("GET", "/seats", None),
        ("PATCH", "/seats", {"copilot": 100}),
        ("GET", "/invitations", None),
        ("POST", "/invitations", {"email": "someone@example.com"}),
        ("POST", f"/invitations/{invitation['id']}/resend", None),
        ("DELETE", f"/invitations/{invitation['id']}", None),
        ("GET", "/groups", None),
        ("POST", "/groups", {"name": "Mine"}),
        ("GET", f"/groups/{group['id']}", None),
        ("PATCH", f"/groups/{group['id']}", {"name": "Renamed"}),
        ("DELETE", f"/groups/{group['id']}", None),
        ("POST", f"/groups/{group['id']}/members", {"user_ids": [str(member.id)]}),
        ("POST", "/projects", {"name": "Mine"}),
        ("DELETE", f"/projects/{project['id']}", None),
    ]
    statuses = {}
    for method, path, body in calls:
        response = await client.request(method, f"{API}{path}", json=body, headers=headers)
        statuses[f"{method} {path}"] = (response.status_code, code(response))

    assert statuses == {key: (403, "not_permitted") for key in statuses}
    assert await audit_actions(db, o.id) == before
    assert (await get_user(client, o.headers, member.id))["role"] == "member"
    assert (await client.get(f"{API}/groups/{group['id']}", headers=o.headers)).status_code == 200


async def test_requests_without_a_token_are_unauthenticated(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)

    for method, path in (("GET", "/users"), ("GET", "/seats"), ("POST", f"/users/{o.owner.id}/deactivate")):
        response = await client.request(method, f"{API}{path}")
        assert (response.status_code, code(response)) == (401, "missing_token")


async def test_another_accounts_ids_are_not_found(client: AsyncClient, db: AsyncSession) -> None:
    theirs = await org(db, name="Theirs")
    their_user = await person(db, theirs.account)
    their_group = (await client.post(f"{API}/groups", json={"name": "Sales"}, headers=theirs.headers)).json()
    their_invitation = (
        await client.post(f"{API}/invitations", json={"email": "new@example.com"}, headers=theirs.headers)
    ).json()
    their_project = (
        await client.post(f"{API}/projects", json={"name": "Apollo"}, headers=theirs.headers)
    ).json()
    ours = await org(db, name="Ours")
    our_group = (await client.post(f"{API}/groups", json={"name": "Ours"}, headers=ours.headers)).json()
    our_project = (await client.post(f"{API}/projects", json={"name": "Ours"}, headers=ours.headers)).json()
    before = await audit_actions(db, theirs.id)

    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/users/{their_user.id}", None),
        ("PATCH", f"/users/{their_user.id}", {"name": "Mine now"}),
        ("POST", f"/users/{their_user.id}/deactivate", None),
        ("POST", f"/users/{their_user.id}/reactivate", None),
        ("GET", f"/groups/{their_group['id']}", None),
        ("PATCH", f"/groups/{their_group['id']}", {"name": "Mine now"}),
        ("DELETE", f"/groups/{their_group['id']}", None),
        ("POST", f"/groups/{their_group['id']}/members", {"user_ids": [str(ours.owner.id)]}),
        ("POST", f"/groups/{our_group['id']}/members", {"user_ids": [str(their_user.id)]}),
        ("POST", f"/invitations/{their_invitation['id']}/resend", None),
        ("DELETE", f"/invitations/{their_invitation['id']}", None),
        ("GET", f"/projects/{their_project['id']}", None),
        ("PATCH", f"/projects/{their_project['id']}", {"name": "Mine now"}),
        ("DELETE", f"/projects/{their_project['id']}", None),
        ("GET", f"/projects/{their_project['id']}/members", None),
        ("PUT", f"/projects/{their_project['id']}/members/{ours.owner.id}", {"role": "project_admin"}),
        ("PUT", f"/projects/{our_project['id']}/members/{their_user.id}", {"role": "project_member"}),
    ]
    statuses = {}
    for method, path, body in calls:
        response = await client.request(method, f"{API}{path}", json=body, headers=ours.headers)
        statuses[f"{method} {path}"] = response.status_code

    assert statuses == {key: 404 for key in statuses}
    assert their_user.email not in await emails(client, ours.headers, per_page=200)
    assert their_invitation["id"] not in {
        i["id"] for i in (await client.get(f"{API}/invitations", headers=ours.headers)).json()["items"]
    }
    assert their_group["id"] not in {
        g["id"] for g in (await client.get(f"{API}/groups", headers=ours.headers)).json()["items"]
    }
    assert their_project["id"] not in {
        p["id"] for p in (await client.get(f"{API}/projects", headers=ours.headers)).json()["items"]
    }
    assert await audit_actions(db, theirs.id) == before
    assert (await get_user(client, theirs.headers, their_user.id))["status"] == "active"
