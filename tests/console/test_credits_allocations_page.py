"""Credits & Allocations, Allocations tab: the groups table, a group's members (search, pages), editing
a group's and a member's figures in place (saved, refused, invalid), and who may do what."""

from __future__ import annotations

import html
import re
import uuid
from decimal import Decimal

from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind, GroupBudget, MemberAllocation
from cockpit.groups.models import Group
from cockpit.groups.repository import default_group
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import console_login, csrf_for, make_account, make_user

PAGE = "/credits/allocations"
BANNER = re.compile(r'id="alloc-(success|error)">.*?<span>(.*?)</span>', re.S)


def _cells(row_html: str) -> list[str]:
    row_html = re.sub(r'<span class="alloc-tip".*?</span>', "", row_html, flags=re.S)  # the editor's hint
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row_html, re.S)
    # The discard button's "\u00d7" read as "x".
    return [" ".join(re.sub(r"<[^>]+>", " ", html.unescape(c)).replace("\u00d7", "x").split()) for c in cells]


def _showing(first: int, last: int, total: int) -> str:
    return f"Showing {first}\u2013{last} of {total}"


def _row(text: str, row_id: str) -> list[str]:
    match = re.search(rf'<tr [^>]*id="{row_id}"[^>]*>(.*?)</tr>', text, re.S)
    assert match, f"no row {row_id}"
    return _cells(match.group(1))


def _banner(response: Response) -> tuple[str, str]:
    match = BANNER.search(response.text)
    assert match, response.text
    return match.group(1), html.unescape(match.group(2))


async def _org(db: AsyncSession) -> tuple[Account, User, User, Group, CreditCycle]:
    account, owner = await make_account(db, name="Nimbus Analytics")
    account.credit_factor = Decimal(1)
    account.credits_per_cycle = Decimal(120000)
    await db.commit()
    owner.name = "Olga Owner"
    member = await make_user(db, account, email="mia@example.com")
    member.name = "Mia Member"
    group = await default_group(db, account.id)
    cycle = await current_cycle(db, account)
    db.add(
        GroupBudget(
            group_id=group.id, account_id=account.id, monthly=Decimal("50000.5"), extra=Decimal(2500),
            extra_cycle_id=cycle.id, auto_approve_limit=Decimal(1000),
        )
    )  # fmt: skip
    db.add(
        MemberAllocation(
            user_id=member.id, account_id=account.id, monthly=Decimal(10000), extra=Decimal("250.25"),
            extra_cycle_id=cycle.id, signup_shortfall=Decimal(0),
        )
    )  # fmt: skip
    ledger.append(
        db, account_id=account.id, cycle=cycle, kind=EntryKind.usage_debit, amount=Decimal("-1234.567"),
        user_id=member.id, group_id=group.id, description="gateway call",
    )  # fmt: skip
    await db.commit()
    return account, owner, member, group, cycle


async def _sign_in(client: AsyncClient, user: User) -> str:
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text
    return await csrf_for(client, PAGE) if user.role.value != "member" else await csrf_for(client, "/")


async def _put(client: AsyncClient, url: str, token: str, data: dict[str, str]) -> Response:
    return await client.put(url, data=data, headers={"HX-Request": "true", "X-CSRF-Token": token})


async def _allocation(db: AsyncSession, user_id: uuid.UUID) -> tuple[Decimal, Decimal] | None:
    await db.commit()
    row = await db.scalar(
        select(MemberAllocation)
        .where(MemberAllocation.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    return None if row is None else (row.monthly, row.extra)


async def _budget(db: AsyncSession, group_id: uuid.UUID) -> tuple[Decimal, Decimal, Decimal]:
    await db.commit()
    row = await db.scalar(
        select(GroupBudget).where(GroupBudget.group_id == group_id).execution_options(populate_existing=True)
    )
    assert row is not None
    return row.monthly, row.extra, row.auto_approve_limit


async def _audits(db: AsyncSession, account_id: uuid.UUID) -> list[str]:
    await db.commit()
    return list(
        await db.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.account_id == account_id, AuditEntry.action.like("credits.%"))
            .order_by(AuditEntry.created_at)
        )
    )


