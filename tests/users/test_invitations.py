"""Invitations over the REST API: invite, list, resend, revoke, and accept with the one-time link."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.passwords import hash_password
from cockpit.groups.models import Group
from cockpit.groups.repository import default_group
from cockpit.invitations.models import Invitation
from cockpit.kit.time import utcnow
from cockpit.users.models import User, UserRole
from tests.builders import PASSWORD, bearer, console_login, make_account, make_token
from tests.users.people import audit_actions, audit_entries

API = "/api/v1"
PASSWORD_HASH = hash_password(PASSWORD)
NEW_PASSWORD = "a-brand-new-passphrase-42"


# ---- helpers ----


class Org:
    def __init__(self, account_id: uuid.UUID, owner: User, headers: dict[str, str]) -> None:
        self.id, self.owner, self.headers = account_id, owner, headers


async def org(db: AsyncSession, *, name: str = "Acme") -> Org:
    account, owner = await make_account(db, name=name)
    return Org(account.id, owner, bearer(await make_token(db, owner)))


async def person(
    db: AsyncSession,
    account_id: uuid.UUID,
    *,
    email: str | None = None,
    role: UserRole = UserRole.member,
    seats: Iterable[str] = (),
) -> User:
    user = User(
        account_id=account_id,
        email=email or f"user-{uuid.uuid4().hex[:8]}@example.com",
        name="Test User",
        role=role,
        password_hash=PASSWORD_HASH,
        group_id=(await default_group(db, account_id)).id,
        **{f"seat_{seat}": True for seat in seats},
    )
    db.add(user)
    await db.commit()
    return user


async def invite(client: AsyncClient, headers: dict[str, str], email: str, **body: Any) -> Response:
    return await client.post(f"{API}/invitations", json={"email": email, **body}, headers=headers)


async def invited(client: AsyncClient, headers: dict[str, str], email: str, **body: Any) -> dict[str, Any]:
    response = await invite(client, headers, email, **body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def link_token(accept_url: str) -> str:
    return accept_url.rsplit("/", 1)[1]


async def accept(
    client: AsyncClient, token: str, *, name: str = "Nina Newcomer", password: str = NEW_PASSWORD
) -> Response:
    return await client.post(
        f"{API}/invitations/accept", json={"token": token, "name": name, "password": password}
    )


def code(response: Response) -> str:
    return str(response.json()["error"]["code"])


async def listed(
    client: AsyncClient, headers: dict[str, str], status: str | None = None
) -> list[dict[str, Any]]:
    params = {"status": status} if status else {}
    response = await client.get(f"{API}/invitations", params=params, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def seat_table(client: AsyncClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = await client.get(f"{API}/seats", headers=headers)
    assert response.status_code == 200, response.text
    return {item["product"]: item for item in response.json()["items"]}


async def users_with_email(db: AsyncSession, email: str) -> int:
    await db.commit()
    count = await db.scalar(select(func.count()).select_from(User).where(User.email == email))
    await db.commit()
    return int(count or 0)


async def expire(db: AsyncSession, invitation_id: str) -> None:
    await db.commit()
    await db.execute(
        update(Invitation)
        .where(Invitation.id == uuid.UUID(invitation_id))
        .values(expires_at=utcnow() - timedelta(minutes=1))
    )
    await db.commit()


# ---- creating ----


async def test_an_invitation_comes_with_a_one_time_link(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    default = await default_group(db, o.id)

    response = await invite(
        client, o.headers, "  Nina.Newcomer@Example.COM ", name="Nina", seats=["copilot", "compute"]
    )

    assert response.status_code == 201
    body = response.json()
    assert body["accept_url"].startswith("http://testserver/invite/")
    assert len(link_token(body["accept_url"])) >= 32
    assert body["email"] == "nina.newcomer@example.com"
    assert (body["name"], body["role"], body["status"], body["sent_count"]) == (
        "Nina",
        "member",
        "pending",
        1,
    )
    assert body["group_id"] == str(default.id)
    assert body["seats"] == ["copilot", "compute"]
    assert body["accepted_at"] is None
    [item] = await listed(client, o.headers)
    assert item["id"] == body["id"]
    assert "accept_url" not in item
    [entry] = await audit_entries(db, o.id, "invitation.created")
    assert (entry.actor_id, entry.target_id) == (o.owner.id, body["id"])
    assert entry.after == {
        "email": "nina.newcomer@example.com", "role": "member", "group": "Default",
        "seats": ["copilot", "compute"],
    }  # fmt: skip


async def test_an_address_with_an_account_or_a_pending_invitation_is_refused(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    other = await org(db, name="Other")
    elsewhere = await person(db, other.id, email="elsewhere@example.com")
    await invited(client, o.headers, "pending@example.com")
    before = await audit_actions(db, o.id)

    cases = {
        "own_owner": await invite(client, o.headers, o.owner.email.upper()),
        "other_account_user": await invite(client, o.headers, elsewhere.email),
        "pending": await invite(client, o.headers, "Pending@Example.com"),
    }

    assert {k: (r.status_code, code(r)) for k, r in cases.items()} == {
        "own_owner": (409, "email_taken"),
        "other_account_user": (409, "email_taken"),
        "pending": (409, "already_invited"),
    }
    assert len(await listed(client, o.headers)) == 1
    assert await audit_actions(db, o.id) == before


@pytest.mark.parametrize(
    "email", ["no-at-sign.example.com", "two@@example.com", "spaces in@example.com", "ab"]
)
async def test_a_malformed_address_is_refused(client: AsyncClient, db: AsyncSession, email: str) -> None:
    o = await org(db)

    response = await invite(client, o.headers, email)

    assert response.status_code == 422
    assert code(response) in ("invalid_email", "invalid_input")
    assert response.json()["error"]["details"][0]["field"] == "email"
    assert await listed(client, o.headers) == []


async def test_only_owners_invite_owners(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    admin = await person(db, o.id, role=UserRole.admin)
    admin_headers = bearer(await make_token(db, admin))

    by_admin = await invite(client, admin_headers, "boss@example.com", role="owner")
    admin_invites_admin = await invite(client, admin_headers, "deputy@example.com", role="admin")
    by_owner = await invite(client, o.headers, "boss@example.com", role="owner")

    assert (by_admin.status_code, code(by_admin)) == (403, "owner_role_restricted")
    assert admin_invites_admin.status_code == 201
    assert by_owner.status_code == 201
    assert by_owner.json()["role"] == "owner"
    assert sorted(i["email"] for i in await listed(client, o.headers)) == [
        "boss@example.com", "deputy@example.com",
    ]  # fmt: skip


async def test_an_unknown_group_is_refused(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)

    response = await invite(client, o.headers, "x@example.com", group_id=str(uuid.uuid4()))

    assert (response.status_code, code(response)) == (422, "unknown_group")
    assert await listed(client, o.headers) == []


# ---- accepting ----


async def test_accepting_creates_the_user_who_can_then_sign_in(
    app: Any, client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    sales = Group(account_id=o.id, name="Sales", name_key="sales", description="")
    db.add(sales)
    await db.commit()
    invitation = await invited(
        client,
        o.headers,
        "nina@example.com",
        role="admin",
        group_id=str(sales.id),
        seats=["copilot", "console"],
    )
    reserved = await seat_table(client, o.headers)
    assert (reserved["copilot"]["reserved"], reserved["console"]["reserved"]) == (1, 1)

    response = await accept(client, link_token(invitation["accept_url"]), name="  Nina Newcomer ")

    assert response.status_code == 201
    body = response.json()
    assert (body["email"], body["account_id"]) == ("nina@example.com", str(o.id))
    user = (await client.get(f"{API}/users/{body['user_id']}", headers=o.headers)).json()
    assert (user["name"], user["role"], user["status"]) == ("Nina Newcomer", "admin", "active")
    assert user["group_id"] == str(sales.id)
    assert user["seats"] == ["copilot", "console"]
    seats = await seat_table(client, o.headers)
    assert (seats["copilot"]["used"], seats["copilot"]["reserved"]) == (1, 0)
    assert (seats["console"]["used"], seats["console"]["reserved"]) == (2, 0)
    [accepted] = await listed(client, o.headers, "accepted")
    assert accepted["id"] == invitation["id"]
    assert accepted["accepted_at"] is not None
    assert await listed(client, o.headers, "pending") == []

    transport = ASGITransport(app=app, client=("203.0.113.7", 50002))
    async with AsyncClient(transport=transport, base_url="http://testserver") as browser:
        signed_in = await console_login(browser, "nina@example.com", NEW_PASSWORD)
        assert signed_in.status_code == 303
        assert browser.cookies.get("cockpit_session")
        assert (await browser.get("/")).status_code == 200

    [entry] = await audit_entries(db, o.id, "invitation.accepted")
    assert (entry.actor_id, entry.target_id) == (uuid.UUID(body["user_id"]), invitation["id"])
    created = [e for e in await audit_entries(db, o.id, "user.created") if e.target_id == body["user_id"]]
    assert len(created) == 1


@pytest.mark.parametrize("password", ["short1", "no-digits-in-this-one", "123456789012345"])
async def test_a_weak_password_is_refused_and_the_invitation_stays_pending(
    client: AsyncClient, db: AsyncSession, password: str
) -> None:
    o = await org(db)
    invitation = await invited(client, o.headers, "nina@example.com")
    token = link_token(invitation["accept_url"])
    before = await audit_actions(db, o.id)

    response = await accept(client, token, password=password)

    assert response.status_code == 422
    assert code(response) == "weak_password"
    assert [i["id"] for i in await listed(client, o.headers, "pending")] == [invitation["id"]]
    assert await users_with_email(db, "nina@example.com") == 0
    assert await audit_actions(db, o.id) == before
    assert (await accept(client, token)).status_code == 201


async def test_a_used_link_is_refused(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    token = link_token((await invited(client, o.headers, "nina@example.com"))["accept_url"])
    assert (await accept(client, token)).status_code == 201

    again = await accept(client, token, password="another-passphrase-77")

    assert (again.status_code, code(again)) == (409, "invitation_used")
    assert await users_with_email(db, "nina@example.com") == 1


async def test_one_link_accepted_twice_at_once_creates_one_user(
    client: AsyncClient, db: AsyncSession, cheap_passwords: None
) -> None:
    """The password is hashed outside any lock or transaction, then the link is checked again under the
    account's lock: the second acceptance is refused (409), not a duplicate user or a 500."""
    o = await org(db)
    token = link_token((await invited(client, o.headers, "nina@example.com"))["accept_url"])

    responses = await asyncio.gather(*(accept(client, token) for _ in range(2)))

    assert sorted((r.status_code, r.json().get("error", {}).get("code")) for r in responses) == [
        (201, None),
        (409, "invitation_used"),
    ]
    assert await users_with_email(db, "nina@example.com") == 1


