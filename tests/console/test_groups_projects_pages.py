"""The groups and projects pages, driven like a browser: forms, redirects, flashes, and what is stored."""

from __future__ import annotations

import re
import uuid

from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.authz.actor import Actor
from cockpit.groups import service as groups
from cockpit.groups.models import Group
from cockpit.projects import service as projects
from cockpit.projects.models import Project, ProjectMember, ProjectRole
from cockpit.tenancy.models import Account
from cockpit.users import service as users
from cockpit.users.models import User, UserRole, UserStatus
from tests.builders import console_login, csrf_for, make_account, make_user

BANNER_ERROR = re.compile(r'<div class="banner banner-error"[^>]*>.*?<span>([^<]*)</span>', re.S)
FLASH = re.compile(
    r'<div class="banner banner-(success|error|info)" role="status"[^>]*>.*?<span>([^<]*)</span>', re.S
)


# ---- helpers ----


def _members_table(html: str) -> str:
    match = re.search(r'<table class="table" id="members-table">.*?</table>', html, re.S)
    return match.group(0) if match else ""


async def _login(client: AsyncClient, user: User) -> None:
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text


async def _follow(client: AsyncClient, response: Response) -> tuple[str, str, str]:
    """A POST's redirect, then the page it leads to: (location, flash kind, flash message)."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    page = await client.get(location)
    assert page.status_code == 200, page.text
    match = FLASH.search(page.text)
    assert match, "no flash message"
    return location, match.group(1), match.group(2)


async def _post(client: AsyncClient, url: str, data: dict[str, object], page: str) -> Response:
    return await client.post(url, data={**data, "csrf_token": await csrf_for(client, page)})


async def _group_named(db: AsyncSession, account_id: uuid.UUID, name: str) -> Group | None:
    group = await db.scalar(
        select(Group)
        .where(Group.account_id == account_id, Group.name == name)
        .execution_options(populate_existing=True)
    )
    await db.commit()
    return group


async def _default(db: AsyncSession, account_id: uuid.UUID) -> Group:
    group = await db.scalar(
        select(Group)
        .where(Group.account_id == account_id, Group.is_default.is_(True))
        .execution_options(populate_existing=True)
    )
    await db.commit()
    assert group is not None
    return group


async def _group_of(db: AsyncSession, user_id: uuid.UUID) -> uuid.UUID:
    user = await db.get(User, user_id, populate_existing=True)
    await db.commit()
    assert user is not None
    return user.group_id


async def _count(
    db: AsyncSession, model: type[Group] | type[Project] | type[AuditEntry], account_id: uuid.UUID
) -> int:
    count = await db.scalar(select(func.count()).select_from(model).where(model.account_id == account_id))
    await db.commit()
    return count or 0


async def _make_group(db: AsyncSession, owner: User, name: str, *members: User) -> uuid.UUID:
    actor = Actor.for_user(owner)
    group = await groups.create_group(db, actor, name=name, description=f"The {name} team")
    if members:
        await users.add_members(db, actor, group.id, [m.id for m in members])
    await db.commit()
    return group.id


async def _make_project(
    db: AsyncSession, owner: User, name: str, *members: tuple[User, ProjectRole]
) -> uuid.UUID:
    actor = Actor.for_user(owner)
    project = await projects.create_project(db, actor, name=name, description=f"About {name}")
    for user, role in members:
        await projects.set_member(db, actor, project.id, user.id, role=role)
    await db.commit()
    return project.id


async def _membership(db: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID) -> ProjectMember | None:
    member = await db.get(ProjectMember, (project_id, user_id), populate_existing=True)
    await db.commit()
    return member


async def _setup(db: AsyncSession, name: str = "Acme") -> tuple[Account, User]:
    return await make_account(db, name=name)


# ---- groups ----


async def test_an_admin_creates_renames_and_deletes_a_group(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await _setup(db)
    ada, bob = await make_user(db, account), await make_user(db, account)
    await _login(client, owner)

    created = await _post(client, "/groups", {"name": "  Research ", "description": "R&D"}, "/groups")
    group = await _group_named(db, account.id, "Research")
    assert group is not None
    assert group.description == "R&D"
    location, kind, message = await _follow(client, created)
    assert location == f"/groups/{group.id}"
    assert (kind, message) == ("success", "Group “Research” created.")

    renamed = await _post(
        client, f"/groups/{group.id}", {"name": "Research & Development", "description": "Labs"}, location
    )
    _, kind, message = await _follow(client, renamed)
    assert (kind, message) == ("success", "Group “Research &amp; Development” saved.")
    stored = await _group_named(db, account.id, "Research & Development")
    assert stored is not None
    assert stored.description == "Labs"

    added = await _post(
        client, f"/groups/{group.id}/members", {"user_ids": [str(ada.id), str(bob.id)]}, location
    )
    _, kind, message = await _follow(client, added)
    assert (kind, message) == ("success", "Moved 2 people to Research &amp; Development.")
    assert await _group_of(db, ada.id) == group.id

    page = await client.get(location)
    assert "2 members will move to Default. This cannot be undone." in page.text
    deleted = await _post(client, f"/groups/{group.id}/delete", {}, location)
    location, kind, message = await _follow(client, deleted)
    assert location == "/groups"
    assert (kind, message) == (
        "success",
        "Group Research &amp; Development deleted; 2 members moved to Default.",
    )
    default = await _default(db, account.id)
    assert await _group_of(db, ada.id) == default.id
    assert await _group_of(db, bob.id) == default.id
    assert await _group_named(db, account.id, "Research & Development") is None


async def test_the_groups_page_lists_groups_with_counts_and_marks_default(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner = await _setup(db)
    await _make_group(db, owner, "Sales", await make_user(db, account), await make_user(db, account))
    await _login(client, owner)

    page = await client.get("/groups")

    assert page.status_code == 200
    cards = re.findall(r'data-testid="group-card">(.*?)</a>', page.text, re.S)
    assert len(cards) == 2
    assert "Default" in cards[0]
    assert "System" in cards[0]
    assert "Sales" in cards[1]
    assert "System" not in cards[1]
    assert '<div class="stat-value" style="font-size: 24px">2</div>' in cards[1]
    assert '<div class="stat-value" style="font-size: 24px">1</div>' in cards[0]  # the owner
    assert 'id="new-group-dialog"' in page.text


async def test_groups_and_credits_count_the_same_active_members(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner = await _setup(db)
    gone = await make_user(db, account)
    sales = await _make_group(db, owner, "Sales", await make_user(db, account), gone)
    gone.status = UserStatus.deactivated  # keeps their group, but is no longer counted anywhere
    await db.commit()
    await _login(client, owner)

    cards = re.findall(r'data-testid="group-card">(.*?)</a>', (await client.get("/groups")).text, re.S)
    detail = (await client.get(f"/groups/{sales}")).text
    credits = (await client.get("/credits/allocations")).text

    assert '<div class="stat-value" style="font-size: 24px">1</div>' in cards[1]
    assert re.search(r'data-testid="member-count">1 member<', detail)
    row = re.search(r'id="alloc-group-' + str(sales) + r'".*?</tr>', credits, re.S)
    assert row
    assert '<td class="right num">1</td>' in row.group(0)


async def test_the_default_group_cannot_be_renamed_or_deleted(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await _setup(db)
    await _login(client, owner)
    default = await _default(db, account.id)
    url = f"/groups/{default.id}"

    page = await client.get(url)
    assert page.status_code == 200
    assert '<input class="input" value="Default" disabled>' in page.text
    assert "It cannot be renamed or deleted." in page.text
    assert f'action="/groups/{default.id}/delete"' not in page.text

    # Its description can change (the form sends the name as it is) …
    saved = await _post(client, url, {"name": "Default", "description": "Everyone else"}, url)
    _, kind, _ = await _follow(client, saved)
    assert kind == "success"
    assert (await _default(db, account.id)).description == "Everyone else"
    # … a forged rename is refused and writes nothing …
    audit_before = await _count(db, AuditEntry, account.id)
    renamed = await _post(client, url, {"name": "Everyone", "description": "changed"}, url)
    assert renamed.status_code == 403
    assert BANNER_ERROR.findall(renamed.text) == ["The Default group cannot be renamed."]
    stored = await _default(db, account.id)
    assert (stored.name, stored.description) == ("Default", "Everyone else")
    # … and so is deleting it.
    deleted = await _post(client, f"{url}/delete", {}, url)
    location, kind, message = await _follow(client, deleted)
    assert (location, kind, message) == (url, "error", "The Default group cannot be deleted.")
    assert await _default(db, account.id) is not None
    assert await _count(db, AuditEntry, account.id) == audit_before


async def test_a_refused_new_group_writes_nothing_and_reopens_the_dialog(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner = await _setup(db)
    await _make_group(db, owner, "Sales")
    await _login(client, owner)
    groups_before = await _count(db, Group, account.id)
    audit_before = await _count(db, AuditEntry, account.id)

    duplicate = await _post(client, "/groups", {"name": "sales", "description": "again"}, "/groups")
    assert duplicate.status_code == 409
    assert BANNER_ERROR.findall(duplicate.text) == ["A group named &#39;Sales&#39; already exists."]
    assert 'x-init="$el.showModal()"' in duplicate.text
    assert 'value="sales"' in duplicate.text  # what was typed is kept

    empty = await _post(client, "/groups", {"name": "   "}, "/groups")
    assert empty.status_code == 422
    assert BANNER_ERROR.findall(empty.text) == ["The group name is required."]
    too_long = await _post(client, "/groups", {"name": "x" * 101}, "/groups")
    assert too_long.status_code == 422
    assert BANNER_ERROR.findall(too_long.text) == ["The group name has at most 100 characters."]

    support = await _make_group(db, owner, "Support")
    audit_before = await _count(db, AuditEntry, account.id)
    url = f"/groups/{support}"
    renamed = await _post(client, url, {"name": "SALES", "description": "changed"}, url)
    assert renamed.status_code == 409
    assert BANNER_ERROR.findall(renamed.text) == ["A group named &#39;Sales&#39; already exists."]
    assert 'value="SALES"' in renamed.text

    assert await _count(db, Group, account.id) == groups_before + 1
    assert await _count(db, AuditEntry, account.id) == audit_before
    stored = await _group_named(db, account.id, "Support")
    assert stored is not None
    assert stored.description == "The Support team"


async def test_selected_members_move_to_another_group_in_bulk(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await _setup(db)
    ada = await make_user(db, account, email="ada@acme.test")
    bob = await make_user(db, account, email="bob@acme.test")
    cy = await make_user(db, account, email="cy@acme.test")
    sales = await _make_group(db, owner, "Sales", ada, bob, cy)
    support = await _make_group(db, owner, "Support")
    await _login(client, owner)
    url = f"/groups/{sales}"

    page = await client.get(url)
    assert page.status_code == 200
    assert f'<option value="{support}">Support (0)</option>' in page.text  # the bulk bar's targets
    assert page.text.count('name="user_ids"') >= 3

    moved = await _post(
        client,
        f"/groups/{support}/members",
        {"user_ids": [str(ada.id), str(bob.id)], "return_to": str(sales)},
        url,
    )
    location, kind, message = await _follow(client, moved)
    assert (location, kind, message) == (url, "success", "Moved 2 people to Support.")
    assert [await _group_of(db, u.id) for u in (ada, bob, cy)] == [support, support, sales]
    members = _members_table((await client.get(url)).text)
    assert "cy@acme.test" in members
    assert "ada@acme.test" not in members

    nobody = await _post(client, f"/groups/{support}/members", {"return_to": str(sales)}, url)
    _, kind, message = await _follow(client, nobody)
    assert (kind, message) == ("error", "Choose at least one user.")


async def test_group_members_are_searchable_and_outsiders_can_be_added(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner = await _setup(db)
    ada = await make_user(db, account, email="ada.lovelace@acme.test")
    bob = await make_user(db, account, email="bob.builder@acme.test")
    outsider = await make_user(db, account, email="olga.outsider@acme.test")
    sales = await _make_group(db, owner, "Sales", ada, bob)
    await _login(client, owner)

    found = await client.get(
        f"/groups/{sales}",
        params={"q": "lovelace"},
        headers={"HX-Request": "true", "HX-Target": "group-members"},
    )
    assert found.status_code == 200
    assert "<html" not in found.text  # only the list is swapped in
    assert "ada.lovelace@acme.test" in found.text
    assert "bob.builder@acme.test" not in found.text

    candidates = await client.get(
        f"/groups/{sales}",
        params={"add_q": "acme.test"},
        headers={"HX-Request": "true", "HX-Target": "group-candidates"},
    )
    assert "olga.outsider@acme.test" in candidates.text
    assert "ada.lovelace@acme.test" not in candidates.text  # already in the group

    added = await _post(
        client,
        f"/groups/{sales}/members",
        {"user_ids": [str(outsider.id)], "return_to": str(sales)},
        f"/groups/{sales}",
    )
    _, kind, message = await _follow(client, added)
    assert (kind, message) == ("success", "Moved Test User to Sales.")
    assert await _group_of(db, outsider.id) == sales


async def test_members_get_the_403_page_for_groups(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await _setup(db)
    sales = await _make_group(db, owner, "Sales")
    member = await make_user(db, account, role=UserRole.member)
    await _login(client, member)

    for path in ("/groups", f"/groups/{sales}"):
        page = await client.get(path)
        assert page.status_code == 403, path
        assert "This page is for account administrators." in page.text
    csrf = await csrf_for(client, "/")
    refused = await client.post("/groups", data={"name": "Mine", "csrf_token": csrf})
    assert refused.status_code == 403
    assert await _group_named(db, account.id, "Mine") is None


async def test_another_accounts_group_is_not_found(db: AsyncSession, client: AsyncClient) -> None:
    _account, owner = await _setup(db)
    other_account, other_owner = await make_account(db, name="Globex")
    theirs = await _make_group(db, other_owner, "Secret")
    stranger = await make_user(db, other_account)
    mine = await _make_group(db, owner, "Sales")
    await _login(client, owner)

    assert (await client.get(f"/groups/{theirs}")).status_code == 404
    assert (await client.get("/groups/not-a-uuid")).status_code == 404
    deleted = await _post(client, f"/groups/{theirs}/delete", {}, "/groups")
    assert deleted.status_code == 404
    assert await _group_named(db, other_account.id, "Secret") is not None
    # Their people cannot be pulled into one of our groups either.
    pulled = await _post(client, f"/groups/{mine}/members", {"user_ids": [str(stranger.id)]}, "/groups")
    _, kind, message = await _follow(client, pulled)
    assert (kind, message) == ("error", "One or more of these users do not exist.")
    assert await _group_of(db, stranger.id) != mine


# ---- projects ----


async def test_an_admin_creates_edits_and_deletes_a_project(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await _setup(db)
    await _login(client, owner)

    listing = await client.get("/projects")
    assert listing.status_code == 200
    assert 'data-testid="new-project"' in listing.text
    created = await _post(client, "/projects", {"name": "Atlas", "description": "Maps"}, "/projects")
    location, kind, message = await _follow(client, created)
    assert (kind, message) == ("success", "Project “Atlas” created.")
    project_id = uuid.UUID(location.rsplit("/", 1)[1])

    duplicate = await _post(client, "/projects", {"name": "ATLAS"}, "/projects")
    assert duplicate.status_code == 409
    assert BANNER_ERROR.findall(duplicate.text) == ["A project named &#39;Atlas&#39; already exists."]
    assert 'x-init="$el.showModal()"' in duplicate.text
    assert await _count(db, Project, account.id) == 1

    edited = await _post(client, location, {"name": "Atlas 2", "description": "Better maps"}, location)
    _, kind, message = await _follow(client, edited)
    assert (kind, message) == ("success", "Project “Atlas 2” saved.")
    empty = await _post(client, location, {"name": "", "description": "x"}, location)
    _, kind, message = await _follow(client, empty)
    assert (kind, message) == ("error", "The project name is required.")
    project = await db.get(Project, project_id, populate_existing=True)
    await db.commit()
    assert project is not None
    assert (project.name, project.description) == ("Atlas 2", "Better maps")

    page = await client.get(location)
    assert f'action="/projects/{project_id}/delete"' in page.text
    deleted = await _post(client, f"{location}/delete", {}, location)
    location, kind, message = await _follow(client, deleted)
    assert (location, kind, message) == ("/projects", "success", "Project “Atlas 2” deleted.")
    assert await _count(db, Project, account.id) == 0


async def test_an_admin_adds_changes_and_removes_members(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await _setup(db)
    ada = await make_user(db, account, email="ada@acme.test")
    project_id = await _make_project(db, owner, "Atlas")
    await _login(client, owner)
    url = f"/projects/{project_id}"

    page = await client.get(url)
    assert f'<option value="{ada.id}">Test User — ada@acme.test</option>' in page.text

    added = await _post(
        client,
        f"{url}/members",
        {"user_id": str(ada.id), "role": "project_member", "all_assistants": "true"},
        url,
    )
    _, kind, message = await _follow(client, added)
    assert (kind, message) == ("success", "Test User added as project member.")
    member = await _membership(db, project_id, ada.id)
    assert member is not None
    assert (member.role, member.all_assistants) == (ProjectRole.project_member, True)

    again = await _post(client, f"{url}/members", {"user_id": str(ada.id), "role": "project_admin"}, url)
    _, kind, message = await _follow(client, again)
    assert (kind, message) == ("error", "Test User is already a member: change their role in the table.")
    member = await _membership(db, project_id, ada.id)
    assert member is not None
    assert member.role is ProjectRole.project_member

    changed = await _post(client, f"{url}/members/{ada.id}", {"role": "project_admin"}, url)
    _, kind, message = await _follow(client, changed)
    assert (kind, message) == ("success", "Test User: project admin, only assigned assistants.")
    member = await _membership(db, project_id, ada.id)
    assert member is not None
    assert (member.role, member.all_assistants) == (ProjectRole.project_admin, False)
    page = await client.get(url)
    row = re.search(rf'data-member="{ada.id}">.*?</tbody>', page.text, re.S)
    assert row
    assert '<span class="badge badge-accent">Admin</span>' in row.group(0)

    bad_role = await _post(client, f"{url}/members/{ada.id}", {"role": "owner"}, url)
    _, kind, message = await _follow(client, bad_role)
    assert (kind, message) == ("error", "Choose a project role.")

    removed = await _post(client, f"{url}/members/{ada.id}/remove", {}, url)
    _, kind, message = await _follow(client, removed)
    assert (kind, message) == ("success", "Test User removed from Atlas.")
    assert await _membership(db, project_id, ada.id) is None


async def test_a_project_admin_manages_their_project_only(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await _setup(db)
    lead = await make_user(db, account, role=UserRole.member, email="lead@acme.test")
    newcomer = await make_user(db, account, email="newcomer@acme.test")
    ours = await _make_project(db, owner, "Atlas", (lead, ProjectRole.project_admin))
    theirs = await _make_project(db, owner, "Zephyr")
    other_account, _ = await make_account(db, name="Globex")
    stranger = await make_user(db, other_account, email="stranger@globex.test")
    await _login(client, lead)
    url = f"/projects/{ours}"

    listing = await client.get("/projects")
    assert listing.status_code == 200
    assert "Atlas" in listing.text
    assert "Zephyr" not in listing.text
    assert 'data-testid="new-project"' not in listing.text
    page = await client.get(url)
    assert page.status_code == 200
    assert 'data-testid="add-member"' in page.text
    assert 'data-testid="edit-project"' in page.text
    assert 'name="email"' in page.text
    assert 'name="user_id"' not in page.text
    assert f'action="/projects/{ours}/delete"' not in page.text

    added = await _post(
        client, f"{url}/members", {"email": " NEWCOMER@acme.test ", "role": "project_member"}, url
    )
    _, kind, message = await _follow(client, added)
    assert (kind, message) == ("success", "Test User added as project member.")
    assert await _membership(db, ours, newcomer.id) is not None
    outside = await _post(client, f"{url}/members", {"email": stranger.email}, url)
    _, kind, message = await _follow(client, outside)
    assert (kind, message) == ("error", "Nobody in Acme has the e-mail stranger@globex.test.")
    assert await _membership(db, ours, stranger.id) is None

    promoted = await _post(
        client, f"{url}/members/{newcomer.id}", {"role": "project_admin", "all_assistants": "on"}, url
    )
    _, kind, _ = await _follow(client, promoted)
    assert kind == "success"
    edited = await _post(client, url, {"name": "Atlas", "description": "Ours"}, url)
    _, kind, _ = await _follow(client, edited)
    assert kind == "success"

    # Another project of the account does not exist for them, and deleting needs projects:manage.
    assert (await client.get(f"/projects/{theirs}")).status_code == 404
    foreign = await _post(client, f"/projects/{theirs}/members", {"email": newcomer.email}, url)
    assert foreign.status_code == 404
    assert await _membership(db, theirs, newcomer.id) is None
    assert (await _post(client, f"{url}/delete", {}, url)).status_code == 403
    assert (await _post(client, "/projects", {"name": "Mine"}, "/projects")).status_code == 403
    assert await _count(db, Project, account.id) == 2

    removed = await _post(client, f"{url}/members/{newcomer.id}/remove", {}, url)
    _, kind, _ = await _follow(client, removed)
    assert kind == "success"
    assert await _membership(db, ours, newcomer.id) is None


async def test_a_plain_member_sees_only_their_projects_and_cannot_manage(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner = await _setup(db)
    member = await make_user(db, account, role=UserRole.member)
    mate = await make_user(db, account, role=UserRole.member)
    ours = await _make_project(
        db, owner, "Atlas", (member, ProjectRole.project_member), (mate, ProjectRole.project_member)
    )
    await _make_project(db, owner, "Zephyr", (mate, ProjectRole.project_admin))
    await _login(client, member)
    url = f"/projects/{ours}"

    listing = await client.get("/projects")
    assert re.findall(r'data-testid="project-link"[^>]*>.*?</svg>([^<]+)</a>', listing.text, re.S) == [
        "Atlas"
    ]
    page = await client.get(url)
    assert page.status_code == 200
    assert "You: project member" in page.text
    for control in ('data-testid="add-member"', 'data-testid="edit-project"', "/remove", "/delete"):
        assert control not in page.text, control

    refused = await _post(client, f"{url}/members/{mate.id}", {"role": "project_admin"}, url)
    _, kind, message = await _follow(client, refused)
    assert (kind, message) == ("error", "Only this project&#39;s admins can do this.")
    membership = await _membership(db, ours, mate.id)
    assert membership is not None
    assert membership.role is ProjectRole.project_member


async def test_projects_need_a_signed_in_user(db: AsyncSession, client: AsyncClient) -> None:
    for path in ("/projects", "/groups"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={path}"
