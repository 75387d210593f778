"""Cost tracking (FINANCE) and Project → Analytics: the figures of known calls, the filters in the
address, who sees what, hostile query strings, the export flow and names instead of ids."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics.labels import names
from cockpit.config import Settings
from cockpit.projects.models import Project, ProjectMember, ProjectRole
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import console_login, csrf_for, make_account, make_user
from tests.console.test_no_raw_ids import UUID, visible_text
from tests.exports.jobs import run_exports
from tests.usage.test_requests_api import usage_record

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
BEFORE = datetime(2026, 3, 8, 9, 30, tzinfo=UTC)  # in the previous period of equal length
PERIOD = {"range": "custom", "from": "2026-03-09", "to": "2026-03-11"}  # 3 days, UTC


class Org:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    account: Account
    owner: User
    alice: User
    bob: User
    carol: User
    project: Project


@pytest.fixture
async def org(db: AsyncSession) -> Org:
    account, owner = await make_account(db, name="Ledgerly")
    alice = await make_user(db, account, email="alice@example.com")
    bob = await make_user(db, account, email="bob@example.com")
    carol = await make_user(db, account, email="carol@example.com")  # in no project
    alice.name, bob.name = "Alice Archer", "Bob Baker"
    project = Project(account_id=account.id, name="Search", name_key="search", description="")
    db.add(project)
    await db.flush()
    db.add(
        ProjectMember(
            project_id=project.id, user_id=bob.id, account_id=account.id, role=ProjectRole.project_member
        )
    )

    def call(at: datetime, user: User, **fields: Any) -> Any:
        record = usage_record(account.id, user_id=user.id, group_id=user.group_id, **fields)
        record.created_at = at
        return record

    db.add_all(
        [
            *(call(NOW, alice, model="gpt-4o", cost_usd=Decimal("1.5"), credits=Decimal(15),
                   input_tokens=1000, output_tokens=200, latency_ms=1000) for _ in range(3)),
            call(NOW, bob, model="claude-sonnet", cost_usd=Decimal("0.25"), credits=Decimal("2.5"),
                 status="error", http_status=502, agent_id="triage", project_id=project.id, input_tokens=50,
                 output_tokens=0, latency_ms=3000),
            call(NOW, owner, model="text-embedding-3-small", operation="embedding",
                 cost_usd=Decimal("0.0001234"), credits=Decimal("0.001234"), input_tokens=10, output_tokens=0,
                 latency_ms=500),
            *(call(BEFORE, alice, model="gpt-4o", cost_usd=Decimal(1), credits=Decimal(10))
              for _ in range(2)),
        ]
    )  # fmt: skip
    await db.commit()
    return Org(account=account, owner=owner, alice=alice, bob=bob, carol=carol, project=project)


async def _sign_in(client: AsyncClient, user: User) -> None:
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text


def _indicator(html: str, test_id: str) -> str:
    match = re.search(rf'data-testid="indicator-{test_id}">(.*?)</div>\s*</div>', html, re.S)
    assert match, test_id
    return " ".join(visible_text(match.group(1)).split())


def _table(html: str, table_id: str) -> str:
    match = re.search(rf'<table class="table analytics-table" id="{table_id}">.*?</table>', html, re.S)
    assert match, table_id
    return " ".join(visible_text(match.group(0)).split())


async def test_cost_tracking_shows_the_figures_of_the_calls(client: AsyncClient, org: Org) -> None:
    await _sign_in(client, org.owner)

    page = await client.get("/cost-tracking", params=PERIOD)

    assert page.status_code == 200, page.text
    html = page.text
    assert "<title>Cost tracking" in html
    # 5 calls now ($4.7501234: 3 x $1.50 + $0.25 + $0.0001234), 2 before ($2.00).
    assert _indicator(html, "cost").startswith("Total cost $4.75 47.50 credits · ▲ 137.5 %")
    assert 'title="$4.7501234"' in html  # the exact amount on hover
    assert 'title="47.501234"' in html  # the exact credits
    assert _indicator(html, "requests") == "Requests 5 ▲ 150.0 %"
    assert _indicator(html, "errors") == "Errors 1 —"
    assert _indicator(html, "error-rate") == "Error rate 20.00 % —"  # no errors before
    assert _indicator(html, "users").startswith("Active users 3 ▲ 200.0 %")
    assert _indicator(html, "input-tokens").startswith("Input tokens 3,060")
    assert _indicator(html, "latency").startswith("Avg request time 1,300 ms")
    # The breakdown by model, largest cost first, with shares; the pivot's totals.
    models = _table(html, "breakdown-table")
    assert models.index("gpt-4o") < models.index("claude-sonnet") < models.index("text-embedding-3-small")
    assert "gpt-4o 3 0 $4.50 45.00 3,600 94.73 %" in models
    assert "claude-sonnet 1 1 $0.25 2.50 50 5.26 %" in models
    pivot = _table(html, "pivot-table")
    assert "Alice Archer $4.50 $0.00 $0.00 $4.50" in pivot
    assert pivot.endswith("$4.50 $0.25 $0.0001234 $4.75")
    # Top users, by name; the charts' data beside their canvases.
    assert "Alice Archer" in html
    assert "Bob Baker" in html
    assert 'id="analytics-breakdown-chart"' in html
    assert 'id="analytics-timeline-chart-data"' in html
    # Links narrow the view (and open the calls in the request log with the same filters).
    assert 'href="/cost-tracking?range=custom&amp;from=2026-03-09&amp;to=2026-03-11&amp;model=gpt-4o"' in html
    assert (
        "/requests?range=custom&amp;since=2026-03-09T00%3A00&amp;until=2026-03-12T00%3A00&amp;model=gpt-4o"
        in html
    )


async def test_filters_in_the_address_narrow_the_figures(client: AsyncClient, org: Org) -> None:
    await _sign_in(client, org.owner)

    by_model = await client.get("/cost-tracking", params={**PERIOD, "model": "gpt-4o"})
    assert _indicator(by_model.text, "cost").startswith("Total cost $4.50")
    assert _indicator(by_model.text, "requests").startswith("Requests 3 ▲ 50.0 %")
    errors = await client.get("/cost-tracking", params={**PERIOD, "status": "error"})
    assert _indicator(errors.text, "cost").startswith("Total cost $0.25")
    assert _indicator(errors.text, "error-rate").startswith("Error rate 100.00 %")
    user = await client.get("/cost-tracking", params={**PERIOD, "user": str(org.bob.id), "by": "agent"})
    assert _indicator(user.text, "requests").startswith("Requests 1")
    assert "triage" in _table(user.text, "breakdown-table")
    direct = await client.get("/cost-tracking", params={**PERIOD, "by": "agent"})
    assert "Direct API 4 0 $4.50" in _table(direct.text, "breakdown-table")
    no_agent = await client.get("/cost-tracking", params={**PERIOD, "agent": "__direct__"})
    assert _indicator(no_agent.text, "requests").startswith("Requests 4")
    project = await client.get("/cost-tracking", params={**PERIOD, "project": str(org.project.id)})
    assert _indicator(project.text, "cost").startswith("Total cost $0.25")
    embeddings = await client.get("/cost-tracking", params={**PERIOD, "operation": "embedding"})
    assert _indicator(embeddings.text, "requests").startswith("Requests 1 —")
    group = await client.get("/cost-tracking", params={**PERIOD, "group": str(org.alice.group_id)})
    assert _indicator(group.text, "requests").startswith("Requests 5")
    # The previous period alone: the 2 calls before; hourly timeline for one day.
    day = await client.get("/cost-tracking", params={"from": "2026-03-08", "to": "2026-03-08"})
    assert _indicator(day.text, "requests").startswith("Requests 2 —")
    assert "by hour" in day.text
    nothing = await client.get("/cost-tracking", params={"from": "2025-01-01", "to": "2025-01-02"})
    assert "No calls in this view" in nothing.text


async def test_who_sees_which_view(client: AsyncClient, db: AsyncSession, org: Org) -> None:
    other, _ = await make_account(db, name="Elsewhere")
    theirs = Project(account_id=other.id, name="Theirs", name_key="theirs", description="")
    db.add(theirs)
    await db.commit()

    await _sign_in(client, org.bob)
    home = await client.get("/")
    assert 'href="/cost-tracking"' not in home.text  # not in a member's navigation
    assert (await client.get("/cost-tracking")).status_code == 403
    mine = await client.get(f"/projects/{org.project.id}/analytics", params=PERIOD)
    assert mine.status_code == 200, mine.text
    # Only the project's calls: Bob's one failed call.
    assert _indicator(mine.text, "cost").startswith("Total cost $0.25")
    assert _indicator(mine.text, "requests").startswith("Requests 1")
    assert "Alice Archer" not in mine.text
    assert 'name="project"' not in mine.text  # no project filter on a project's page
    assert (await client.get(f"/projects/{theirs.id}/analytics")).status_code == 404
    assert (await client.get("/projects/not-an-id/analytics")).status_code == 404

    client.cookies.clear()
    await _sign_in(client, org.carol)  # not a member of Search
    assert (await client.get(f"/projects/{org.project.id}/analytics")).status_code == 404

    client.cookies.clear()
    await _sign_in(client, org.owner)  # an administrator: any project of the account
    admin = await client.get(f"/projects/{org.project.id}/analytics", params=PERIOD)
    assert _indicator(admin.text, "cost").startswith("Total cost $0.25")
    assert (await client.get(f"/projects/{theirs.id}/analytics")).status_code == 404
    assert 'href="/cost-tracking"' in (await client.get("/")).text
    detail = await client.get(f"/projects/{org.project.id}")
    assert f'href="/projects/{org.project.id}/analytics"' in detail.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model": "gpt\t-4o"}, "characters that are not allowed"),
        ({"agent": "x" * 20_000}, "too long"),
        ({"model": "m" * 5_000, "user": "u" * 5_000}, "too long"),
        ({"range": "custom", "from": "2026-02-30"}, "is not a date"),
        ({"range": "custom", "from": "0001-01-01", "to": "9999-12-31"}, "between the years 2000 and 2999"),
        ({"range": "custom", "from": "2026-03-11", "to": "2026-03-01"}, "must not be after"),
        ({"range": "custom", "from": "2024-01-01", "to": "2026-01-01"}, "at most 400 days"),
        ({"range": "forever"}, "Unknown time range"),
        ({"user": "nobody"}, "Unknown user"),
        ({"status": "exploded"}, "Unknown status"),
        ({"by": "weather"}, "Unknown breakdown"),
        ({"page": "-1"}, "page number"),
        ({"page": "9" * 50}, "page number"),
    ],
)
async def test_hostile_values_get_a_clear_error(
    client: AsyncClient, org: Org, params: dict[str, str], message: str
) -> None:
    await _sign_in(client, org.owner)
    page = await client.get("/cost-tracking", params=params)
    assert page.status_code == 200
    assert 'class="banner banner-error" role="alert"' in page.text
    assert message in page.text


async def test_undecodable_query_strings_are_refused_plainly(client: AsyncClient, org: Org) -> None:
    await _sign_in(client, org.owner)
    for query in ("model=%ED%A0%80", "user=%ED%A0%80", "agent=%FF%FE", "by=%ED%A0%80", "from=%ED%A0%80"):
        page = await client.get(f"/cost-tracking?{query}")
        assert page.status_code == 200, query
        assert 'class="banner banner-error" role="alert"' in page.text, query
        assert "not allowed" in page.text or "Unknown" in page.text, query
    project = await client.get(f"/projects/{org.project.id}/analytics?model=%ED%A0%80&token=x")
    assert project.status_code == 200
    assert 'class="banner banner-error" role="alert"' in project.text
    # NUL is refused at the console's front door (kit.guard) with a page that says so.
    nul = await client.get("/cost-tracking?model=a%00b")
    assert nul.status_code == 400
    assert "contains a NUL character" in nul.text


async def run_jobs(settings: Settings, database_url: str) -> int:
    return await run_exports(settings, database_url, names)


async def test_export_from_the_page(
    client: AsyncClient, org: Org, settings: Settings, database_url: str
) -> None:
    await _sign_in(client, org.owner)
    csrf = await csrf_for(client, "/cost-tracking")
    headers = {"HX-Request": "true", "X-CSRF-Token": csrf}

    refused = await client.post("/cost-tracking/exports", data={"format": "xlsx", **PERIOD})
    assert refused.status_code == 403  # no CSRF token
    asked = await client.post(
        "/cost-tracking/exports", data={"format": "xlsx", "model": "gpt-4o", **PERIOD}, headers=headers
    )
    assert asked.status_code == 200, asked.text
    found = re.search(r'hx-get="/exports/([0-9a-f-]{36})"', asked.text)
    assert found, asked.text
    assert 'role="progressbar"' in asked.text
    export_id = uuid.UUID(found.group(1))

    assert await run_jobs(settings, database_url) == 1

    progress = await client.get(f"/exports/{export_id}", headers={"HX-Request": "true"})
    assert progress.status_code == 200
    assert 'data-status="done"' in progress.text
    assert "hx-trigger" not in progress.text  # no more polling
    link = f'href="/exports/{export_id}/download"'
    assert link in progress.text
    download = await client.get(f"/exports/{export_id}/download")
    assert download.status_code == 200
    assert download.content[:2] == b"PK"  # an xlsx workbook
    bad = await client.post("/cost-tracking/exports", data={"format": "docx"}, headers=headers)
    assert "Choose PDF, Excel or CSV." in bad.text

    # A project member exports their project's view; the export stays theirs.
    client.cookies.clear()
    await _sign_in(client, org.bob)
    csrf = await csrf_for(client, f"/projects/{org.project.id}/analytics")
    mine = await client.post(
        f"/projects/{org.project.id}/analytics/exports", data={"format": "csv", **PERIOD},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )  # fmt: skip
    assert 'role="progressbar"' in mine.text, mine.text
    assert (await client.get(f"/exports/{export_id}")).status_code == 404  # the owner's export


async def test_no_raw_ids_on_the_pages(client: AsyncClient, db: AsyncSession, org: Org) -> None:
    # A call of someone since deleted (an id no user has) shows as "Deleted user".
    ghost = usage_record(org.account.id, user_id=uuid.uuid4(), group_id=uuid.uuid4(), project_id=uuid.uuid4())
    ghost.created_at = NOW
    db.add(ghost)
    await db.commit()
    await _sign_in(client, org.owner)
    for by in ("model", "group", "user", "project", "agent", "integration", "operation", "provider"):
        page = await client.get("/cost-tracking", params={**PERIOD, "by": by, "stack": by, "pivot": "agent"})
        assert page.status_code == 200, by
        assert UUID.findall(visible_text(page.text)) == [], by
    users = await client.get("/cost-tracking", params={**PERIOD, "by": "user", "user": str(uuid.uuid4())})
    assert UUID.findall(visible_text(users.text)) == []
    assert "Deleted user" in (await client.get("/cost-tracking", params={**PERIOD, "by": "user"})).text
    project = await client.get(f"/projects/{org.project.id}/analytics", params=PERIOD)
    assert UUID.findall(visible_text(project.text)) == []


async def test_empty_state_without_calls(client: AsyncClient, db: AsyncSession) -> None:
    _, owner = await make_account(db, name="Quiet")
    await _sign_in(client, owner)
    page = await client.get("/cost-tracking")
    assert page.status_code == 200
    assert "No calls yet" in page.text
    assert "analytics-breakdown-chart" not in page.text


async def test_view_calls_opens_the_request_log_with_the_same_filters(client: AsyncClient, org: Org) -> None:
    await _sign_in(client, org.owner)
    page = await client.get("/cost-tracking", params={**PERIOD, "by": "agent"})
    links = re.findall(r'href="(/requests\?[^"]+)"', page.text)
    direct = next(link for link in links if "agent=__direct__" in link)

    calls = await client.get(direct.replace("&amp;", "&"))

    assert calls.status_code == 200
    table = re.search(r'<table class="table" id="requests-table">.*?</table>', calls.text, re.S)
    assert table
    rows = re.findall(r'<a href="/requests/([0-9a-f-]{36})">', table.group(0))
    assert len(rows) == 4  # the 4 calls of the period without an agent (not Bob's "triage" call)
    assert 'value="Direct API"' in calls.text  # the agent picker names the filter

    async def count(**params: str) -> int:
        found = await client.get("/requests", params={"range": "custom", "since": "2026-03-09T00:00",
                                                      "until": "2026-03-12T00:00", **params})  # fmt: skip
        assert found.status_code == 200
        return len(re.findall(r'<td class="nowrap"><a href="/requests/', found.text))

    assert await count() == 5
    assert await count(operation="embedding") == 1
    assert await count(group=str(org.alice.group_id)) == 5
    assert await count(group=str(uuid.uuid4())) == 0
    assert await count(project=str(org.project.id)) == 1
    bad = await client.get("/requests", params={"operation": "dance"})
    assert "Unknown operation." in bad.text


@pytest.mark.parametrize("chosen", ["today", "7d", "30d", "cycle", "last_cycle", "month"])
async def test_every_time_range_opens(client: AsyncClient, db: AsyncSession, chosen: str) -> None:
    account, owner = await make_account(db, name="Ranges")
    call = usage_record(account.id, cost_usd=Decimal("0.5"))
    call.created_at = datetime.now(UTC)  # now, not when the module was imported
    db.add(call)
    await db.commit()
    await _sign_in(client, owner)

    page = await client.get(
        "/cost-tracking", params={"range": chosen, "series": "requests", "stack": "model"}
    )

    assert page.status_code == 200, page.text
    assert 'role="alert"' not in page.text
    assert f'<option value="{chosen}" selected>' in page.text
    if chosen in ("today", "7d", "30d", "cycle", "month"):
        assert _indicator(page.text, "requests").startswith("Requests 1")
    if chosen == "today":
        assert "by hour" in page.text


async def test_token_usage_by_assistant(client: AsyncClient, org: Org) -> None:
    """Each assistant with its calls' tokens and the models it used; calls without one are "Direct API"."""
    await _sign_in(client, org.owner)

    html = (await client.get("/cost-tracking", params=PERIOD)).text

    table = _table(html, "assistants-table")
    # Direct API: Alice's 3 gpt-4o calls (3,600 tokens) and the owner's embedding (10); triage: Bob's call.
    assert "Direct API 4 3,010 600 $4.50" in table
    assert "gpt-4o · 3,600 text-embedding-3-small · 10" in table
    assert "triage 1 50 0 $0.25 claude-sonnet · 50" in table
    assert table.index("Direct API") < table.index("triage")
    log = "/requests?range=custom&amp;since=2026-03-09T00%3A00&amp;until=2026-03-12T00%3A00"
    assert f"{log}&amp;agent=__direct__" in html
    assert "agent=triage" in html


