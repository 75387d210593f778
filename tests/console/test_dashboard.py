"""The home Dashboard read as people read it: an administrator's spend, error rate, top models and
groups, 30-day cost trend and latest calls agree with the generated calls; a member sees only their
own calls and credits; no raw id on the page; a fresh account says there are no calls yet."""

from __future__ import annotations

import html as html_lib
import json
import random
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.console.formatting import credits_text, date_text, usd_text
from cockpit.console.pages.dashboard import percent
from cockpit.credits import ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import EntryKind, MemberAllocation
from cockpit.groups.models import Group
from cockpit.groups.repository import default_group
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User, UserRole
from tests.builders import console_login, make_account, make_user

PARIS = ZoneInfo("Europe/Paris")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
HIDDEN = re.compile(r"<(script|style|template)\b.*?</\1>", re.S | re.I)
MODELS = ["gpt-4o", "claude-sonnet", "gpt-4o-mini", "mistral-large", "llama-70b", "embed-small"]


@dataclass
class Org:
    account: Account
    owner: User
    mia: User  # a member, in the Research group
    bob: User  # another member, in the Default group
    groups: dict[uuid.UUID, str]
    cycle_start: datetime
    rows: list[dict[str, Any]]


def _row(
    account_id: uuid.UUID, at: datetime, user: User | None, model: str, cost: str, status: str
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(), "account_id": account_id, "created_at": at,
        "user_id": user.id if user else None, "group_id": user.group_id if user else None,
        "project_id": None, "agent_id": None, "api_token_id": None, "model_id": None, "model": model,
        "provider_id": None, "provider_kind": "openai", "operation": "chat", "stream": False,
        "status": status, "http_status": 200 if status == "success" else 502, "latency_ms": 120,
        "ttft_ms": None, "input_tokens": 100, "output_tokens": 20, "cached_tokens": 0,
        "cost_usd": Decimal(cost), "credits": Decimal(cost),
    }  # fmt: skip


async def _org(db: AsyncSession) -> Org:
    account, owner = await make_account(db, name="Nimbus Analytics")
    account.timezone = "Europe/Paris"
    account.credit_factor = Decimal(1)
    account.credits_per_cycle = Decimal(100_000)
    await db.commit()
    cycle = await current_cycle(db, account)
    now = utcnow()
    cycle.starts_at, cycle.ends_at = now - timedelta(days=10), now + timedelta(days=20)
    research = Group(account_id=account.id, name="Research", name_key="research")
    ops = Group(account_id=account.id, name="Ops", name_key="ops")
    db.add_all([research, ops])
    await db.commit()
    default = await default_group(db, account.id)
    mia = await make_user(db, account, email="mia@example.com")
    bob = await make_user(db, account, email="bob@example.com")
    carl = await make_user(db, account, email="carl@example.com")
    mia.name, bob.name, carl.name, owner.name = "Mia Member", "Bob Builder", "Carl Ops", "Olga Owner"
    mia.group_id, carl.group_id = research.id, ops.id
    db.add(MemberAllocation(user_id=mia.id, account_id=account.id, monthly=Decimal(1_000)))
    ledger.append(
        db, account_id=account.id, cycle=cycle, kind=EntryKind.usage_debit, amount=Decimal("-250.125"),
        user_id=mia.id, group_id=research.id, description="gateway call",
    )  # fmt: skip
    await db.commit()
    rng = random.Random(13)
    rows = []
    # 60 calls in this cycle (each model a known share of the cost), 25 before it (still in the last
    # 30 days), one without a person.
    for k in range(60):
        user = [mia, bob, carl, owner][k % 4]
        model = MODELS[k % 6]
        cost = f"{(6 - k % 6) * 1.5 + rng.randrange(0, 100) / 10_000:.4f}"
        status = "error" if k % 7 == 0 else "success"
        rows.append(_row(account.id, now - timedelta(hours=3 * k + 1, minutes=k), user, model, cost, status))
    for k in range(25):
        rows.append(
            _row(
                account.id,
                now - timedelta(days=11 + k % 14, hours=k),
                [mia, bob][k % 2],
                "gpt-4o",
                "0.0031",
                "success",
            )
        )
    rows.append(_row(account.id, now - timedelta(minutes=5), None, "gpt-4o-mini", "0.000042", "success"))
    await db.execute(insert(UsageRecord), rows)
    # Another account's calls at the same moments: never shown or counted.
    other, _ = await make_account(db, name="Elsewhere")
    await db.execute(
        insert(UsageRecord),
        [{**r, "id": uuid.uuid4(), "account_id": other.id, "model": "secret-model"} for r in rows],
    )
    await db.commit()
    groups = {default.id: default.name, research.id: "Research", ops.id: "Ops"}
    return Org(account, owner, mia, bob, groups, cycle.starts_at, rows)


