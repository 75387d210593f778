"""The Request log page: the table, its filters, the empty states, the detail page and who sees what."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.console.formatting import datetime_text
from cockpit.console.pages import requests as requests_page
from cockpit.projects.models import Project
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import console_login, make_account, make_user
from tests.usage.test_requests_api import NOW, usage_record

ROW = re.compile(r'<tr>\s*<td class="nowrap"><a href="/requests/([0-9a-f-]{36})">')


def _table(html: str) -> str:
    match = re.search(r'<table class="table" id="requests-table">.*?</table>', html, re.S)
    return match.group(0) if match else ""


def _rows(html: str) -> list[str]:
    return ROW.findall(_table(html))


async def _sign_in(db: AsyncSession, client: AsyncClient, user: User) -> None:
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text


async def _org(db: AsyncSession) -> tuple[Account, User, User, Project]:
    account, owner = await make_account(db, name="Nimbus Analytics")
    member = await make_user(db, account, email="member@example.com")
    project = Project(account_id=account.id, name="Search", name_key="search", description="")
    db.add(project)
    await db.commit()
    return account, owner, member, project


async def test_the_table_shows_each_call_newest_first(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, member, project = await _org(db)
    older = usage_record(account.id, minutes_ago=30, model="text-embedding-3-small", operation="embedding")
    newest = usage_record(
        account.id, minutes_ago=1, user_id=member.id, project_id=project.id, stream=True, ttft_ms=85,
        latency_ms=1234, input_tokens=1500, output_tokens=20, cached_tokens=1024, tokens_estimated=True,
        cost_usd=Decimal("0.000067500000"),
    )  # fmt: skip
    failed = usage_record(account.id, minutes_ago=10, status="error", http_status=502)
    gone = usage_record(account.id, minutes_ago=20, status="client_disconnected", http_status=499)
    db.add_all([older, newest, failed, gone])
    await db.commit()
    await _sign_in(db, client, owner)

    page = await client.get("/requests")

    assert page.status_code == 200
    assert "<title>Request log" in page.text
    assert _rows(page.text) == [str(newest.id), str(failed.id), str(gone.id), str(older.id)]
    table = _table(page.text)
    assert "member@example.com" in table
    assert "Search" in table
    assert '<span class="badge badge-info">stream</span>' in table
    assert '<span class="badge badge-success">success</span>' in table
    assert '<span class="badge badge-danger">error</span><div class="muted small">HTTP 502</div>' in table
    assert '<span class="badge badge-warning">disconnected</span>' in table
    # Cost: to the cent, 4 significant digits below a cent; the exact value in the title.
    assert '<span class="amount">$0.0000675</span>' in table  # 3 significant digits: exact, no title
    assert '<span class="estimated" title="Estimated' in table
    assert "1,500 / 20" in table
    assert "1,024 cached" in table
    assert "1234 ms" in table
    assert "TTFT 85 ms" in table
    assert "Times in UTC." in page.text
    # The admin filter bar: time range, models, status, user, project, agent, token.
    for name in ("range", "model", "status", "user", "project", "agent", "token"):
        assert f'name="{name}"' in page.text, name
    assert f'<option value="{member.id}" >member@example.com</option>' in page.text
    assert f'<option value="{project.id}" >Search</option>' in page.text


async def test_times_are_shown_in_the_organisation_time_zone(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _, _ = await _org(db)
    await db.execute(update(Account).where(Account.id == account.id).values(timezone="Asia/Kolkata"))
    record = usage_record(account.id, minutes_ago=0)
    db.add(record)
    await db.commit()
    await _sign_in(db, client, owner)

    page = await client.get("/requests")

    local = datetime_text(NOW, ZoneInfo("Asia/Kolkata"))
    assert f">{local}</time>" in _table(page.text)
    assert "Times in Asia/Kolkata." in page.text


async def test_filters_narrow_the_table(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, member, project = await _org(db)
    token_id = uuid.uuid4()
    plain = usage_record(account.id, minutes_ago=1)
    claude = usage_record(account.id, minutes_ago=2, model="claude-sonnet")
    mine = usage_record(account.id, minutes_ago=3, user_id=member.id)
    in_project = usage_record(account.id, minutes_ago=4, project_id=project.id)
    agent = usage_record(account.id, minutes_ago=5, agent_id="triage")
    with_token = usage_record(account.id, minutes_ago=6, api_token_id=token_id)
    failed = usage_record(account.id, minutes_ago=7, status="error", http_status=500)
    two_days = usage_record(account.id, minutes_ago=60 * 48)
    forty_days = usage_record(account.id, minutes_ago=60 * 24 * 40)
    db.add_all([plain, claude, mine, in_project, agent, with_token, failed, two_days, forty_days])
    await db.commit()
    await _sign_in(db, client, owner)

    async def ids(**params: str) -> list[str]:
        page = await client.get("/requests", params=params)
        assert page.status_code == 200, page.text
        return _rows(page.text)

    assert await ids(status="error") == [str(failed.id)]
    assert await ids(model="claude-sonnet") == [str(claude.id)]
    assert await ids(user=str(member.id)) == [str(mine.id)]
    assert await ids(project=str(project.id)) == [str(in_project.id)]
    assert await ids(agent="triage") == [str(agent.id)]
    assert await ids(token=str(token_id)) == [str(with_token.id)]
    # Time range presets: 7 days by default.
    assert len(await ids()) == 8
    assert str(two_days.id) not in await ids(range="24h")
    assert len(await ids(range="24h")) == 7
    assert str(forty_days.id) not in await ids(range="30d")
    assert str(forty_days.id) in await ids(range="60d")
    # A custom range is read in the organisation's time zone (UTC here).
    since = (NOW - timedelta(minutes=60 * 48 + 5)).strftime("%Y-%m-%dT%H:%M")
    until = (NOW - timedelta(minutes=60 * 24)).strftime("%Y-%m-%dT%H:%M")
    assert await ids(range="custom", since=since, until=until) == [str(two_days.id)]
    # The selected filter stays selected, and the pagination links keep the filters.
    page = await client.get("/requests", params={"status": "error", "model": "claude-sonnet"})
    assert '<option value="error" selected>' in page.text
    assert '<option value="claude-sonnet" selected>' in page.text
    assert "No matching calls" in page.text


async def test_bad_filter_values_show_a_banner(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _, _ = await _org(db)
    db.add(usage_record(account.id))
    await db.commit()
    await _sign_in(db, client, owner)

    for params, message in (
        ({"user": "nobody"}, "Unknown user."),
        ({"status": "exploded"}, "Unknown status."),
        ({"range": "forever"}, "Unknown time range."),
        ({"range": "custom", "since": "yesterday"}, "is not a valid date and time."),
    ):
        page = await client.get("/requests", params=params)
        assert page.status_code == 200
        assert 'class="banner banner-error" role="alert"' in page.text, params
        assert message in page.text, params
        # The page falls back to the default filters rather than failing.
        assert len(_rows(page.text)) == 1


async def test_pagination_pages_through_the_calls(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _, _ = await _org(db)
    db.add_all([usage_record(account.id, minutes_ago=i, status="error") for i in range(55)])
    await db.commit()
    await _sign_in(db, client, owner)

    first = await client.get("/requests", params={"status": "error"})
    second = await client.get("/requests", params={"status": "error", "page": "2"})

    assert len(_rows(first.text)) == 50
    assert "1\u201350 of 55" in first.text
    assert 'href="?range=7d&amp;status=error&page=2" rel="next"' in first.text
    assert len(_rows(second.text)) == 5
    assert "51\u201355 of 55" in second.text
    # A page past the last one (an old bookmark): said so, with the way back.
    past = await client.get("/requests", params={"status": "error", "page": "9"})
    assert past.status_code == 200
    assert _rows(past.text) == []
    assert "Past the last page" in past.text
    assert 'href="?range=7d&amp;status=error&page=1"' in past.text


async def test_a_long_log_is_counted_up_to_a_cap(
    db: AsyncSession, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pager counts the matches up to a cap (a month of a busy account's calls is millions): past
    it the page says "N+" and still offers the next page, whose rows are the right ones."""
    monkeypatch.setattr(requests_page, "COUNT_CAP", 60)
    account, owner, _, _ = await _org(db)
    db.add_all([usage_record(account.id, minutes_ago=i, status="error") for i in range(120)])
    await db.commit()
    await _sign_in(db, client, owner)

    first = await client.get("/requests", params={"status": "error"})
    assert "1\u201350 of 60+" in first.text
    assert "Page 1 of 2+" in first.text
    assert 'rel="next"' in first.text
    third = await client.get("/requests", params={"status": "error", "page": "3"})
    assert len(_rows(third.text)) == 20
    assert "101\u2013120 of 120+" not in third.text  # a page past the cap with fewer rows: the end
    assert "101\u2013120 of" in third.text
    assert 'rel="next"' not in third.text


