"""Groups (/api/v1/groups) and projects with their members (/api/v1/projects) over the REST API."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.passwords import hash_password
from cockpit.groups.repository import default_group
from cockpit.users.models import User, UserRole
from tests.builders import PASSWORD, bearer, make_account, make_token
from tests.users.people import audit_actions, audit_entries

API = "/api/v1"
PASSWORD_HASH = hash_password(PASSWORD)


# ---- helpers ----


class Org:
    def __init__(self, account_id: uuid.UUID, owner: User, headers: dict[str, str]) -> None:
        self.id, self.owner, self.headers = account_id, owner, headers


async def org(db: AsyncSession, *, name: str = "Acme") -> Org:
    account, owner = await make_account(db, name=name)
    return Org(account.id, owner, bearer(await make_token(db, owner)))


async def person(
    db: AsyncSession, account_id: uuid.UUID, *, role: UserRole = UserRole.member, email: str | None = None
) -> User:
    user = User(
        account_id=account_id,
        email=email or f"user-{uuid.uuid4().hex[:8]}@example.com",
        name="Test User",
        role=role,
        password_hash=PASSWORD_HASH,
        group_id=(await default_group(db, account_id)).id,
    )
    db.add(user)
    await db.commit()
    return user


async def person_with_token(
    db: AsyncSession, account_id: uuid.UUID, *, role: UserRole = UserRole.member
) -> tuple[User, dict[str, str]]:
    user = await person(db, account_id, role=role)
    return user, bearer(await make_token(db, user))


def code(response: Response) -> str:
    return str(response.json()["error"]["code"])


async def groups(client: AsyncClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = await client.get(f"{API}/groups", headers=headers)
    assert response.status_code == 200, response.text
    return {g["name"]: g for g in response.json()["items"]}


async def new_group(client: AsyncClient, headers: dict[str, str], name: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/groups", json={"name": name, **body}, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def group_of(client: AsyncClient, headers: dict[str, str], user_id: uuid.UUID) -> str:
    response = await client.get(f"{API}/users/{user_id}", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["group_id"])


async def new_project(client: AsyncClient, headers: dict[str, str], name: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/projects", json={"name": name, **body}, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def put_member(
    client: AsyncClient, headers: dict[str, str], project_id: str, user_id: uuid.UUID, **body: Any
) -> Response:
    return await client.put(f"{API}/projects/{project_id}/members/{user_id}", json=body, headers=headers)


# ---- groups ----


async def test_every_account_has_its_own_default_group(client: AsyncClient, db: AsyncSession) -> None:
    first = await org(db, name="First")
    second = await org(db, name="Second")
    await person(db, first.id)

    mine, theirs = await groups(client, first.headers), await groups(client, second.headers)

    assert list(mine) == ["Default"]
    assert list(theirs) == ["Default"]
    assert mine["Default"]["is_default"] is True
    assert (mine["Default"]["member_count"], theirs["Default"]["member_count"]) == (2, 1)
    assert mine["Default"]["id"] != theirs["Default"]["id"]
    assert await group_of(client, first.headers, first.owner.id) == mine["Default"]["id"]


async def test_the_default_group_cannot_be_renamed_or_deleted(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    default = (await groups(client, o.headers))["Default"]
    before = await audit_actions(db, o.id)

    renamed = await client.patch(
        f"{API}/groups/{default['id']}", json={"name": "Everyone"}, headers=o.headers
    )
    deleted = await client.delete(f"{API}/groups/{default['id']}", headers=o.headers)

    assert (renamed.status_code, code(renamed)) == (403, "default_group")
    assert (deleted.status_code, code(deleted)) == (403, "default_group")
    assert list(await groups(client, o.headers)) == ["Default"]
    assert await audit_actions(db, o.id) == before
    # Its description may change.
    described = await client.patch(
        f"{API}/groups/{default['id']}", json={"description": "Everybody else"}, headers=o.headers
    )
    assert described.status_code == 200
    assert (described.json()["name"], described.json()["description"]) == ("Default", "Everybody else")


async def test_create_a_group(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)

    response = await client.post(
        f"{API}/groups", json={"name": "  Sales ", "description": "The sales team"}, headers=o.headers
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["description"], body["is_default"], body["member_count"]) == (
        "Sales", "The sales team", False, 0,
    )  # fmt: skip
    assert list(await groups(client, o.headers)) == ["Default", "Sales"]
    fetched = await client.get(f"{API}/groups/{body['id']}", headers=o.headers)
    assert fetched.json()["name"] == "Sales"
    [entry] = await audit_entries(db, o.id, "group.created")
    assert (entry.target_id, entry.after) == (body["id"], {"name": "Sales", "description": "The sales team"})


@pytest.mark.parametrize("name", ["sales", "SALES", " Sales ", "default", "DEFAULT"])
async def test_group_names_are_unique_regardless_of_case(
    client: AsyncClient, db: AsyncSession, name: str
) -> None:
    o = await org(db)
    await new_group(client, o.headers, "Sales")
    before = await audit_actions(db, o.id)

    response = await client.post(f"{API}/groups", json={"name": name}, headers=o.headers)

    assert (response.status_code, code(response)) == (409, "group_name_taken")
    assert list(await groups(client, o.headers)) == ["Default", "Sales"]
    assert await audit_actions(db, o.id) == before


async def test_group_names_are_per_account_and_renames_are_checked(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    other = await org(db, name="Other")
    sales = await new_group(client, o.headers, "Sales")
    await new_group(client, o.headers, "Support")

    assert (
        await client.post(f"{API}/groups", json={"name": "Sales"}, headers=other.headers)
    ).status_code == 201
    clash = await client.patch(f"{API}/groups/{sales['id']}", json={"name": "support"}, headers=o.headers)
    assert (clash.status_code, code(clash)) == (409, "group_name_taken")
    recased = await client.patch(f"{API}/groups/{sales['id']}", json={"name": "SALES"}, headers=o.headers)
    assert (recased.status_code, recased.json()["name"]) == (200, "SALES")
    renamed = await client.patch(f"{API}/groups/{sales['id']}", json={"name": "Revenue"}, headers=o.headers)
    assert (renamed.status_code, renamed.json()["name"]) == (200, "Revenue")
    assert list(await groups(client, o.headers)) == ["Default", "Revenue", "Support"]
    blank = await client.post(f"{API}/groups", json={"name": "   "}, headers=o.headers)
    assert blank.status_code == 422
    updates = await audit_entries(db, o.id, "group.updated")
    assert [(e.target_id, e.before, e.after) for e in updates] == [
        (sales["id"], {"name": "Sales"}, {"name": "SALES"}),
        (sales["id"], {"name": "SALES"}, {"name": "Revenue"}),
    ]


async def test_members_move_between_groups(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    alice, bob = await person(db, o.id), await person(db, o.id)
    sales = await new_group(client, o.headers, "Sales")
    support = await new_group(client, o.headers, "Support")

    response = await client.post(
        f"{API}/groups/{sales['id']}/members",
        json={"user_ids": [str(alice.id), str(bob.id)]},
        headers=o.headers,
    )

    assert response.status_code == 200
    assert response.json()["member_count"] == 2
    assert await group_of(client, o.headers, alice.id) == sales["id"]
    listed = await client.get(f"{API}/users", params={"group_id": sales["id"]}, headers=o.headers)
    assert sorted(u["id"] for u in listed.json()["items"]) == sorted([str(alice.id), str(bob.id)])

    moved = await client.post(
        f"{API}/groups/{support['id']}/members", json={"user_ids": [str(bob.id)]}, headers=o.headers
    )

    assert moved.json()["member_count"] == 1
    counts = {name: g["member_count"] for name, g in (await groups(client, o.headers)).items()}
    assert counts == {"Default": 1, "Sales": 1, "Support": 1}
    changes = [(e.target_id, e.before, e.after) for e in await audit_entries(db, o.id, "user.group_changed")]
    # One entry per user moved (in no particular order), then Bob's second move.
    assert sorted(changes[:2], key=lambda c: str(c[0])) == sorted(
        [
            (str(alice.id), {"group": "Default"}, {"group": "Sales"}),
            (str(bob.id), {"group": "Default"}, {"group": "Sales"}),
        ],
        key=lambda c: str(c[0]),
    )
    assert changes[2:] == [(str(bob.id), {"group": "Sales"}, {"group": "Support"})]


async def test_adding_an_unknown_user_moves_nobody(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    alice = await person(db, o.id)
    sales = await new_group(client, o.headers, "Sales")
    before = await audit_actions(db, o.id)

    unknown = await client.post(
        f"{API}/groups/{sales['id']}/members",
        json={"user_ids": [str(alice.id), str(uuid.uuid4())]},
        headers=o.headers,
    )
    empty = await client.post(f"{API}/groups/{sales['id']}/members", json={"user_ids": []}, headers=o.headers)

    assert (unknown.status_code, code(unknown)) == (404, "user_not_found")
    assert empty.status_code == 422
    assert (await groups(client, o.headers))["Sales"]["member_count"] == 0
    assert await audit_actions(db, o.id) == before


async def test_deleting_a_group_moves_members_and_invitations_to_default(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    alice, bob = await person(db, o.id), await person(db, o.id)
    sales = await new_group(client, o.headers, "Sales")
    await client.post(
        f"{API}/groups/{sales['id']}/members",
        json={"user_ids": [str(alice.id), str(bob.id)]},
        headers=o.headers,
    )
    invitation = await client.post(
        f"{API}/invitations", json={"email": "new@example.com", "group_id": sales["id"]}, headers=o.headers
    )
    assert invitation.json()["group_id"] == sales["id"]
    default_id = (await groups(client, o.headers))["Default"]["id"]

    response = await client.delete(f"{API}/groups/{sales['id']}", headers=o.headers)

    assert response.status_code == 200
    assert response.json() == {"id": sales["id"], "members_moved_to_default": 2}
    assert (await client.get(f"{API}/groups/{sales['id']}", headers=o.headers)).status_code == 404
    remaining = await groups(client, o.headers)
    assert list(remaining) == ["Default"]
    assert remaining["Default"]["member_count"] == 3
    assert await group_of(client, o.headers, alice.id) == default_id
    assert await group_of(client, o.headers, bob.id) == default_id
    [pending] = (await client.get(f"{API}/invitations", headers=o.headers)).json()["items"]
    assert pending["group_id"] == default_id
    [entry] = await audit_entries(db, o.id, "group.deleted")
    assert (entry.target_id, entry.before) == (sales["id"], {"name": "Sales", "members": 2})
    # The name is free again.
    assert (await client.post(f"{API}/groups", json={"name": "Sales"}, headers=o.headers)).status_code == 201


async def test_an_unknown_group_is_not_found(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    missing = uuid.uuid4()

    for method, path, body in (
        ("GET", f"/groups/{missing}", None),
        ("PATCH", f"/groups/{missing}", {"name": "X"}),
        ("DELETE", f"/groups/{missing}", None),
        ("POST", f"/groups/{missing}/members", {"user_ids": [str(o.owner.id)]}),
    ):
        response = await client.request(method, f"{API}{path}", json=body, headers=o.headers)
        assert (response.status_code, code(response)) == (404, "group_not_found"), path


# ---- projects: account admins ----


async def test_admins_create_read_update_and_delete_projects(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    _, admin = await person_with_token(db, o.id, role=UserRole.admin)

    created = await client.post(
        f"{API}/projects", json={"name": " Apollo ", "description": "Moon"}, headers=admin
    )
    assert created.status_code == 201
    project = created.json()
    assert (project["name"], project["description"], project["member_count"]) == ("Apollo", "Moon", 0)
    duplicate = await client.post(f"{API}/projects", json={"name": "APOLLO"}, headers=admin)
    assert (duplicate.status_code, code(duplicate)) == (409, "project_name_taken")
    assert (await client.get(f"{API}/projects/{project['id']}", headers=admin)).json()["name"] == "Apollo"

    changed = await client.patch(
        f"{API}/projects/{project['id']}",
        json={"name": "Artemis", "description": "Moon again"},
        headers=admin,
    )
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["description"]) == ("Artemis", "Moon again")
    listed = (await client.get(f"{API}/projects", headers=o.headers)).json()["items"]
    assert [p["name"] for p in listed] == ["Artemis"]

    deleted = await client.delete(f"{API}/projects/{project['id']}", headers=admin)
    assert deleted.status_code == 204
    gone = await client.get(f"{API}/projects/{project['id']}", headers=admin)
    assert (gone.status_code, code(gone)) == (404, "project_not_found")
    assert (await client.get(f"{API}/projects", headers=admin)).json()["items"] == []
    actions = [a for a in await audit_actions(db, o.id) if a.startswith("project.")]
    assert actions == ["project.created", "project.updated", "project.deleted"]


async def test_put_member_adds_then_changes_and_delete_removes(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    member = await person(db, o.id)
    project = await new_project(client, o.headers, "Apollo")

    added = await put_member(client, o.headers, project["id"], member.id, role="project_member")
    assert added.status_code == 201
    assert (added.json()["user_id"], added.json()["email"]) == (str(member.id), member.email)
    assert (added.json()["role"], added.json()["all_assistants"]) == ("project_member", False)

    changed = await put_member(
        client, o.headers, project["id"], member.id, role="project_admin", all_assistants=True
    )
    assert changed.status_code == 200
    assert (changed.json()["role"], changed.json()["all_assistants"]) == ("project_admin", True)
    same = await put_member(
        client, o.headers, project["id"], member.id, role="project_admin", all_assistants=True
    )
    assert same.status_code == 200

    fetched = await client.get(f"{API}/projects/{project['id']}/members/{member.id}", headers=o.headers)
    assert fetched.json()["role"] == "project_admin"
    members = await client.get(f"{API}/projects/{project['id']}/members", headers=o.headers)
    assert [m["user_id"] for m in members.json()["items"]] == [str(member.id)]
    assert (await client.get(f"{API}/projects/{project['id']}", headers=o.headers)).json()[
        "member_count"
    ] == 1

    removed = await client.delete(f"{API}/projects/{project['id']}/members/{member.id}", headers=o.headers)
    assert removed.status_code == 204
    missing = await client.get(f"{API}/projects/{project['id']}/members/{member.id}", headers=o.headers)
    assert (missing.status_code, code(missing)) == (404, "project_member_not_found")
    again = await client.delete(f"{API}/projects/{project['id']}/members/{member.id}", headers=o.headers)
    assert again.status_code == 404

    [entry] = await audit_entries(db, o.id, "project.member_added")
    assert (entry.actor_id, entry.target_id) == (o.owner.id, str(member.id))
    assert entry.after == {"project": "Apollo", "role": "project_member", "all_assistants": False}
    actions = [a for a in await audit_actions(db, o.id) if a.startswith("project.member")]
    assert actions == ["project.member_added", "project.member_changed", "project.member_removed"]


async def test_put_member_refuses_unknown_users_and_roles(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    other = await org(db, name="Other")
    stranger = await person(db, other.id)
    member = await person(db, o.id)
    project = await new_project(client, o.headers, "Apollo")
    before = await audit_actions(db, o.id)

    foreign = await put_member(client, o.headers, project["id"], stranger.id, role="project_member")
    unknown = await put_member(client, o.headers, project["id"], uuid.uuid4(), role="project_member")
    bad_role = await put_member(client, o.headers, project["id"], member.id, role="owner")

    assert (foreign.status_code, code(foreign)) == (404, "user_not_found")
    assert (unknown.status_code, code(unknown)) == (404, "user_not_found")
    assert bad_role.status_code == 422
    assert (await client.get(f"{API}/projects/{project['id']}/members", headers=o.headers)).json()[
        "items"
    ] == []
    assert await audit_actions(db, o.id) == before


# ---- projects: project admins, project members and everyone else ----


async def test_a_project_admin_manages_members_of_their_project_only(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    lead, lead_headers = await person_with_token(db, o.id)  # an account member
    newcomer = await person(db, o.id)
    mine = await new_project(client, o.headers, "Apollo")
    theirs = await new_project(client, o.headers, "Gemini")
    assert (await put_member(client, o.headers, mine["id"], lead.id, role="project_admin")).status_code == 201

    added = await put_member(client, lead_headers, mine["id"], newcomer.id, role="project_member")
    assert added.status_code == 201
    promoted = await put_member(client, lead_headers, mine["id"], newcomer.id, role="project_admin")
    assert promoted.status_code == 200
    members = await client.get(f"{API}/projects/{mine['id']}/members", headers=lead_headers)
    assert sorted(m["user_id"] for m in members.json()["items"]) == sorted([str(lead.id), str(newcomer.id)])
    removed = await client.delete(f"{API}/projects/{mine['id']}/members/{newcomer.id}", headers=lead_headers)
    assert removed.status_code == 204

    deleted = await client.delete(f"{API}/projects/{mine['id']}", headers=lead_headers)
    assert deleted.status_code == 403
    assert (await client.get(f"{API}/projects/{mine['id']}", headers=o.headers)).status_code == 200

    other_get = await client.get(f"{API}/projects/{theirs['id']}", headers=lead_headers)
    other_put = await put_member(client, lead_headers, theirs["id"], newcomer.id, role="project_member")
    assert (other_get.status_code, code(other_get)) == (404, "project_not_found")
    assert (other_put.status_code, code(other_put)) == (404, "project_not_found")
    assert (await client.get(f"{API}/projects/{theirs['id']}/members", headers=o.headers)).json()[
        "items"
    ] == []

    entries = await audit_entries(db, o.id, "project.member_added")
    assert [(e.actor_id, e.target_id) for e in entries] == [
        (o.owner.id, str(lead.id)),
        (lead.id, str(newcomer.id)),
    ]


async def test_a_project_member_sees_the_project_but_cannot_change_members(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    worker, worker_headers = await person_with_token(db, o.id)
    colleague = await person(db, o.id)
    project = await new_project(client, o.headers, "Apollo")
    await put_member(client, o.headers, project["id"], worker.id, role="project_member")
    await put_member(client, o.headers, project["id"], colleague.id, role="project_member")
    before = await audit_actions(db, o.id)

    seen = await client.get(f"{API}/projects/{project['id']}", headers=worker_headers)
    members = await client.get(f"{API}/projects/{project['id']}/members", headers=worker_headers)
    one = await client.get(f"{API}/projects/{project['id']}/members/{colleague.id}", headers=worker_headers)
    assert (seen.status_code, seen.json()["member_count"]) == (200, 2)
    assert members.status_code == 200
    assert one.status_code == 200

    base = f"{API}/projects/{project['id']}"
    refused = {
        "promote_self": await put_member(
            client, worker_headers, project["id"], worker.id, role="project_admin"
        ),
        "change_other": await client.put(
            f"{base}/members/{colleague.id}", json={"role": "project_admin"}, headers=worker_headers
        ),
        "remove_other": await client.delete(f"{base}/members/{colleague.id}", headers=worker_headers),
        "rename": await client.patch(base, json={"name": "Mine"}, headers=worker_headers),
    }
    assert {k: r.status_code for k, r in refused.items()} == dict.fromkeys(refused, 403)
    roles = await client.get(f"{API}/projects/{project['id']}/members", headers=o.headers)
    assert {m["role"] for m in roles.json()["items"]} == {"project_member"}
    assert await audit_actions(db, o.id) == before


async def test_a_member_outside_the_project_gets_not_found(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    outsider, outsider_headers = await person_with_token(db, o.id)
    project = await new_project(client, o.headers, "Apollo")

    for method, path, body in (
        ("GET", f"/projects/{project['id']}", None),
        ("GET", f"/projects/{project['id']}/members", None),
        ("PATCH", f"/projects/{project['id']}", {"name": "Mine"}),
        ("PUT", f"/projects/{project['id']}/members/{outsider.id}", {"role": "project_admin"}),
    ):
        response = await client.request(method, f"{API}{path}", json=body, headers=outsider_headers)
        assert (response.status_code, code(response)) == (404, "project_not_found"), f"{method} {path}"


async def test_members_list_only_their_projects(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    worker, worker_headers = await person_with_token(db, o.id)
    _, outsider_headers = await person_with_token(db, o.id)
    _, admin_headers = await person_with_token(db, o.id, role=UserRole.admin)
    apollo = await new_project(client, o.headers, "Apollo")
    gemini = await new_project(client, o.headers, "Gemini")
    await new_project(client, o.headers, "Mercury")
    await put_member(client, o.headers, apollo["id"], worker.id, role="project_member")
    await put_member(client, o.headers, gemini["id"], worker.id, role="project_admin")

    async def names(headers: dict[str, str]) -> list[str]:
        response = await client.get(f"{API}/projects", headers=headers)
        assert response.status_code == 200
        return [p["name"] for p in response.json()["items"]]

    assert await names(worker_headers) == ["Apollo", "Gemini"]
    assert await names(outsider_headers) == []
    assert await names(admin_headers) == ["Apollo", "Gemini", "Mercury"]
    create = await client.post(f"{API}/projects", json={"name": "Mine"}, headers=worker_headers)
    assert (create.status_code, code(create)) == (403, "not_permitted")


async def test_deleting_a_project_removes_it_for_its_members(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    worker, worker_headers = await person_with_token(db, o.id)
    project = await new_project(client, o.headers, "Apollo")
    await put_member(client, o.headers, project["id"], worker.id, role="project_admin")

    assert (await client.delete(f"{API}/projects/{project['id']}", headers=o.headers)).status_code == 204

    assert (await client.get(f"{API}/projects", headers=worker_headers)).json()["items"] == []
    gone = await client.get(f"{API}/projects/{project['id']}", headers=worker_headers)
    assert gone.status_code == 404
    [entry] = await audit_entries(db, o.id, "project.deleted")
    assert entry.before == {"name": "Apollo", "members": 1}
