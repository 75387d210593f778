"""Credits & Allocations, Settings tab: the figures shown, each section's save (limit, cadence,
credit factor, signup credits), refusals that change nothing, "Reset cycle now", and who may."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC
from decimal import Decimal
from zoneinfo import ZoneInfo

from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.console.formatting import datetime_text
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind, GroupBudget
from cockpit.groups.repository import default_group
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import console_login, csrf_for, make_account, make_user

FLASH = re.compile(
    r'<div class="banner banner-(success|error|info)" role="status"[^>]*>.*?<span>([^<]*)</span>', re.S
)
BANNER_ERROR = re.compile(r'<div class="banner banner-error"[^>]*>.*?<span>([^<]*)</span>', re.S)
PAGE = "/credits/settings"


async def _org(db: AsyncSession) -> tuple[Account, User, User]:
    account, owner = await make_account(db, name="Nimbus Analytics")
    account.credit_factor = Decimal(100)
    account.credits_per_cycle = Decimal(120000)
    account.signup_credits = Decimal(0)
    account.timezone = "Europe/Paris"
    await db.commit()
    member = await make_user(db, account, email="mia@example.com")
    group = await default_group(db, account.id)
    cycle = await current_cycle(db, account)
    db.add(
        GroupBudget(
            group_id=group.id, account_id=account.id, monthly=Decimal(50000), extra=Decimal(0),
            auto_approve_limit=Decimal(0),
        )
    )  # fmt: skip
    ledger.append(
        db, account_id=account.id, cycle=cycle, kind=EntryKind.usage_debit, amount=Decimal("-1234.5"),
        user_id=member.id, group_id=group.id, description="gateway call",
    )  # fmt: skip
    ledger.append(
        db, account_id=account.id, cycle=cycle, kind=EntryKind.hold, amount=Decimal("-20"),
        user_id=member.id, group_id=group.id, description="call in flight",
    )  # fmt: skip
    await db.commit()
    return account, owner, member


async def _sign_in(client: AsyncClient, user: User) -> None:
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text


async def _post(client: AsyncClient, url: str, data: dict[str, str]) -> Response:
    return await client.post(url, data={**data, "csrf_token": await csrf_for(client, "/credits/requests")})


async def _flash(client: AsyncClient, response: Response) -> tuple[str, str]:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == PAGE
    page = await client.get(PAGE)
    assert page.status_code == 200, page.text
    match = FLASH.search(page.text)
    assert match, "no flash message"
    return page.text, html.unescape(match.group(2))


async def _account(db: AsyncSession, account_id: uuid.UUID) -> Account:
    await db.commit()
    account = await db.scalar(
        select(Account).where(Account.id == account_id).execution_options(populate_existing=True)
    )
    assert account is not None
    return account


async def _cycle(db: AsyncSession, account_id: uuid.UUID) -> CreditCycle:
    await db.commit()
    cycle = await db.scalar(
        select(CreditCycle)
        .where(CreditCycle.account_id == account_id, CreditCycle.closed_at.is_(None))
        .execution_options(populate_existing=True)
    )
    assert cycle is not None
    return cycle


async def _audits(db: AsyncSession, account_id: uuid.UUID) -> int:
    await db.commit()
    count = await db.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.account_id == account_id)
    )
    return int(count or 0)


def _error(response: Response) -> str:
    match = BANNER_ERROR.search(response.text)
    assert match, response.text
    return html.unescape(match.group(1))


async def test_an_administrator_sees_every_setting_and_the_cycle_usage(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner, _ = await _org(db)
    cycle = await _cycle(db, account.id)
    await _sign_in(client, owner)

    page = await client.get(PAGE)

    assert page.status_code == 200, page.text
    text = page.text
    assert 'aria-current="page" id="tab-settings"' in text
    assert "css/credits-forms.css" in text
    assert 'name="credits_per_cycle" id="credits-per-cycle"' in text
    assert 'value="120,000"' in text  # the exact value, with separators
    assert "Apply new account credit limit?" in text
    assert ">Apply change</button>" in text
    usage = re.search(r'id="limit-usage">.*?</dl>', text, re.S)
    assert usage is not None
    figures = [
        " ".join(re.sub(r"<[^>]+>", " ", f).split()) for f in re.findall(r"<div>.*?</div>", usage.group(0))
    ]
    assert figures == [
        "Used this cycle 1,234.50",
        "Held 20.00",
        "Available 118,745.50",
        "Given to groups 50,000.00",
    ]
    # The exact figures are on hover.
    assert (
        '<dt>Used this cycle</dt><dd class="num"><span class="amount" title="1234.5">1,234.50</span>' in text
    )
    assert '<dt>Available</dt><dd class="num"><span class="amount" title="118745.5">118,745.50</span>' in text
    # Cadence: the dropdown, the current label, the cycle's dates and the note.
    for label in ("Calendar month", "15 days", "1 week", "1 day", "12 hours", "1 hour"):
        assert f">{label}</option>" in text
    assert '<option value="month" selected>' in text
    assert '<dd id="current-cadence">Calendar month</dd>' in text
    paris = ZoneInfo("Europe/Paris")
    assert f"Cycle {cycle.seq}: " in text
    current = re.search(r'<dd id="current-cycle">(.*?)</dd>', text, re.S)
    assert current is not None
    assert re.sub(r"<[^>]+>", "", current.group(1)) == (
        f"Cycle {cycle.seq}: {datetime_text(cycle.starts_at, paris)} → {datetime_text(cycle.ends_at, paris)}"
    )
    ends_utc = cycle.ends_at.astimezone(UTC).isoformat()  # the exact instant on hover
    assert (
        f'<time datetime="{ends_utc}" title="{ends_utc}">{datetime_text(cycle.ends_at, paris)}</time>' in text
    )
    assert "Changing the cadence starts a fresh cycle immediately." in text
    # Credit factor and signup credits.
    assert "Internal credit units per $1 of cost" in text
    assert 'value="100"' in text
    assert "0 disables credit tracking" in text
    assert "Credits per new user" in text
    # Reset, last on the page, behind a confirmation that says it cannot be undone.
    assert text.rindex("Reset cycle immediately") > text.index("Credits per new user")
    assert "the next cycle end date is recalculated from this moment. This cannot be undone." in text
    assert 'id="reset-cancel"' in text
    # Refresh returns the sections alone.
    assert 'hx-get="/credits/settings" hx-target="#credits-settings"' in text
    fragment = await client.get(PAGE, headers={"HX-Request": "true", "HX-Target": "credits-settings"})
    assert fragment.status_code == 200
    assert "nav-title" not in fragment.text
    assert 'id="settings-limit"' in fragment.text


async def test_members_cannot_reach_settings(db: AsyncSession, client: AsyncClient) -> None:
    account, _, member = await _org(db)
    await _sign_in(client, member)

    assert (await client.get(PAGE)).status_code == 403
    for path, data in [
        ("limit", {"credits_per_cycle": "1"}),
        ("cadence", {"cycle_cadence": "day"}),
        ("factor", {"credit_factor": "1"}),
        ("signup", {"signup_credits": "1"}),
        ("reset", {}),
    ]:
        assert (await _post(client, f"{PAGE}/{path}", data)).status_code == 403
    stored = await _account(db, account.id)
    assert (stored.credits_per_cycle, stored.cycle_cadence, stored.credit_factor) == (
        Decimal(120000),
        "month",
        Decimal(100),
    )
    assert (await _cycle(db, account.id)).seq == 1


async def test_change_credits_per_cycle(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _ = await _org(db)
    await _sign_in(client, owner)
    audits = await _audits(db, account.id)

    text, message = await _flash(
        client, await _post(client, f"{PAGE}/limit", {"credits_per_cycle": "150,000"})
    )

    assert message == (
        "Account credit limit set to 150,000 credits per cycle, from 120,000; "
        "148,745.5 credits are available this cycle."
    )
    assert (await _account(db, account.id)).credits_per_cycle == Decimal(150000)
    cycle = await _cycle(db, account.id)
    assert (cycle.seq, cycle.credits_per_cycle) == (1, Decimal(150000))  # at once, same cycle
    assert await _audits(db, account.id) == audits + 1
    assert "148,745.5" in text  # available, recalculated

    _, message = await _flash(client, await _post(client, f"{PAGE}/limit", {"credits_per_cycle": "150000"}))
    assert message == "Credits per cycle unchanged (150,000)."


async def test_a_refused_limit_changes_nothing_and_keeps_the_typed_value(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner, _ = await _org(db)
    await _sign_in(client, owner)
    audits = await _audits(db, account.id)

    for typed, status, error in [
        (
            "45000",
            422,
            "Group budgets total 50,000 credits; credits per cycle cannot be less (short by 5,000).",
        ),
        ("lots", 422, "Credits per cycle must be a number of credits, such as 1500 or 1500.25."),
        ("-1", 422, "Credits per cycle must be 0 or more."),
        ("1.0000001", 422, "Credits per cycle must have at most 6 decimal places."),
    ]:
        response = await _post(client, f"{PAGE}/limit", {"credits_per_cycle": typed})
        assert response.status_code == status, response.text
        assert _error(response) == error
        assert f'x-data=\'{{ value: "{typed}"' in response.text
        section = re.search(r'id="settings-limit".*?</section>', response.text, re.S)
        assert section is not None
        assert "banner-error" in section.group(0)  # shown in its own section

    assert (await _account(db, account.id)).credits_per_cycle == Decimal(120000)
    assert (await _cycle(db, account.id)).credits_per_cycle == Decimal(120000)
    assert await _audits(db, account.id) == audits


async def test_a_new_cadence_starts_a_fresh_cycle(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _ = await _org(db)
    await _sign_in(client, owner)
    before = await _cycle(db, account.id)

    text, message = await _flash(client, await _post(client, f"{PAGE}/cadence", {"cycle_cadence": "week"}))

    cycle = await _cycle(db, account.id)
    assert cycle.seq == before.seq + 1
    assert cycle.cadence == "week"
    assert (await _account(db, account.id)).cycle_cadence == "week"
    ends = datetime_text(cycle.ends_at, ZoneInfo("Europe/Paris"))
    assert message == f"Cycle cadence set to 1 week: cycle {cycle.seq} started now and ends {ends}."
    assert '<dd id="current-cadence">1 week</dd>' in text
    assert 'Used this cycle</dt><dd class="num"><span class="amount" title="0">0.00</span></dd>' in text

    _, message = await _flash(client, await _post(client, f"{PAGE}/cadence", {"cycle_cadence": "week"}))
    assert message == "Cycle cadence unchanged (1 week)."
    assert (await _cycle(db, account.id)).seq == cycle.seq

    refused = await _post(client, f"{PAGE}/cadence", {"cycle_cadence": "fortnight"})
    assert refused.status_code == 422
    assert "cycle_cadence must be one of" in _error(refused)
    assert (await _cycle(db, account.id)).seq == cycle.seq


async def test_credit_factor_and_signup_credits(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _ = await _org(db)
    await _sign_in(client, owner)

    _, message = await _flash(client, await _post(client, f"{PAGE}/factor", {"credit_factor": "250.5"}))
    assert message == "Credit factor set to 250.5 credits per $1 of cost."
    assert (await _account(db, account.id)).credit_factor == Decimal("250.5")

    text, message = await _flash(client, await _post(client, f"{PAGE}/factor", {"credit_factor": "0"}))
    assert message == "Credit factor set to 0: credit tracking is off."
    assert "Tracking off" in text

    _, message = await _flash(client, await _post(client, f"{PAGE}/signup", {"signup_credits": "500"}))
    assert message == "New users now receive 500 credits when they join."
    assert (await _account(db, account.id)).signup_credits == Decimal(500)
    _, message = await _flash(client, await _post(client, f"{PAGE}/signup", {"signup_credits": "0"}))
    assert message == "New users receive no signup credits."

    refused = await _post(client, f"{PAGE}/signup", {"signup_credits": "-3"})
    assert refused.status_code == 422
    assert _error(refused) == "Credits per new user must be 0 or more."
    assert (
        'id="signup-credits" inputmode="decimal" autocomplete="off" required maxlength="40" value="-3"'
        in (refused.text)
    )
    refused = await _post(client, f"{PAGE}/factor", {"credit_factor": ""})
    assert refused.status_code == 422
    assert _error(refused).startswith("The credit factor must be a number")
    stored = await _account(db, account.id)
    assert (stored.credit_factor, stored.signup_credits) == (Decimal(0), Decimal(0))


async def test_reset_cycle_now(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _ = await _org(db)
    await _sign_in(client, owner)
    before = await _cycle(db, account.id)

    text, message = await _flash(client, await _post(client, f"{PAGE}/reset", {}))

    cycle = await _cycle(db, account.id)
    assert cycle.seq == before.seq + 1
    ends = datetime_text(cycle.ends_at, ZoneInfo("Europe/Paris"))
    assert message == f"Cycle {cycle.seq} started now: used credits count from zero; it ends {ends}."
    assert f"Cycle {cycle.seq}: " in text
    assert 'Used this cycle</dt><dd class="num"><span class="amount" title="0">0.00</span></dd>' in text
    await db.commit()
    actions = list(
        await db.scalars(
            select(AuditEntry.action).where(
                AuditEntry.account_id == account.id, AuditEntry.action == "credits.cycle_reset"
            )
        )
    )
    assert actions == ["credits.cycle_reset"]


async def test_csrf_is_required(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _ = await _org(db)
    await _sign_in(client, owner)
    await client.get(PAGE)

    for path, data in [
        ("limit", {"credits_per_cycle": "150000"}),
        ("reset", {}),
        ("cadence", {"cycle_cadence": "day"}),
    ]:
        response = await client.post(f"{PAGE}/{path}", data=data)
        assert response.status_code == 403
        assert "did not come from Cockpit" in response.text
        forged = await client.post(f"{PAGE}/{path}", data={**data, "csrf_token": "forged"})
        assert forged.status_code == 403

    assert (await _account(db, account.id)).credits_per_cycle == Decimal(120000)
    assert (await _cycle(db, account.id)).seq == 1
