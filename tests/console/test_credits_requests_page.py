"""Credits & Allocations, Requests tab: the list (filter, member scoping, pagination, empty states),
filing a request, approving (in full or less) and denying, and refusals that change nothing."""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditRequest, GroupBudget, MemberAllocation, RequestStatus
from cockpit.groups.repository import default_group
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import console_login, csrf_for, make_account, make_user

FLASH = re.compile(
    r'<div class="banner banner-(success|error|info)" role="status"[^>]*>.*?<span>([^<]*)</span>', re.S
)
BANNER_ERROR = re.compile(r'<div class="banner banner-error"[^>]*>.*?<span>([^<]*)</span>', re.S)
ROW = re.compile(r'<tr class="req-row[^"]*" id="req-([0-9a-f-]{36})" data-status="([a-z_]+)"')
PAGE = "/credits/requests"


@dataclass
class Org:
    account: Account
    owner: User
    member: User
    other: User


async def _org(db: AsyncSession, *, monthly: str = "1000", auto: str = "0") -> Org:
    account, owner = await make_account(db, name="Nimbus Analytics")
    account.credit_factor = Decimal(1)
    account.credits_per_cycle = Decimal(100000)
    group = await default_group(db, account.id)
    db.add(
        GroupBudget(
            group_id=group.id, account_id=account.id, monthly=Decimal(monthly), extra=Decimal(0),
            auto_approve_limit=Decimal(auto),
        )
    )  # fmt: skip
    await db.commit()
    member = await make_user(db, account, email="mia@example.com")
    member.name = "Mia Member"
    other = await make_user(db, account, email="olaf@example.com")
    other.name = "Olaf Other"
    await db.commit()
    return Org(account, owner, member, other)


async def _request(
    db: AsyncSession,
    org: Org,
    user: User,
    amount: str,
    *,
    status: RequestStatus = RequestStatus.pending,
    reason: str = "Training run",
    minutes_ago: int = 0,
    approved: str | None = None,
    note: str = "",
) -> uuid.UUID:
    cycle = await current_cycle(db, org.account)
    request = CreditRequest(
        id=uuid.uuid4(), account_id=org.account.id, user_id=user.id, group_id=user.group_id,
        cycle_id=cycle.id,
        amount_requested=Decimal(amount), reason=reason, status=status, note=note,
        amount_approved=Decimal(approved) if approved is not None else None,
        decided_at=None if status is RequestStatus.pending else utcnow(),
    )  # fmt: skip
    request.created_at = utcnow() - timedelta(minutes=minutes_ago)
    db.add(request)
    await db.commit()
    return request.id


async def _sign_in(client: AsyncClient, user: User) -> None:
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text


async def _post(client: AsyncClient, url: str, data: dict[str, str]) -> Response:
    return await client.post(url, data={**data, "csrf_token": await csrf_for(client, PAGE)})


async def _follow(client: AsyncClient, response: Response) -> tuple[str, str, str]:
    """A POST's redirect and the page it leads to: (the page's HTML, flash kind, flash message)."""
    assert response.status_code == 303, response.text
    page = await client.get(response.headers["location"])
    assert page.status_code == 200, page.text
    match = FLASH.search(page.text)
    assert match, "no flash message"
    return page.text, match.group(1), html.unescape(match.group(2))


async def _stored(db: AsyncSession, request_id: uuid.UUID) -> CreditRequest:
    await db.commit()
    found = await db.scalar(
        select(CreditRequest).where(CreditRequest.id == request_id).execution_options(populate_existing=True)
    )
    assert found is not None
    return found


async def _extra(db: AsyncSession, user: User) -> Decimal:
    await db.commit()
    allocation = await db.scalar(
        select(MemberAllocation)
        .where(MemberAllocation.user_id == user.id)
        .execution_options(populate_existing=True)
    )
    return allocation.extra if allocation is not None else Decimal(0)


async def _audits(db: AsyncSession, account_id: uuid.UUID) -> int:
    await db.commit()
    return int(
        await db.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.account_id == account_id, AuditEntry.action.like("credit_request.%"))
        )
        or 0
    )


def _rows(text: str) -> list[tuple[str, str]]:
    return ROW.findall(text)


def _row(text: str, request_id: uuid.UUID) -> str:
    match = re.search(rf'<tr class="req-row[^"]*" id="req-{request_id}".*?</tr>', text, re.S)
    assert match, "row not found"
    return match.group(0)


# ---- the list ----


