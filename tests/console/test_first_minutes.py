"""The first five minutes in the console: the navigation (highlight, pending-requests count), the 404
page inside the app shell, and the low-credits banner with its way to ask for more."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditRequest, EntryKind, MemberAllocation, RequestStatus
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import console_login, make_account, make_user

ACTIVE_LINK = re.compile(r'<a href="([^"]+)" class="nav-link active"')
NAV_COUNT = re.compile(
    r'<a href="/credits" class="nav-link[^"]*">.*?data-testid="nav-count">(\d+)</span>', re.S
)


async def _sign_in(client: AsyncClient, user: User) -> None:
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text


async def test_invitations_highlight_users_in_the_navigation(db: AsyncSession, client: AsyncClient) -> None:
    _, owner = await make_account(db)
    await _sign_in(client, owner)

    page = await client.get("/invitations")

    assert page.status_code == 200
    assert ACTIVE_LINK.findall(page.text) == ["/users"]


async def test_an_unknown_address_is_a_404_inside_the_console_when_signed_in(
    db: AsyncSession, client: AsyncClient
) -> None:
    _, owner = await make_account(db, name="Shell Co")
    anonymous = await client.get("/no-such-page")
    await _sign_in(client, owner)

    page = await client.get("/no-such-page")

    assert anonymous.status_code == 404
    assert 'class="sidebar"' not in anonymous.text  # nobody signed in: no console around it
    assert page.status_code == 404
    assert "Page not found" in page.text
    assert 'class="sidebar"' in page.text  # the app shell: navigation, account, sign out
    assert "Shell Co" in page.text
    assert 'action="/logout"' in page.text


async def _pending(db: AsyncSession, account: Account, user: User, n: int) -> None:
    cycle = await current_cycle(db, account)
    for status in [RequestStatus.pending] * n + [RequestStatus.denied]:
        db.add(
            CreditRequest(
                id=uuid.uuid4(), account_id=account.id, user_id=user.id, group_id=user.group_id,
                cycle_id=cycle.id, amount_requested=Decimal(10), reason="more", status=status,
            )
        )  # fmt: skip
    await db.commit()


async def test_administrators_see_how_many_credit_requests_wait(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner = await make_account(db, name="Waiting Co")
    member = await make_user(db, account)
    await _pending(db, account, member, 3)
    other, _ = await make_account(db, name="Elsewhere")
    await _pending(db, other, await make_user(db, other), 5)  # another account's: not counted
    await _sign_in(client, owner)

    dashboard = await client.get("/")
    requests_tab = await client.get("/credits/requests")

    match = NAV_COUNT.search(dashboard.text)
    assert match
    assert match.group(1) == "3"
    tab = r'id="tab-requests">Requests<span class="count"[^>]*>3 pending</span>'
    assert re.search(tab, requests_tab.text)
    # A member decides nothing: no count.
    client.cookies.clear()
    await _sign_in(client, member)
    assert 'data-testid="nav-count"' not in (await client.get("/")).text


async def _member_using(db: AsyncSession, used: str, *, monthly: str = "1000") -> User:
    account, _ = await make_account(db, name="Thrifty Co")
    account.credit_factor = Decimal(1)
    account.credits_per_cycle = Decimal(100000)
    cycle = await current_cycle(db, account)
    member = await make_user(db, account)
    db.add(MemberAllocation(user_id=member.id, account_id=account.id, monthly=Decimal(monthly)))
    ledger.append(
        db, account_id=account.id, cycle=cycle, kind=EntryKind.usage_debit, amount=-Decimal(used),
        user_id=member.id, group_id=member.group_id, description="gateway call",
    )  # fmt: skip
    await db.commit()
    return member


def _banner(html: str) -> str:
    match = re.search(r'<div class="banner [^"]*" role="status" id="low-credits".*?</div>', html, re.S)
    return match.group(0) if match else ""


async def test_a_member_below_80_percent_sees_no_banner(db: AsyncSession, client: AsyncClient) -> None:
    await _sign_in(client, await _member_using(db, "799.99"))

    assert _banner((await client.get("/")).text) == ""
    assert _banner((await client.get("/credits")).text) == ""


async def test_a_member_at_95_percent_is_warned_and_can_ask_for_credits(
    db: AsyncSession, client: AsyncClient
) -> None:
    await _sign_in(client, await _member_using(db, "950"))

    for path in ("/", "/credits"):
        banner = _banner((await client.get(path)).text)
        assert 'data-level="low"' in banner, path
        assert "You have used 95 % of your credits this cycle" in banner
        assert 'href="/credits/requests?new=1"' in banner
    form = await client.get("/credits/requests?new=1")
    assert re.search(r'<dialog id="file-request"[^>]*x-init="\$el.showModal\(\)"', form.text)


async def test_a_member_who_used_everything_is_told_calls_are_refused(
    db: AsyncSession, client: AsyncClient
) -> None:
    await _sign_in(client, await _member_using(db, "1000"))

    banner = _banner((await client.get("/")).text)

    assert 'data-level="exhausted"' in banner
    assert "You have used all your credits this cycle" in banner
    assert 'href="/credits/requests?new=1"' in banner