def _visible(page: str) -> str:
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", HIDDEN.sub(" ", page))))


def _section(page: str, element_id: str) -> str:
    """The element with this id, up to its own closing tag (nested elements of its kind counted)."""
    start = re.search(rf'<(section|div|a|table) [^>]*id="{element_id}"', page)
    assert start is not None, element_id
    tag, depth = start.group(1), 0
    for match in re.finditer(rf"<(/?){tag}\b", page[start.start() :]):
        depth += -1 if match.group(1) else 1
        if depth == 0:
            return page[start.start() : start.start() + match.end()]
    raise AssertionError(f"{element_id} is not closed")


def _first_column(table: str) -> list[str]:
    return [_visible(cell).strip() for cell in re.findall(r"<tr>\s*<td[^>]*>(.*?)</td>", table, re.S)]


def _trend(page: str) -> list[dict[str, Any]]:
    match = re.search(r'<script type="application/json" id="cost-trend-data">(.*?)</script>', page, re.S)
    assert match is not None
    days: list[dict[str, Any]] = json.loads(match.group(1))["days"]
    return days


def _expected_trend(rows: list[dict[str, Any]], now: datetime) -> dict[str, Decimal]:
    today = now.astimezone(PARIS).date()
    out: dict[str, Decimal] = {date_text(today - timedelta(days=n)): Decimal(0) for n in range(30)}
    for r in rows:
        day: date = r["created_at"].astimezone(PARIS).date()
        if (today - day).days < 30:
            out[date_text(day)] += r["cost_usd"]
    return out


def _ranked(rows: list[dict[str, Any]], key: str) -> list[Any]:
    costs: dict[Any, Decimal] = defaultdict(Decimal)
    for r in rows:
        costs[r[key]] += r["cost_usd"]
    return sorted(costs, key=lambda k: -costs[k])


async def test_an_administrator_sees_the_cycle_the_trend_the_top_five_and_the_latest_calls(
    db: AsyncSession, client: AsyncClient
) -> None:
    o = await _org(db)
    assert (await console_login(client, o.owner.email)).status_code == 303

    page = await client.get("/")
    now = utcnow()

    assert page.status_code == 200, page.text
    html = page.text
    cycle = [r for r in o.rows if r["created_at"] >= o.cycle_start]
    spend = sum((r["cost_usd"] for r in cycle), Decimal(0))
    assert usd_text(spend) in _visible(_section(html, "spend-card"))
    errors = sum(r["status"] == "error" for r in cycle)
    assert errors > 0
    error_card = _visible(_section(html, "error-card"))
    assert percent(Decimal(errors) / len(cycle)) in error_card
    assert f"{errors} errors of {len(cycle)} calls" in error_card
    # Credits: 250.125 used of 100,000, the rest left.
    credits_card = _visible(_section(html, "credits-card"))
    assert credits_text(Decimal("250.125")) in credits_card
    assert credits_text(Decimal("99749.875")) in credits_card
    # The top five models and groups of the cycle, by cost.
    models = _first_column(_section(html, "top-models-table"))
    assert models == _ranked(cycle, "model")[:5]
    assert "embed-small" not in models  # the sixth
    groups = _first_column(_section(html, "top-groups-table"))
    expected_groups = [o.groups.get(g, "No group") for g in _ranked(cycle, "group_id")][:5]
    assert groups == expected_groups
    assert "No group" in groups  # the call made without a person
    # The last 30 days by local day (Paris), each day's cost exact; today last.
    days = _trend(html)
    expected = _expected_trend(o.rows, now)
    assert len(days) == 30
    assert {d["label"]: Decimal(d["cost"]) for d in days} == expected
    assert days[-1]["label"] == date_text(now.astimezone(PARIS).date())
    # The ten latest calls, newest first, each linking to its detail in the request log.
    latest = sorted(o.rows, key=lambda r: r["created_at"], reverse=True)[:10]
    links = re.findall(r'<a href="/requests/([0-9a-f-]+)">', _section(html, "recent-calls-table"))
    assert links == [str(r["id"]) for r in latest]
    who = _visible(_section(html, "recent-calls-table"))
    assert "Mia Member" in who
    assert "Olga Owner" in who
    assert "secret-model" not in html
    # Secondary figures stay: members and this week's audit events.
    assert "Active members" in html
    assert "Audit events, last 7 days" in html
    assert not UUID.search(_visible(html))
    # The way to the whole picture: Cost tracking.
    assert 'href="/cost-tracking" id="cost-tracking-link"' in html
    assert (await client.get("/cost-tracking")).status_code == 200