async def test_an_administrator_sees_every_request_and_filters_by_status(
    db: AsyncSession, client: AsyncClient
) -> None:
    o = await _org(db)
    pending = await _request(db, o, o.member, "150", reason="Fine-tuning <the> big model", minutes_ago=1)
    approved = await _request(
        db, o, o.other, "300", status=RequestStatus.approved, approved="200", minutes_ago=2
    )
    denied = await _request(
        db, o, o.member, "5000", status=RequestStatus.denied, note="Too much", minutes_ago=3
    )
    auto = await _request(
        db, o, o.other, "40", status=RequestStatus.auto_approved, approved="40", minutes_ago=4
    )
    await _sign_in(client, o.owner)

    page = await client.get(PAGE)

    assert page.status_code == 200, page.text
    text = page.text
    assert 'id="tab-requests"' in text
    assert 'aria-current="page" id="tab-requests"' in text
    assert 'id="tab-settings"' in text
    assert "css/credits-forms.css" in text
    assert _rows(text) == [
        (str(pending), "pending"),
        (str(approved), "approved"),
        (str(denied), "denied"),
        (str(auto), "auto_approved"),
    ]
    for label in ("All statuses", "Pending", "Approved", "Denied", "Auto-approved"):
        assert f">{label}</option>" in text
    row = _row(text, pending)
    assert "Mia Member" in row
    assert "mia@example.com" in row
    assert "150" in row
    assert 'title="Fine-tuning &lt;the&gt; big model"' in row
    assert '<span class="badge badge-warning">Pending</span>' in row
    assert "req-approve" in row
    assert "req-deny" in row
    assert '<span class="badge badge-success">Approved</span>' in _row(text, approved)
    assert ">200.00</span></td>" in _row(text, approved)
    assert '<span class="badge badge-danger">Denied</span>' in _row(text, denied)
    assert "Note: Too much" in _row(text, denied)
    assert '<span class="badge badge-success">Auto-approved</span>' in _row(text, auto)
    assert "req-approve" not in _row(text, approved)

    # The filter is a query parameter (a shareable address), and htmx swaps only the results.
    only_pending = await client.get(PAGE, params={"status": "pending"})
    assert _rows(only_pending.text) == [(str(pending), "pending")]
    assert '<option value="pending" selected>' in only_pending.text
    fragment = await client.get(
        PAGE, params={"status": "denied"}, headers={"HX-Request": "true", "HX-Target": "credits-requests"}
    )
    assert fragment.status_code == 200
    assert "nav-title" not in fragment.text
    assert _rows(fragment.text) == [(str(denied), "denied")]
    assert 'hx-get="/credits/requests?status=denied"' in fragment.text  # Refresh keeps the filter

    # An unknown status shows everything, with a notice.
    unknown = await client.get(PAGE, params={"status": "lost"})
    assert unknown.status_code == 200
    assert len(_rows(unknown.text)) == 4
    assert "Unknown status" in unknown.text


async def test_empty_states_and_pagination(db: AsyncSession, client: AsyncClient) -> None:
    o = await _org(db)
    await _sign_in(client, o.owner)

    empty = await client.get(PAGE)
    assert "No credit requests yet" in empty.text
    assert 'id="credit-requests-table"' not in empty.text

    for i in range(27):
        await _request(db, o, o.member, str(i + 1), status=RequestStatus.denied, minutes_ago=i)
    none_pending = await client.get(PAGE, params={"status": "pending"})
    assert "No pending requests" in none_pending.text
    assert "No credit requests yet" not in none_pending.text

    first = await client.get(PAGE, params={"status": "denied"})
    assert len(_rows(first.text)) == 25
    assert "1\u201325 of 27" in first.text
    assert 'href="?status=denied&page=2"' in first.text
    second = await client.get(PAGE, params={"status": "denied", "page": 2})
    assert len(_rows(second.text)) == 2


async def test_a_member_sees_only_their_own_requests_without_actions(
    db: AsyncSession, client: AsyncClient
) -> None:
    o = await _org(db)
    mine = await _request(db, o, o.member, "150", status=RequestStatus.denied, note="Not this cycle")
    await _request(db, o, o.other, "300")
    await _sign_in(client, o.member)

    page = await client.get(PAGE)

    assert page.status_code == 200
    assert _rows(page.text) == [(str(mine), "denied")]
    assert "olaf@example.com" not in page.text
    assert "Note: Not this cycle" in page.text
    assert "req-approve" not in page.text
    assert 'id="approve-dialog"' not in page.text
    assert 'id="tab-settings"' not in page.text
    assert 'id="request-credits"' in page.text

    await _request(db, o, o.other, "10", status=RequestStatus.approved, approved="10")
    client.cookies.clear()
    await _sign_in(client, o.other)
    assert "mia@example.com" not in (await client.get(PAGE)).text


async def test_a_member_without_requests_sees_how_to_ask(db: AsyncSession, client: AsyncClient) -> None:
    o = await _org(db)
    await _request(db, o, o.other, "300")
    await _sign_in(client, o.member)

    page = await client.get(PAGE)

    assert "You have not asked for credits yet" in page.text