async def test_empty_states(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _, _ = await _org(db)
    await _sign_in(db, client, owner)

    empty = await client.get("/requests")

    assert "No calls yet — point an OpenAI SDK at http://testserver/v1 with a gateway token." in empty.text
    assert 'id="requests-table"' not in empty.text

    db.add(usage_record(account.id, status="success"))
    await db.commit()
    filtered = await client.get("/requests", params={"status": "error"})
    assert "No matching calls" in filtered.text
    assert "No calls yet" not in filtered.text


async def test_htmx_filtering_returns_only_the_results(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _, _ = await _org(db)
    record = usage_record(account.id, status="error", http_status=500)
    db.add(record)
    await db.commit()
    await _sign_in(db, client, owner)

    fragment = await client.get(
        "/requests",
        params={"status": "error"},
        headers={"HX-Request": "true", "HX-Target": "requests-results"},
    )

    assert fragment.status_code == 200
    assert _rows(fragment.text) == [str(record.id)]
    assert "nav-title" not in fragment.text
    assert '<form class="filters"' not in fragment.text


async def test_the_detail_page_shows_every_field_and_the_stored_content(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner, member, project = await _org(db)
    record = usage_record(
        account.id, user_id=member.id, project_id=project.id, agent_id="support-bot",
        api_token_id=uuid.uuid4(), upstream_id="chatcmpl-abc123", stream=True, ttft_ms=85,
        cost_usd=Decimal("0.000067500000"),
        request_content={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]},
        response_content="Hi there!", content_expires_at=NOW + timedelta(days=30),
    )  # fmt: skip
    db.add(record)
    await db.commit()
    await _sign_in(db, client, owner)

    page = await client.get(f"/requests/{record.id}")

    assert page.status_code == 200
    text = page.text
    for expected in (
        "member@example.com", "Search", "support-bot", "chatcmpl-abc123", str(record.api_token_id),
        "HTTP 200", "Time to first token", "85 ms", "(exact: $0.0000675)", "Kept until",
    ):  # fmt: skip
        assert expected in text, expected
    # The input pretty-printed as JSON, the output as it was.
    pre = re.search(r'<pre class="content-pre" id="request-content">(.*?)</pre>', text, re.S)
    assert pre is not None
    assert pre.group(1).startswith("{\n  &#34;model&#34;: &#34;gpt-4o-mini&#34;,\n  &#34;messages&#34;: [")
    assert '<pre class="content-pre" id="response-content">Hi there!</pre>' in text
    assert 'href="/requests"' in text  # the breadcrumb back to the log


async def test_the_detail_page_explains_missing_content(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _, _ = await _org(db)
    record = usage_record(account.id)
    db.add(record)
    await db.commit()
    await _sign_in(db, client, owner)

    off = await client.get(f"/requests/{record.id}")
    assert "Content storage is off for this account" in off.text
    assert 'id="request-content"' not in off.text

    await db.execute(update(Account).where(Account.id == account.id).values(store_request_content=True))
    await db.commit()
    expired = await client.get(f"/requests/{record.id}")
    assert "stored content is deleted after 30 days" in expired.text
    assert "Content storage is off" not in expired.text


async def test_a_member_sees_only_their_own_calls(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, member, _ = await _org(db)
    colleague = await make_user(db, account, email="colleague@example.com")
    mine = usage_record(account.id, minutes_ago=1, user_id=member.id)
    theirs = usage_record(account.id, minutes_ago=2, user_id=colleague.id)
    owners = usage_record(account.id, minutes_ago=3, user_id=owner.id)
    db.add_all([mine, theirs, owners])
    await db.commit()
    await _sign_in(db, client, member)

    page = await client.get("/requests")

    assert page.status_code == 200
    assert _rows(page.text) == [str(mine.id)]
    assert 'name="user"' not in page.text  # no user filter for members
    assert "colleague@example.com" not in page.text
    assert "Your calls through the gateway" in page.text
    # A user filter in the URL is ignored: still only their own calls.
    assert _rows((await client.get("/requests", params={"user": str(colleague.id)})).text) == [str(mine.id)]
    assert (await client.get(f"/requests/{mine.id}")).status_code == 200
    for other in (theirs, owners):
        assert (await client.get(f"/requests/{other.id}")).status_code == 404


async def test_another_accounts_calls_never_show(db: AsyncSession, client: AsyncClient) -> None:
    _, owner, _, _ = await _org(db)
    elsewhere, _ = await make_account(db, name="Elsewhere")
    foreign = usage_record(elsewhere.id, model="foreign-model")
    db.add(foreign)
    await db.commit()
    await _sign_in(db, client, owner)

    page = await client.get("/requests")

    assert _rows(page.text) == []
    assert "foreign-model" not in page.text
    assert "No calls yet" in page.text
    assert (await client.get(f"/requests/{foreign.id}")).status_code == 404


async def test_names_from_callers_are_escaped(db: AsyncSession, client: AsyncClient) -> None:
    account, owner, _, _ = await _org(db)
    record = usage_record(
        account.id, model="<script>alert(1)</script>", agent_id='"><img src=x onerror=alert(2)>',
        error_message="<b>boom</b>", status="error", http_status=400,
        request_content={"messages": [{"role": "user", "content": "</pre><script>alert(3)</script>"}]},
        response_content="<script>alert(4)</script>",
    )  # fmt: skip
    db.add(record)
    await db.commit()
    await _sign_in(db, client, owner)

    listing = await client.get("/requests")
    detail = await client.get(f"/requests/{record.id}")

    for page in (listing, detail):
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;b&gt;boom&lt;/b&gt;" in detail.text
    assert "&lt;script&gt;alert(4)&lt;/script&gt;" in detail.text
    assert "</pre><script>" not in detail.text


async def test_everyone_signed_in_has_the_request_log_in_the_navigation(
    db: AsyncSession, client: AsyncClient
) -> None:
    _, _, member, _ = await _org(db)
    await _sign_in(db, client, member)

    page = await client.get("/requests")

    assert '<div class="nav-title">OPERATIONS</div>' in page.text
    assert 'href="/requests" class="nav-link active" aria-current="page"' in page.text


async def test_the_page_needs_a_signed_in_user(db: AsyncSession, client: AsyncClient) -> None:
    for path in ("/requests", f"/requests/{uuid.uuid4()}"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")


async def test_admins_role_sees_everyone(db: AsyncSession, client: AsyncClient) -> None:
    account, _, member, _ = await _org(db)
    admin = await make_user(db, account, role=UserRole.admin)
    records = [
        usage_record(account.id, minutes_ago=1, user_id=member.id),
        usage_record(account.id, minutes_ago=2),
    ]
    db.add_all(records)
    await db.commit()
    await _sign_in(db, client, admin)

    page = await client.get("/requests")

    assert _rows(page.text) == [str(r.id) for r in records]
    assert 'name="user"' in page.text


def _picker(html: str, picker_id: str) -> tuple[str, str, list[tuple[str, str]]]:
    """A searchable picker: (what its text box shows, the id its hidden input sends, its suggestions)."""
    box = re.search(rf'<input class="input" type="search" id="{picker_id}"[^>]*value="([^"]*)"', html)
    sent = re.search(
        rf'<input type="hidden" name="[a-z_]+" value="([^"]*)" x-ref="value" id="{picker_id}-value">', html
    )
    options = re.search(rf'<datalist id="{picker_id}-options">(.*?)</datalist>', html, re.S)
    assert box, picker_id
    assert sent, picker_id
    assert options, picker_id
    pairs = re.findall(r'<option value="([^"]*)" data-id="([^"]*)">', options.group(1))
    return box.group(1), sent.group(1), [(label, ident) for label, ident in pairs]


async def test_agent_and_token_filters_are_pickers_that_show_names_and_send_ids(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, owner, member, _ = await _org(db)
    deploy, _ = await issue_token(
        db, Actor.system(account.id, "tests"), owner, name="deploy", scopes=["gateway"]
    )
    theirs, _ = await issue_token(
        db, Actor.system(account.id, "tests"), member, name="laptop", scopes=["gateway"]
    )
    other, other_owner = await make_account(db, name="Elsewhere")
    await issue_token(db, Actor.system(other.id, "tests"), other_owner, name="not-yours", scopes=["gateway"])
    db.add_all([
        usage_record(account.id, minutes_ago=5, agent_id="triage", api_token_id=deploy.id),
        usage_record(account.id, minutes_ago=6, agent_id="release-notes", user_id=member.id),
        usage_record(account.id, minutes_ago=60 * 24 * 30, agent_id="long-ago"),  # outside the 7 days
        usage_record(other.id, minutes_ago=5, agent_id="their-bot"),
    ])  # fmt: skip
    await db.commit()
    await _sign_in(db, client, owner)

    page = await client.get("/requests", params={"token": str(deploy.id)})

    shown, sent, tokens = _picker(page.text, "filter-token")
    assert (shown, sent) == (f"deploy ({owner.email})", str(deploy.id))  # the name, not the id
    assert sorted(tokens) == sorted([
        (f"deploy ({owner.email})", str(deploy.id)), ("laptop (member@example.com)", str(theirs.id)),
    ])  # fmt: skip
    _, _, agents = _picker(page.text, "filter-agent")
    assert agents == [("release-notes", "release-notes"), ("triage", "triage")]
    # A member picks among their own tokens and their own calls' agents only.
    client.cookies.clear()
    await _sign_in(db, client, member)
    mine = await client.get("/requests")
    assert _picker(mine.text, "filter-token")[2] == [("laptop", str(theirs.id))]
    assert _picker(mine.text, "filter-agent")[2] == [("release-notes", "release-notes")]
