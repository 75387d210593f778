"""Console pages for people: the users list, a user's page, invitations and the public accept page."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.passwords import hash_password
from cockpit.authz.actor import Actor
from cockpit.groups.repository import default_group
from cockpit.groups.service import create_group
from cockpit.invitations.models import Invitation
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole, UserStatus
from tests.builders import PASSWORD, console_login, csrf_for, make_account, make_token, make_user

PASSWORD_HASH = hash_password(PASSWORD)
NEW_PASSWORD = "a-brand-new-passphrase-42"
USER_ROWS = re.compile(r'<a href="/users/([0-9a-f-]{36})"[^>]*data-testid="user-link">')
INVITE_LINK = re.compile(r'data-testid="invite-link"[^>]*value="http://testserver/invite/([A-Za-z0-9_-]+)"')
INVITE_LINK_ANYWHERE = re.compile(r"/invite/[A-Za-z0-9_-]{20,}")


# ---- helpers ----


class Org:
    def __init__(self, account: Account, owner: User) -> None:
        self.id, self.owner_id, self.owner_email = account.id, owner.id, owner.email


async def signed_in_org(db: AsyncSession, client: AsyncClient, *, name: str = "Acme Robotics") -> Org:
    account, owner = await make_account(db, name=name)
    found = Org(account, owner)
    response = await console_login(client, found.owner_email)
    assert response.status_code == 303, response.text
    return found


async def add_people(
    db: AsyncSession,
    account_id: uuid.UUID,
    count: int,
    *,
    prefix: str = "person",
    role: UserRole = UserRole.member,
    status: UserStatus = UserStatus.active,
    group_id: uuid.UUID | None = None,
    seats: Iterable[str] = (),
) -> list[User]:
    """Many users at once (one password hash for all: hashing is deliberately slow)."""
    group = group_id or (await default_group(db, account_id)).id
    users = [
        User(
            account_id=account_id,
            email=f"{prefix}-{i:03d}-{uuid.uuid4().hex[:4]}@example.com",
            name=f"{prefix.title()} {i:03d}",
            role=role,
            status=status,
            password_hash=PASSWORD_HASH,
            group_id=group,
            **{f"seat_{seat}": True for seat in seats},
        )
        for i in range(count)
    ]
    db.add_all(users)
    await db.commit()
    return users


async def set_limits(db: AsyncSession, account_id: uuid.UUID, **limits: int) -> None:
    await db.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(**{f"seat_limit_{k}": v for k, v in limits.items()})
    )
    await db.commit()


async def invitations_of(db: AsyncSession, account_id: uuid.UUID) -> list[Invitation]:
    db.expire_all()
    rows = list(
        await db.scalars(
            select(Invitation).where(Invitation.account_id == account_id).order_by(Invitation.email)
        )
    )
    await db.commit()
    return rows


async def reload_user(db: AsyncSession, user_id: uuid.UUID) -> User:
    db.expire_all()
    user = await db.get(User, user_id)
    assert user is not None
    await db.commit()
    return user


async def post_form(
    client: AsyncClient, path: str, data: dict[str, object], *, page: str = "/users"
) -> Response:
    return await client.post(path, data={**data, "csrf_token": await csrf_for(client, page)})


async def invite_via_form(client: AsyncClient, email: str, **fields: object) -> Response:
    return await post_form(client, "/users/invite", {"email": email, **fields})


def link_token(response: Response) -> str:
    match = INVITE_LINK.search(response.text)
    assert match, "the invitation link is not shown"
    return match.group(1)


def shown(first: int, last: int, total: int) -> str:
    """The pagination summary as shown, e.g. "1 to 50 of 61" written with an en dash."""
    return f"{first}\u2013{last} of {total}"


def user_ids(html: str) -> list[str]:
    return USER_ROWS.findall(html)


@pytest.fixture
async def other_client(app) -> AsyncIterator[AsyncClient]:  # type: ignore[no-untyped-def]
    """A second browser (another person, or someone who is not signed in)."""
    transport = ASGITransport(app=app, client=("198.51.100.9", 50001))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


# ---- the users list ----


async def test_the_users_list_pages_fifty_at_a_time_with_seat_meters_and_tabs(
    db: AsyncSession, client: AsyncClient
) -> None:
    org = await signed_in_org(db, client)
    await add_people(db, org.id, 60, seats=["copilot"])
    await set_limits(db, org.id, copilot=100, console=5, compute=0)
    await invite_via_form(client, "pending.person@example.com", seats=["copilot"])

    first = await client.get("/users")
    second = await client.get("/users", params={"page": 2})

    assert first.status_code == 200
    assert len(user_ids(first.text)) == 50
    assert shown(1, 50, 61) in first.text
    assert len(user_ids(second.text)) == 11
    assert shown(51, 61, 61) in second.text
    assert not set(user_ids(first.text)) & set(user_ids(second.text))
    # Seat meters: 60 copilot seats used of 100, one reserved by the pending invitation.
    assert re.search(r"copilot seats</span><span class=\"meter-value\">60 <small>/ 100</small>", first.text)
    assert "1 reserved by invitations · 39 free" in first.text
    assert 'data-testid="pending-count">1 pending' in first.text
    assert 'href="/users/import"' in first.text
    assert 'id="invite-dialog"' in first.text


async def test_search_filters_and_sorting(db: AsyncSession, client: AsyncClient) -> None:
    org = await signed_in_org(db, client)
    sales = await create_group(db, Actor.system(org.id), name="Sales")
    await db.commit()
    await add_people(db, org.id, 3, prefix="seller", group_id=sales.id, seats=["console"])
    await add_people(db, org.id, 2, prefix="admin", role=UserRole.admin)
    await add_people(db, org.id, 2, prefix="gone", status=UserStatus.deactivated)

    by_name = await client.get("/users", params={"q": "SELLER 00"})
    by_role = await client.get("/users", params={"role": "admin"})
    by_status = await client.get("/users", params={"status": "deactivated"})
    by_group = await client.get("/users", params={"group": str(sales.id)})
    by_seat = await client.get("/users", params={"seat": "console"})
    nobody = await client.get("/users", params={"q": "no-such-person"})
    descending = await client.get("/users", params={"sort": "-email"})

    assert len(user_ids(by_name.text)) == 3
    assert 'value="SELLER 00"' in by_name.text
    assert len(user_ids(by_role.text)) == 2
    assert len(user_ids(by_status.text)) == 2
    assert "deactivated" in by_status.text
    assert len(user_ids(by_group.text)) == 3
    assert len(user_ids(by_seat.text)) == 4  # the sellers and the owner (who gets a console seat)
    assert user_ids(nobody.text) == []
    assert "No matching users" in nobody.text
    emails = re.findall(r'<span class="person-email">([^<]+)</span>', descending.text)
    assert emails == sorted(emails, reverse=True)
    assert len(emails) == 7  # the seven above (the owner has no name: the e-mail is the title)
    assert len(user_ids(descending.text)) == 8


async def test_htmx_filtering_returns_only_the_results(db: AsyncSession, client: AsyncClient) -> None:
    org = await signed_in_org(db, client)
    await add_people(db, org.id, 2, prefix="seller")

    partial = await client.get(
        "/users",
        params={"q": "seller", "sort": "-name"},
        headers={"HX-Request": "true", "HX-Target": "users-results"},
    )

    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert 'class="meters"' not in partial.text
    assert len(user_ids(partial.text)) == 2
    # The sort travels with the filter form, and the pagination keeps the filters.
    assert 'name="sort" value="-name" form="users-filters"' in partial.text
    assert 'Name <span aria-hidden="true">↓</span>' in partial.text
    assert partial.headers["vary"] == "HX-Target"


async def test_bad_filter_values_are_explained_not_fatal(db: AsyncSession, client: AsyncClient) -> None:
    await signed_in_org(db, client)

    page = await client.get("/users", params={"role": "boss", "group": "nope", "sort": "password_hash"})

    assert page.status_code == 200
    assert "Unknown role &#39;boss&#39;: the filter was ignored." in page.text
    assert "Unknown group: the filter was ignored." in page.text
    assert len(user_ids(page.text)) == 1


async def test_members_are_refused_the_people_pages(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await make_account(db)
    member = await make_user(db, account, role=UserRole.member)
    await console_login(client, member.email)

    for path in ("/users", f"/users/{owner.id}", "/invitations"):
        response = await client.get(path)
        assert response.status_code == 403, path
        assert "Not permitted" in response.text
    refused = await post_form(client, "/users/invite", {"email": "x@example.com"}, page="/")
    assert refused.status_code == 403
    assert await invitations_of(db, account.id) == []


async def test_another_accounts_user_is_not_found(db: AsyncSession, client: AsyncClient) -> None:
    _, stranger = await make_account(db, name="Elsewhere")
    await signed_in_org(db, client)

    page = await client.get(f"/users/{stranger.id}")
    change = await post_form(client, f"/users/{stranger.id}", {"change": "name", "name": "Hacked"})
    deactivate = await post_form(client, f"/users/{stranger.id}/deactivate", {})
    garbage = await client.get("/users/not-a-uuid")

    assert page.status_code == 404
    assert change.status_code == 404
    assert deactivate.status_code == 404
    assert garbage.status_code == 404
    stored = await reload_user(db, stranger.id)
    assert stored.name != "Hacked"
    assert stored.status is UserStatus.active


# ---- inviting ----


async def test_inviting_shows_the_link_once_and_creates_the_invitation(
    db: AsyncSession, client: AsyncClient
) -> None:
    org = await signed_in_org(db, client)
    engineering = (await create_group(db, Actor.system(org.id), name="Engineering")).id
    await db.commit()

    response = await invite_via_form(
        client,
        "Nina.Patel@Example.com",
        name="Nina Patel",
        role="admin",
        group_id=str(engineering),
        seats=["copilot", "console"],
    )

    assert response.status_code == 201
    token = link_token(response)
    assert "E-mail is not configured: copy this link and send it to the person" in response.text
    assert "nina.patel@example.com is invited" in response.text
    # The secret never travels in a cookie (flash) or a redirect.
    assert token not in response.headers.get("set-cookie", "")
    assert "location" not in response.headers
    [invitation] = await invitations_of(db, org.id)
    assert (invitation.email, invitation.name, invitation.role) == (
        "nina.patel@example.com",
        "Nina Patel",
        "admin",
    )
    assert invitation.group_id == engineering
    assert invitation.seats == ["copilot", "console"]
    listed = await client.get("/invitations")
    assert "nina.patel@example.com" in listed.text
    assert token not in listed.text
    assert not INVITE_LINK_ANYWHERE.search(listed.text)


async def test_with_smtp_configured_the_page_says_it_was_emailed(
    db: AsyncSession, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cockpit.console.pages import invitations as invitation_pages

    monkeypatch.setattr(invitation_pages, "mail_configured", lambda settings: True)
    await signed_in_org(db, client)

    response = await invite_via_form(client, "mailed@example.com")

    assert response.status_code == 201
    assert "An invitation is on its way by e-mail to <strong>mailed@example.com</strong>" in response.text
    assert link_token(response)


async def test_a_refused_invitation_reopens_the_form_and_writes_nothing(
    db: AsyncSession, client: AsyncClient
) -> None:
    org = await signed_in_org(db, client)
    existing = await make_user(db, await _account(db, org.id), email="taken@example.com")

    taken = await invite_via_form(client, existing.email, name="Someone", seats=["copilot"])

    assert taken.status_code == 409
    assert "taken@example.com already has a Cockpit account." in taken.text
    assert 'x-init="$el.showModal()' in taken.text  # the dialog opens again
    assert 'value="taken@example.com"' in taken.text
    assert 'value="Someone"' in taken.text
    assert re.search(r'value="copilot" checked', taken.text)
    assert await invitations_of(db, org.id) == []

    malformed = await invite_via_form(client, "not-an-email")
    assert malformed.status_code == 422
    assert "is not a valid e-mail address" in malformed.text

    unknown_group = await invite_via_form(client, "new@example.com", group_id=str(uuid.uuid4()))
    assert unknown_group.status_code == 422
    assert "Unknown group." in unknown_group.text

    await set_limits(db, org.id, copilot=0)
    no_seat = await invite_via_form(client, "new@example.com", seats=["copilot"])
    assert no_seat.status_code == 409
    assert "No copilot seat is free" in no_seat.text
    assert await invitations_of(db, org.id) == []

    assert (await invite_via_form(client, "twice@example.com")).status_code == 201
    again = await invite_via_form(client, "twice@example.com")
    assert again.status_code == 409
    assert "already has a pending invitation" in again.text
    assert [i.email for i in await invitations_of(db, org.id)] == ["twice@example.com"]


async def test_an_admin_cannot_invite_an_owner(db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    await console_login(client, admin.email)

    page = await client.get("/users")
    refused = await invite_via_form(client, "boss@example.com", role="owner")

    dialog = re.search(r'<dialog id="invite-dialog".*?</dialog>', page.text, re.S)
    assert dialog
    assert '<option value="owner"' not in dialog.group(0)
    assert '<option value="admin"' in dialog.group(0)
    assert refused.status_code == 403
    assert "Only an owner can grant the owner role." in refused.text
    assert await invitations_of(db, account.id) == []


# ---- one user ----


async def test_the_user_page_changes_name_role_group_and_seats(db: AsyncSession, client: AsyncClient) -> None:
    org = await signed_in_org(db, client)
    support = (await create_group(db, Actor.system(org.id), name="Support")).id
    await db.commit()
    [user] = await add_people(db, org.id, 1, prefix="ada")
    await make_token(db, user, name="ada's script")
    url = f"/users/{user.id}"

    page = await client.get(url)
    assert page.status_code == 200
    assert "Ada 000" in page.text
    assert "ada&#39;s script" in page.text
    assert "Never signed in" in page.text

    steps: list[tuple[dict[str, object], str]] = [
        ({"change": "name", "name": "Ada Lovelace"}, "Name saved: Ada Lovelace."),
        ({"change": "role", "role": "admin"}, "Ada Lovelace is now admin."),
        ({"change": "group", "group_id": str(support)}, "Ada Lovelace moved to Support."),
        ({"change": "seats", "seats": ["copilot", "compute"]}, "Seats of Ada Lovelace: copilot, compute."),
    ]
    for data, message in steps:
        response = await post_form(client, url, data, page=url)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == url
        assert message in (await client.get(url)).text

    stored = await reload_user(db, user.id)
    assert (stored.name, stored.role, stored.group_id) == ("Ada Lovelace", UserRole.admin, support)
    assert (stored.seat_copilot, stored.seat_console, stored.seat_compute) == (True, False, True)

    cleared = await post_form(client, url, {"change": "seats"}, page=url)
    assert cleared.status_code == 303
    assert "Seats of Ada Lovelace: no seats." in (await client.get(url)).text


async def test_refused_changes_come_back_as_an_error_banner(db: AsyncSession, client: AsyncClient) -> None:
    org = await signed_in_org(db, client)
    [user] = await add_people(db, org.id, 1)
    await set_limits(db, org.id, console=0)
    own = f"/users/{org.owner_id}"
    theirs = f"/users/{user.id}"

    own_role = await post_form(client, own, {"change": "role", "role": "member"}, page=own)
    assert own_role.status_code == 303
    assert own_role.headers["location"] == own
    assert "You cannot change your own role." in (await client.get(own)).text

    no_seat = await post_form(client, theirs, {"change": "seats", "seats": ["console"]}, page=theirs)
    assert no_seat.status_code == 303
    banner = (await client.get(theirs)).text
    assert 'class="banner banner-error"' in banner
    assert "No console seat is free" in banner

    myself = await post_form(client, f"{own}/deactivate", {}, page=own)
    assert "You cannot deactivate yourself." in (await client.get(myself.headers["location"])).text

    stored = await reload_user(db, user.id)
    assert stored.seat_console is False
    assert (await reload_user(db, org.owner_id)).role is UserRole.owner


async def test_an_admin_cannot_touch_an_owner(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    await console_login(client, admin.email)
    url = f"/users/{owner.id}"

    page = await client.get(url)
    demote = await post_form(client, url, {"change": "role", "role": "member"}, page=url)

    assert "Only an owner can change an owner&#39;s role." in page.text
    assert "Only an owner can deactivate or reactivate an owner." in page.text
    assert demote.status_code == 303
    assert "Only an owner can grant the owner role." in (await client.get(url)).text
    assert (await reload_user(db, owner.id)).role is UserRole.owner


async def test_deactivating_ends_their_session_and_reactivating_restores_access(
    db: AsyncSession, client: AsyncClient, other_client: AsyncClient
) -> None:
    org = await signed_in_org(db, client)
    [member] = await add_people(db, org.id, 1, seats=["copilot"])
    assert (await console_login(other_client, member.email)).status_code == 303
    assert (await other_client.get("/")).status_code == 200
    url = f"/users/{member.id}"

    response = await post_form(client, f"{url}/deactivate", {}, page=url)

    assert response.status_code == 303
    page = await client.get(url)
    assert "was deactivated: their sessions and API tokens no longer work. Seats freed: copilot." in page.text
    assert "Reactivate user" in page.text
    kicked = await other_client.get("/")
    assert kicked.status_code == 303
    assert kicked.headers["location"].startswith("/login")
    assert (await console_login(other_client, member.email)).status_code != 303

    # Meanwhile the last copilot seat went to someone else: access returns, that seat does not.
    await set_limits(db, org.id, copilot=1)
    await add_people(db, org.id, 1, prefix="newcomer", seats=["copilot"])
    back = await post_form(client, f"{url}/reactivate", {}, page=url)

    assert back.status_code == 303
    page = await client.get(url)
    assert "is active again, but without a copilot seat: none is free." in page.text
    assert 'class="banner banner-info"' in page.text
    stored = await reload_user(db, member.id)
    assert stored.status is UserStatus.active
    assert stored.seat_copilot is False
    assert (await console_login(other_client, member.email)).status_code == 303


# ---- the invitations list ----


async def test_resending_shows_a_new_link_and_the_old_one_stops_working(
    db: AsyncSession, client: AsyncClient, other_client: AsyncClient
) -> None:
    org = await signed_in_org(db, client)
    old = link_token(await invite_via_form(client, "nina@example.com"))
    [invitation] = await invitations_of(db, org.id)

    resent = await post_form(client, f"/invitations/{invitation.id}/resend", {}, page="/invitations")

    assert resent.status_code == 200
    new = link_token(resent)
    assert new != old
    assert "New link for nina@example.com" in resent.text
    assert (await other_client.get(f"/invite/{old}")).status_code == 404
    assert (await other_client.get(f"/invite/{new}")).status_code == 200
    [stored] = await invitations_of(db, org.id)
    assert stored.sent_count == 2


async def test_revoking_an_invitation_and_the_status_tabs(
    db: AsyncSession, client: AsyncClient, other_client: AsyncClient
) -> None:
    org = await signed_in_org(db, client)
    token = link_token(await invite_via_form(client, "omar@example.com", seats=["copilot"]))
    await invite_via_form(client, "lea@example.com")
    omar = next(i for i in await invitations_of(db, org.id) if i.email == "omar@example.com")

    response = await post_form(client, f"/invitations/{omar.id}/revoke", {}, page="/invitations")

    assert response.status_code == 303
    assert response.headers["location"] == "/invitations"
    pending = await client.get("/invitations")
    assert "The invitation for omar@example.com was revoked: its link no longer works." in pending.text
    assert "Its reserved seats are free again." in pending.text
    assert "lea@example.com" in pending.text
    assert "omar@example.com</span>" not in pending.text
    revoked = await client.get("/invitations", params={"status": "revoked"})
    assert "omar@example.com" in revoked.text
    assert "lea@example.com" not in revoked.text
    everything = await client.get("/invitations", params={"status": "all"})
    assert "omar@example.com" in everything.text
    assert "lea@example.com" in everything.text
    again = await post_form(client, f"/invitations/{omar.id}/revoke", {}, page="/invitations")
    assert "This invitation was already revoked." in (await client.get(again.headers["location"])).text
    assert (await other_client.get(f"/invite/{token}")).status_code == 404
    assert (await client.get(f"/invitations/{uuid.uuid4()}/nothing")).status_code in (404, 405)
    assert (
        await post_form(client, f"/invitations/{uuid.uuid4()}/revoke", {}, page="/invitations")
    ).status_code == 404


async def test_the_invitations_list_pages(db: AsyncSession, client: AsyncClient) -> None:
    org = await signed_in_org(db, client)
    group = await default_group(db, org.id)
    now = utcnow()
    db.add_all(
        [
            Invitation(
                account_id=org.id,
                email=f"p{i:02d}@example.com",
                role=UserRole.member,
                group_id=group.id,
                token_hash=uuid.uuid4().hex,
                expires_at=now + timedelta(days=3),
                sent_count=1,
            )
            for i in range(55)
        ]
    )
    await db.commit()

    first = await client.get("/invitations")
    second = await client.get("/invitations", params={"status": "pending", "page": 2})

    assert shown(1, 50, 55) in first.text
    assert shown(51, 55, 55) in second.text
    assert 'data-testid="pending-count">55 pending' in first.text


async def _account(db: AsyncSession, account_id: uuid.UUID) -> Account:
    account = await db.get(Account, account_id)
    assert account is not None
    return account