async def test_a_member_sees_only_their_own_calls_and_credits(db: AsyncSession, client: AsyncClient) -> None:
    o = await _org(db)
    assert (await console_login(client, o.mia.email)).status_code == 303

    page = await client.get("/")
    now = utcnow()

    assert page.status_code == 200, page.text
    html = page.text
    mine = [r for r in o.rows if r["user_id"] == o.mia.id]
    in_cycle = [r for r in mine if r["created_at"] >= o.cycle_start]
    assert usd_text(sum((r["cost_usd"] for r in in_cycle), Decimal(0))) in _visible(
        _section(html, "spend-card")
    )
    # Their credits: 1,000 allocated, 250.125 used, 749.875 left; and their pace.
    card = _visible(_section(html, "my-credits-card"))
    assert credits_text(Decimal("749.875")) in card
    assert "250.13 used of 1,000.00" in card
    assert "/ day" in _visible(_section(html, "my-pace-card"))
    # Their own calls only: the trend and the latest ten.
    assert {d["label"]: Decimal(d["cost"]) for d in _trend(html)} == _expected_trend(mine, now)
    latest = sorted(mine, key=lambda r: r["created_at"], reverse=True)[:10]
    links = re.findall(r'<a href="/requests/([0-9a-f-]+)">', _section(html, "recent-calls-table"))
    assert links == [str(r["id"]) for r in latest]
    # Nothing of the account: no top lists, no account credits, nobody else.
    assert 'id="top-models"' not in html
    assert 'id="credits-card"' not in html
    assert 'id="cost-tracking-link"' not in html
    assert "100,000" not in html
    assert "Bob Builder" not in html
    assert "Audit events" not in html
    assert not UUID.search(_visible(html))


async def test_a_fresh_account_says_there_are_no_calls_yet(db: AsyncSession, client: AsyncClient) -> None:
    _, owner = await make_account(db, name="Brand New")
    member = await make_user(db, (await _account_of(db, owner)), role=UserRole.member)
    for user in (owner, member):
        client.cookies.clear()
        assert (await console_login(client, user.email)).status_code == 303

        page = await client.get("/")

        assert page.status_code == 200, page.text
        text = _visible(page.text)
        assert "No calls yet — point an OpenAI SDK at http://testserver/v1" in text
        assert 'id="cost-trend-chart"' not in page.text
        assert 'id="recent-calls-table"' not in page.text
        assert "$0.00" in _visible(_section(page.text, "spend-card"))
        assert not UUID.search(text)
        if user is owner:
            assert "—" in _visible(_section(page.text, "error-card"))  # no rate without calls


async def _account_of(db: AsyncSession, user: User) -> Account:
    account = await db.get(Account, user.account_id)
    assert account is not None
    return account