async def test_the_groups_table(db: AsyncSession, client: AsyncClient) -> None:
    _account, owner, _member, group, _ = await _org(db)
    await _sign_in(client, owner)

    page = await client.get(PAGE)

    assert page.status_code == 200, page.text
    text = page.text
    assert 'class="tab active" href="/credits/allocations" aria-current="page" id="tab-allocations"' in text
    # Default: 2 members, 50,000.5 monthly + 2,500 extra; 10,250.25 given to Mia; 1,234.567 used.
    assert _row(text, f"alloc-g-{group.id}") == [
        "Default default", "2", "50,000.50", "2,500.00", "10,250.25", "42,250.25", "1,234.57", "1,000.00",
        "Unsaved x Statement",
    ]  # fmt: skip
    assert 'title="Exact value: 50,000.5 credits. Click to edit."' in text
    assert 'data-name="monthly" data-original="50,000.5" value="50,000.5"' in text  # with separators
    summary = re.sub(r"<[^>]+>", "", text)
    assert "52,500.50 of 120,000.00 credits per cycle given to groups" in summary
    assert "67,499.50 not allocated" in summary
    # The exact figures are on hover.
    assert '<span class="amount" title="52500.5">52,500.50</span> of ' in text
    assert '<span class="amount" title="67499.5">67,499.50</span> not allocated' in text
    assert "Credit tracking is off" not in text
    assert "No group has a budget yet" not in text
    assert 'id="credits-refresh"' in text

    refreshed = await client.get(PAGE, headers={"HX-Request": "true", "HX-Target": "credits-allocations"})
    assert refreshed.status_code == 200
    assert "<html" not in refreshed.text
    assert f'id="alloc-g-{group.id}"' in refreshed.text


async def test_tracking_off_and_no_budgets_yet(db: AsyncSession, client: AsyncClient) -> None:
    account, owner = await make_account(db, name="Fresh")
    account.credit_factor = Decimal(0)
    await db.commit()
    await _sign_in(client, owner)

    text = (await client.get(PAGE)).text

    assert "Credit tracking is off" in text
    assert "No group has a budget yet" in text


