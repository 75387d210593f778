"""The people REST API: /api/v1/users, and who may call the admin endpoints.

Search, filters, sort and pagination, the profile, group and name changes; a member's token is
refused everywhere; another account's ids are unknown. Roles, deactivation and seats are in
test_roles_seats_api.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.groups.models import Group
from cockpit.groups.repository import default_group
from cockpit.users.models import User, UserRole, UserStatus
from tests.users.people import (
    API,
    Org,
    audit_actions,
    audit_entries,
    code,
    emails,
    get_user,
    make_group,
    org,
    person,
    token_of,
)

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