# ---- filing ----


async def test_a_member_files_requests_auto_approved_or_pending(
    db: AsyncSession, client: AsyncClient
) -> None:
    o = await _org(db, monthly="1000", auto="100")
    await _sign_in(client, o.member)

    text, kind, message = await _follow(
        client, await _post(client, PAGE, {"amount": "80", "reason": "Evals"})
    )
    assert kind == "success"
    assert message == (
        "Your request for 80 credits was approved automatically: "
        "they were added to your extra credits for this cycle."
    )
    assert await _extra(db, o.member) == Decimal(80)
    assert '<span class="badge badge-success">Auto-approved</span>' in text

    _, _, message = await _follow(
        client, await _post(client, PAGE, {"amount": "1,500.5", "reason": "A large batch"})
    )
    assert (
        message == "Your request for 1,500.5 credits was sent and is pending until an administrator decides."
    )
    assert await _extra(db, o.member) == Decimal(80)
    stored = await db.scalar(select(CreditRequest).where(CreditRequest.amount_requested == Decimal("1500.5")))
    assert stored is not None
    assert stored.status is RequestStatus.pending


async def test_a_refused_request_keeps_what_was_typed(db: AsyncSession, client: AsyncClient) -> None:
    o = await _org(db)
    await _sign_in(client, o.member)

    for amount, reason, error in [
        ("lots", "Need more <now>", "The amount must be a number of credits, such as 1500 or 1500.25."),
        ("0", "Need more <now>", "The amount must be greater than 0."),
        ("1.1234567", "Need more <now>", "The amount must have at most 6 decimal places."),
        ("50", "   ", "The reason"),
    ]:
        response = await _post(client, PAGE, {"amount": amount, "reason": reason})
        assert response.status_code == 422, response.text
        banner = BANNER_ERROR.search(response.text)
        assert banner, response.text
        assert html.unescape(banner.group(1)).startswith(error), response.text
        assert 'name="amount" id="file-amount"' in response.text
        assert f'value="{amount}"' in response.text
        assert html.escape(reason.strip() or reason, quote=False) in response.text
        assert 'id="file-request" class="modal modal-wide" aria-labelledby="file-request-title" x-data' in (
            response.text
        )
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(CreditRequest)) == 0
    assert await _audits(db, o.account.id) == 0


# ---- deciding ----


async def test_approve_the_requested_amount(db: AsyncSession, client: AsyncClient) -> None:
    o = await _org(db)
    rid = await _request(db, o, o.member, "150")
    await _sign_in(client, o.owner)

    response = await _post(client, f"{PAGE}/{rid}/approve", {"amount": "", "status": "pending", "page": "1"})

    text, kind, message = await _follow(client, response)
    assert response.headers["location"] == f"{PAGE}?status=pending&selected={rid}"
    assert kind == "success"
    assert (
        message
        == "Approved 150 credits for Mia Member: they were added to their extra credits for this cycle."
    )
    stored = await _stored(db, rid)
    assert stored.status is RequestStatus.approved
    assert stored.amount_approved == Decimal(150)
    assert stored.decided_by == o.owner.id
    assert await _extra(db, o.member) == Decimal(150)
    assert "No pending requests" in text  # the filtered view no longer lists it
    all_text = (await client.get(PAGE, params={"selected": str(rid)})).text
    row = _row(all_text, rid)
    assert 'class="req-row is-selected"' in row
    assert '<span class="badge badge-success">Approved</span>' in row


async def test_approve_less_than_requested(db: AsyncSession, client: AsyncClient) -> None:
    o = await _org(db)
    rid = await _request(db, o, o.member, "150")
    await _sign_in(client, o.owner)

    response = await _post(client, f"{PAGE}/{rid}/approve", {"amount": "99.5"})

    text, _, message = await _follow(client, response)
    assert message == (
        "Approved 99.5 credits for Mia Member (of the 150 requested): "
        "they were added to their extra credits for this cycle."
    )
    stored = await _stored(db, rid)
    assert (stored.status, stored.amount_approved) == (RequestStatus.approved, Decimal("99.5"))
    assert await _extra(db, o.member) == Decimal("99.5")
    row = _row(text, rid)
    assert ">99.50</span></td>" in row
    assert ">150.00</span></td>" in row