async def test_a_group_expands_to_its_members(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, member, group, _ = await _org(db)
    short = await make_user(db, account, email="sam@example.com")
    short.name = "Sam Short"
    db.add(
        MemberAllocation(
            user_id=short.id, account_id=account.id, monthly=Decimal(0), extra=Decimal(0),
            signup_shortfall=Decimal(75),
        )
    )  # fmt: skip
    await db.commit()
    await _sign_in(client, owner)

    panel = await client.get(f"{PAGE}/groups/{group.id}/members", headers={"HX-Request": "true"})

    assert panel.status_code == 200, panel.text
    text = panel.text
    assert 'placeholder="Search members in Default…"' in text
    assert _showing(1, 3, 3) in text
    assert _row(text, f"alloc-m-{member.id}") == [
        "M Mia Member mia@example.com", "10,000.00", "250.25", "1,234.57", "9,015.68", "Unsaved x Statement",
    ]  # fmt: skip
    assert "Signup short 75.00" in _row(text, f"alloc-m-{short.id}")[0]
    assert "Signup short" not in _row(text, f"alloc-m-{member.id}")[0]
    assert "Default: budget 52,500.50 · distributed 10,250.25 · available 42,250.25" in re.sub(
        r"<[^>]+>", "", text
    )
    assert 'budget <span class="amount" title="52500.5">52,500.50</span>' in text


async def test_member_search_and_pages(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _member, group, _ = await _org(db)
    for n in range(22):
        user = await make_user(db, account, email=f"person{n:02d}@example.com")
        user.name = f"Person {n:02d}"
    zed = await make_user(db, account, email="zed@other.example")
    zed.name = "Zed"
    await db.commit()
    await _sign_in(client, owner)
    url = f"{PAGE}/groups/{group.id}/members"
    results = {"HX-Request": "true", "HX-Target": f"alloc-mresults-{group.id}"}

    first = await client.get(url, headers={"HX-Request": "true"})
    assert _showing(1, 20, 25) in first.text
    assert "Page 1 of 2" in first.text
    assert f'hx-get="{url}?page=2"' in first.text
    second = await client.get(url, params={"page": 2}, headers=results)
    assert _showing(21, 25, 25) in second.text
    assert "Search members" not in second.text  # only the results part
    assert f'alloc-m-{zed.id}"' in second.text

    by_mail = await client.get(url, params={"q": "OTHER.example"}, headers=results)
    assert _showing(1, 1, 1) in by_mail.text
    assert f'alloc-m-{zed.id}"' in by_mail.text
    by_name = await client.get(url, params={"q": "person 1"}, headers=results)
    assert _showing(1, 10, 10) in by_name.text
    assert "q=person+1&amp;page" not in by_name.text  # one page: no links
    nothing = await client.get(url, params={"q": "nobody"}, headers=results)
    assert "No member matches “nobody”." in nothing.text
    beyond = await client.get(url, params={"page": 9}, headers=results)
    assert _showing(21, 25, 25) in beyond.text


async def test_save_a_members_monthly(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, member, group, _ = await _org(db)
    token = await _sign_in(client, owner)

    response = await _put(client, f"{PAGE}/members/{member.id}", token, {"monthly": "12000.5"})

    assert response.status_code == 200, response.text
    assert _banner(response) == (
        "success",
        "Allocation saved: Mia Member — monthly 10,000 → 12,000.5. "
        "Default has distributed 12,250.75 of its 52,500.5 credits; 40,249.75 available.",
    )
    assert _row(response.text, f"alloc-m-{member.id}")[1:5] == [
        "12,000.50",
        "250.25",
        "1,234.57",
        "11,016.18",
    ]
    assert "\u2212 used 1,234.567 \u2212 held 0 = 11,016.183 credits" in response.text  # exact on hover
    # The group's row, swapped out of band: distributed and available are recalculated.
    assert _row(response.text, f"alloc-g-{group.id}")[4:6] == ["12,250.75", "40,249.75"]
    assert f'id="alloc-g-{group.id}" data-kind="group" hx-swap-oob="true"' in response.text
    assert 'id="alloc-banner" class="alloc-banner" aria-live="polite" hx-swap-oob="true"' in response.text
    assert await _allocation(db, member.id) == (Decimal("12000.5"), Decimal("250.25"))
    assert await _audits(db, account.id) == ["credits.member_allocation_updated"]

    extra = await _put(client, f"{PAGE}/members/{member.id}", token, {"extra": "1,000"})
    assert extra.status_code == 200, extra.text
    assert "extra 250.25 → 1,000" in _banner(extra)[1]
    assert await _allocation(db, member.id) == (Decimal("12000.5"), Decimal(1000))


async def test_save_a_groups_figures(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _member, group, _ = await _org(db)
    token = await _sign_in(client, owner)

    response = await _put(
        client, f"{PAGE}/groups/{group.id}", token, {"monthly": "60000", "auto_approve_limit": "0"}
    )

    assert response.status_code == 200, response.text
    assert _banner(response) == (
        "success",
        "Allocation saved: Default — monthly 50,000.5 → 60,000, auto-approve 1,000 → 0. "
        "Budget 62,500 credits; 52,249.75 available to distribute.",
    )
    assert _row(response.text, f"alloc-g-{group.id}")[2:8] == [
        "60,000.00", "2,500.00", "10,250.25", "52,249.75", "1,234.57", "0.00",
    ]  # fmt: skip
    assert "62,500.00 of 120,000.00 credits per cycle given to groups" in re.sub(
        r"<[^>]+>", "", response.text
    )
    assert await _budget(db, group.id) == (Decimal(60000), Decimal(2500), Decimal(0))
    assert await _audits(db, account.id) == ["credits.group_allocation_updated"]


async def test_a_refused_edit_says_why_and_changes_nothing(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, member, group, _ = await _org(db)
    token = await _sign_in(client, owner)

    over = await _put(client, f"{PAGE}/members/{member.id}", token, {"monthly": "60000"})
    assert over.status_code == 409
    assert over.headers["HX-Reswap"] == "none"
    assert _banner(over) == (
        "error",
        "Not saved. Mia Member: Default would distribute 60,250.25 credits, which exceeds its budget "
        "of 52,500.5 by 7,749.75.",
    )
    assert "alloc-m-" not in over.text  # the row is left as typed
    assert await _allocation(db, member.id) == (Decimal(10000), Decimal("250.25"))

    too_much = await _put(client, f"{PAGE}/groups/{group.id}", token, {"extra": "80000"})
    assert too_much.status_code == 409
    assert "exceeds the account's 120,000 credits per cycle by 10,000.5" in _banner(too_much)[1]
    below = await _put(client, f"{PAGE}/groups/{group.id}", token, {"monthly": "5000", "extra": "0"})
    assert below.status_code == 409
    assert "is 5,250.25 below that" in _banner(below)[1]

    for value, message in [
        ("ten", "The monthly allocation must be a number of credits, such as 1500 or 1500.25."),
        ("", "The monthly allocation must be a number of credits, such as 1500 or 1500.25."),
        ("-5", "The monthly allocation must be 0 or more."),
        ("1.1234567", "The monthly allocation must have at most 6 decimal places."),
    ]:
        bad = await _put(client, f"{PAGE}/members/{member.id}", token, {"monthly": value})
        assert bad.status_code == 422, value
        assert _banner(bad) == ("error", f"Not saved. Mia Member: {message}")
    nothing = await _put(client, f"{PAGE}/members/{member.id}", token, {})
    assert nothing.status_code == 422
    assert "Nothing to save" in _banner(nothing)[1]

    assert await _allocation(db, member.id) == (Decimal(10000), Decimal("250.25"))
    assert await _budget(db, group.id) == (Decimal("50000.5"), Decimal(2500), Decimal(1000))
    assert await _audits(db, account.id) == []


async def test_another_accounts_group_and_user_are_not_found(db: AsyncSession, client: AsyncClient) -> None:
    _account, owner, _member, _group, _ = await _org(db)
    other, _ = await make_account(db, name="Elsewhere")
    stranger = await make_user(db, other, email="stranger@example.com")
    their_group = await default_group(db, other.id)
    await db.commit()
    token = await _sign_in(client, owner)

    assert (await client.get(f"{PAGE}/groups/{their_group.id}/members")).status_code == 404
    assert (await client.get(f"{PAGE}/groups/not-a-uuid/members")).status_code == 404
    assert (await _put(client, f"{PAGE}/groups/{their_group.id}", token, {"monthly": "1"})).status_code == 404
    assert (await _put(client, f"{PAGE}/members/{stranger.id}", token, {"monthly": "1"})).status_code == 404
    assert (await _put(client, f"{PAGE}/members/{uuid.uuid4()}", token, {"monthly": "1"})).status_code == 404
    assert await _allocation(db, stranger.id) is None
    await db.commit()
    assert (
        await db.scalar(
            select(func.count()).select_from(GroupBudget).where(GroupBudget.account_id == other.id)
        )
        == 0
    )


async def test_csrf_is_required(db: AsyncSession, client: AsyncClient) -> None:
    _account, owner, member, group, _ = await _org(db)
    await _sign_in(client, owner)

    for url, data in [
        (f"{PAGE}/members/{member.id}", {"monthly": "1"}),
        (f"{PAGE}/groups/{group.id}", {"monthly": "1"}),
    ]:
        missing = await client.put(url, data=data, headers={"HX-Request": "true"})
        assert missing.status_code == 403
        forged = await _put(client, url, "forged", data)
        assert forged.status_code == 403
    assert await _allocation(db, member.id) == (Decimal(10000), Decimal("250.25"))
    assert await _budget(db, group.id) == (Decimal("50000.5"), Decimal(2500), Decimal(1000))


async def test_members_are_refused(db: AsyncSession, client: AsyncClient) -> None:
    _account, _owner, member, group, _ = await _org(db)
    token = await _sign_in(client, member)

    assert (await client.get(PAGE)).status_code == 403
    assert (await client.get(f"{PAGE}/groups/{group.id}/members")).status_code == 403
    assert (await _put(client, f"{PAGE}/members/{member.id}", token, {"monthly": "99999"})).status_code == 403
    assert (await _put(client, f"{PAGE}/groups/{group.id}", token, {"monthly": "1"})).status_code == 403
    overview = await client.get("/credits")
    assert 'id="tab-allocations"' not in overview.text
    assert await _allocation(db, member.id) == (Decimal(10000), Decimal("250.25"))


async def test_names_are_escaped(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _member, _group, _ = await _org(db)
    group = Group(account_id=account.id, name="<b>R&D</b>", name_key="<b>r&d</b>")
    db.add(group)
    await db.commit()
    await _sign_in(client, owner)

    page = await client.get(PAGE)
    panel = await client.get(f"{PAGE}/groups/{group.id}/members")

    assert "<b>R&D</b>" not in page.text
    assert "&lt;b&gt;R&amp;D&lt;/b&gt;" in page.text
    assert 'placeholder="Search members in &lt;b&gt;R&amp;D&lt;/b&gt;…"' in panel.text
    assert "has no members" in panel.text