async def test_an_expired_link_is_refused(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    invitation = await invited(client, o.headers, "nina@example.com", seats=["copilot"])
    await expire(db, invitation["id"])

    response = await accept(client, link_token(invitation["accept_url"]))

    assert (response.status_code, code(response)) == (409, "invitation_expired")
    assert await users_with_email(db, "nina@example.com") == 0
    assert [i["id"] for i in await listed(client, o.headers, "expired")] == [invitation["id"]]
    assert await listed(client, o.headers, "pending") == []
    assert (await seat_table(client, o.headers))["copilot"]["reserved"] == 0


async def test_a_revoked_link_is_invalid(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    invitation = await invited(client, o.headers, "nina@example.com", seats=["copilot"])

    revoked = await client.delete(f"{API}/invitations/{invitation['id']}", headers=o.headers)

    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert (await seat_table(client, o.headers))["copilot"]["reserved"] == 0
    response = await accept(client, link_token(invitation["accept_url"]))
    assert (response.status_code, code(response)) == (404, "invitation_invalid")
    assert await users_with_email(db, "nina@example.com") == 0
    twice = await client.delete(f"{API}/invitations/{invitation['id']}", headers=o.headers)
    assert (twice.status_code, code(twice)) == (409, "invitation_closed")
    resend = await client.post(f"{API}/invitations/{invitation['id']}/resend", headers=o.headers)
    assert (resend.status_code, code(resend)) == (409, "invitation_closed")
    assert [i["id"] for i in await listed(client, o.headers, "revoked")] == [invitation["id"]]
    [entry] = await audit_entries(db, o.id, "invitation.revoked")
    assert entry.target_id == invitation["id"]
    # The address can be invited again.
    assert (await invite(client, o.headers, "nina@example.com")).status_code == 201


@pytest.mark.parametrize("token", ["not-a-real-token", "x" * 200])
async def test_an_unknown_link_is_invalid(client: AsyncClient, db: AsyncSession, token: str) -> None:
    response = await accept(client, token)

    assert (response.status_code, code(response)) == (404, "invitation_invalid")


async def test_the_first_acceptance_wins_when_two_accounts_invite_the_same_person(
    client: AsyncClient, db: AsyncSession
) -> None:
    first = await org(db, name="First")
    second = await org(db, name="Second")
    one = await invited(client, first.headers, "nina@example.com")
    two = await invited(client, second.headers, "nina@example.com")
    assert (await accept(client, link_token(one["accept_url"]))).status_code == 201

    response = await accept(client, link_token(two["accept_url"]))

    assert (response.status_code, code(response)) == (409, "email_taken")
    assert [i["id"] for i in await listed(client, second.headers, "pending")] == [two["id"]]


# ---- resending ----


async def test_resend_issues_a_new_link_and_the_old_one_stops_working(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    invitation = await invited(client, o.headers, "nina@example.com")

    response = await client.post(f"{API}/invitations/{invitation['id']}/resend", headers=o.headers)

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == invitation["id"]
    assert body["sent_count"] == 2
    assert body["status"] == "pending"
    assert body["accept_url"] != invitation["accept_url"]
    assert body["accept_url"].startswith("http://testserver/invite/")
    old = await accept(client, link_token(invitation["accept_url"]))
    assert (old.status_code, code(old)) == (404, "invitation_invalid")
    assert (await accept(client, link_token(body["accept_url"]))).status_code == 201
    [entry] = await audit_entries(db, o.id, "invitation.resent")
    assert entry.target_id == invitation["id"]
    assert entry.after["sent_count"] == 2


async def test_resending_an_expired_invitation_renews_it(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    invitation = await invited(client, o.headers, "nina@example.com")
    await expire(db, invitation["id"])

    response = await client.post(f"{API}/invitations/{invitation['id']}/resend", headers=o.headers)

    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert (await accept(client, link_token(response.json()["accept_url"]))).status_code == 201


async def test_an_accepted_invitation_cannot_be_resent(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    invitation = await invited(client, o.headers, "nina@example.com")
    assert (await accept(client, link_token(invitation["accept_url"]))).status_code == 201

    response = await client.post(f"{API}/invitations/{invitation['id']}/resend", headers=o.headers)

    assert (response.status_code, code(response)) == (409, "invitation_closed")


# ---- seats ----


async def test_pending_invitations_reserve_seats_that_the_limit_counts(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    member = await person(db, o.id)
    invitation = await invited(client, o.headers, "nina@example.com", seats=["copilot"])
    seats = await seat_table(client, o.headers)
    assert (seats["copilot"]["used"], seats["copilot"]["reserved"], seats["copilot"]["available"]) == (
        0,
        1,
        24,
    )
    assert (await client.patch(f"{API}/seats", json={"copilot": 1}, headers=o.headers)).status_code == 200
    before = await audit_actions(db, o.id)

    another = await invite(client, o.headers, "omar@example.com", seats=["copilot"])
    to_member = await client.patch(f"{API}/users/{member.id}", json={"seats": ["copilot"]}, headers=o.headers)
    lower = await client.patch(f"{API}/seats", json={"copilot": 0}, headers=o.headers)

    assert (another.status_code, code(another)) == (409, "seat_limit_reached")
    assert (to_member.status_code, code(to_member)) == (409, "seat_limit_reached")
    assert (lower.status_code, code(lower)) == (409, "seat_limit_below_usage")
    assert [i["email"] for i in await listed(client, o.headers)] == ["nina@example.com"]
    assert await audit_actions(db, o.id) == before
    # The reservation becomes the invitee's seat even though the limit is reached.
    assert (await accept(client, link_token(invitation["accept_url"]))).status_code == 201
    seats = await seat_table(client, o.headers)
    assert (seats["copilot"]["used"], seats["copilot"]["reserved"], seats["copilot"]["available"]) == (
        1,
        0,
        0,
    )


async def test_resending_an_expired_invitation_cannot_overbook_seats(
    client: AsyncClient, db: AsyncSession
) -> None:
    """An expired invitation reserves nothing; renewing it must find a free seat like a new one."""
    o = await org(db)
    await client.patch(f"{API}/seats", json={"copilot": 1}, headers=o.headers)
    stale = await invited(client, o.headers, "nina@example.com", seats=["copilot"])
    await expire(db, stale["id"])
    await invited(client, o.headers, "omar@example.com", seats=["copilot"])  # takes the freed seat

    response = await client.post(f"{API}/invitations/{stale['id']}/resend", headers=o.headers)

    copilot = (await seat_table(client, o.headers))["copilot"]
    assert copilot["used"] + copilot["reserved"] <= copilot["limit"], (
        f"resend answered {response.status_code}"
    )
    assert (response.status_code, code(response)) == (409, "seat_limit_reached")


# ---- listing ----


async def test_list_filters_by_status_and_pages(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    pending = await invited(client, o.headers, "pending@example.com")
    accepted = await invited(client, o.headers, "accepted@example.com")
    revoked = await invited(client, o.headers, "revoked@example.com")
    expired = await invited(client, o.headers, "expired@example.com")
    assert (await accept(client, link_token(accepted["accept_url"]))).status_code == 201
    assert (await client.delete(f"{API}/invitations/{revoked['id']}", headers=o.headers)).status_code == 200
    await expire(db, expired["id"])

    by_status = {
        s: [i["id"] for i in await listed(client, o.headers, s)]
        for s in ("pending", "accepted", "revoked", "expired")
    }

    assert by_status == {
        "pending": [pending["id"]], "accepted": [accepted["id"]],
        "revoked": [revoked["id"]], "expired": [expired["id"]],
    }  # fmt: skip
    everything = await client.get(f"{API}/invitations", params={"per_page": 3}, headers=o.headers)
    assert everything.json()["meta"] == {"page": 1, "per_page": 3, "total": 4, "pages": 2}
    assert [i["status"] for i in await listed(client, o.headers)].count("pending") == 1
    bad = await client.get(f"{API}/invitations", params={"status": "lost"}, headers=o.headers)
    assert bad.status_code == 422