async def test_deny_with_a_note(db: AsyncSession, client: AsyncClient) -> None:
    o = await _org(db)
    rid = await _request(db, o, o.member, "150")
    await _sign_in(client, o.owner)

    response = await _post(client, f"{PAGE}/{rid}/deny", {"note": "Budget is frozen this month"})

    text, _, message = await _follow(client, response)
    assert message == "Denied Mia Member's request for 150 credits."
    stored = await _stored(db, rid)
    assert (stored.status, stored.note, stored.amount_approved) == (
        RequestStatus.denied,
        "Budget is frozen this month",
        None,
    )
    assert await _extra(db, o.member) == Decimal(0)
    assert "Note: Budget is frozen this month" in _row(text, rid)


async def test_refused_decisions_change_nothing_and_say_why(db: AsyncSession, client: AsyncClient) -> None:
    o = await _org(db, monthly="100")
    big = await _request(db, o, o.member, "150")
    decided = await _request(db, o, o.other, "20", status=RequestStatus.denied)
    await _sign_in(client, o.owner)
    audits = await _audits(db, o.account.id)

    over = "The group has 100 credits available; approving 150 would exceed its budget by 50 credits."
    cases = [
        (big, "approve", {"amount": "150"}, 409, over),
        (big, "approve", {"amount": "151"}, 422, "The amount may be at most the 150 credits requested."),
        (big, "approve", {"amount": "-5"}, 422, "The amount must be greater than 0."),
        (big, "approve", {"amount": "ten"}, 422, "The amount must be a number of credits"),
        (decided, "approve", {"amount": "20"}, 409, "Only pending requests can be approved;"),
        (decided, "deny", {"note": "again"}, 409, "Only pending requests can be denied;"),
        (big, "deny", {"note": "x" * 1001}, 422, "The note"),
    ]  # fmt: skip
    for rid, verb, data, status, error in cases:
        response = await _post(client, f"{PAGE}/{rid}/{verb}", data)
        assert response.status_code == status, (verb, data, response.text)
        banner = BANNER_ERROR.search(response.text)
        assert banner, response.text
        assert html.unescape(banner.group(1)).startswith(error), (error, response.text)
        # The dialog opens again on the same request with what was typed.
        assert f'action="/credits/requests/{rid}/{verb}"' in response.text
        assert f"$refs.{verb}.showModal()" in response.text
        assert 'class="req-row is-selected"' in _row(response.text, rid)
        if "amount" in data:
            assert f'"{data["amount"]}"' in html.unescape(response.text)

    assert (await _stored(db, big)).status is RequestStatus.pending
    assert (await _stored(db, decided)).status is RequestStatus.denied
    assert await _extra(db, o.member) == Decimal(0)
    assert await _audits(db, o.account.id) == audits


async def test_members_cannot_decide_and_csrf_is_required(db: AsyncSession, client: AsyncClient) -> None:
    o = await _org(db)
    rid = await _request(db, o, o.other, "50")
    await _sign_in(client, o.member)

    for verb in ("approve", "deny"):
        response = await _post(client, f"{PAGE}/{rid}/{verb}", {"amount": "50"})
        assert response.status_code == 403
    own = await _request(db, o, o.member, "50")
    assert (await _post(client, f"{PAGE}/{own}/approve", {})).status_code == 403

    client.cookies.clear()
    await _sign_in(client, o.owner)
    await client.get(PAGE)
    no_token = await client.post(f"{PAGE}/{rid}/approve", data={"amount": "50"})
    assert no_token.status_code == 403
    assert "did not come from Cockpit" in no_token.text
    no_token = await client.post(PAGE, data={"amount": "50", "reason": "x"})
    assert no_token.status_code == 403
    assert (await _stored(db, rid)).status is RequestStatus.pending
    assert (await _stored(db, own)).status is RequestStatus.pending


async def test_another_accounts_request_is_not_found(db: AsyncSession, client: AsyncClient) -> None:
    o = await _org(db)
    account, stranger_owner = await make_account(db, name="Elsewhere")
    stranger = await make_user(db, account, email="stranger@example.com")
    theirs = CreditRequest(
        id=uuid.uuid4(), account_id=account.id, user_id=stranger.id, group_id=stranger.group_id,
        amount_requested=Decimal(10), reason="theirs", status=RequestStatus.pending, note="",
    )  # fmt: skip
    db.add(theirs)
    await db.commit()
    await _sign_in(client, o.owner)

    assert "stranger@example.com" not in (await client.get(PAGE)).text
    for verb in ("approve", "deny"):
        response = await _post(client, f"{PAGE}/{theirs.id}/{verb}", {"amount": "10"})
        assert response.status_code == 404
    assert (await _post(client, f"{PAGE}/not-a-uuid/approve", {})).status_code == 404
    assert (await _stored(db, theirs.id)).status is RequestStatus.pending
    assert stranger_owner.account_id == account.id


async def test_the_page_needs_a_signed_in_user(db: AsyncSession, client: AsyncClient) -> None:
    response = await client.get(PAGE)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