async def test_every_call_of_the_view_as_csv_from_the_page(
    client: AsyncClient, org: Org, settings: Settings, database_url: str
) -> None:
    """The calls of the filtered view, one row each (the model filter keeps Alice's 3 calls)."""
    await _sign_in(client, org.owner)
    html = (await client.get("/cost-tracking", params=PERIOD)).text
    assert 'data-testid="export-calls-csv"' in html
    assert 'data-testid="export-calls-pdf"' not in html  # a PDF of every call is not offered
    headers = {"HX-Request": "true", "X-CSRF-Token": await csrf_for(client, "/cost-tracking")}

    asked = await client.post(
        "/cost-tracking/exports",
        data={"view": "calls", "format": "csv", "model": "gpt-4o", **PERIOD},
        headers=headers,
    )
    assert "Calls as CSV" in asked.text, asked.text
    found = re.search(r'hx-get="/exports/([0-9a-f-]{36})"', asked.text)
    assert found, asked.text
    assert await run_jobs(settings, database_url) == 1
    download = await client.get(f"/exports/{found.group(1)}/download")
    assert download.status_code == 200
    lines = download.content.decode("utf-8-sig").splitlines()
    assert len(lines) == 1 + 3  # the header and Alice's three gpt-4o calls
    assert all("Alice Archer" in line and "gpt-4o" in line for line in lines[1:])
    pdf = await client.post(
        "/cost-tracking/exports", data={"view": "calls", "format": "pdf", **PERIOD}, headers=headers
    )
    assert "Choose CSV or Excel." in pdf.text
