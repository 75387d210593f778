"""Console pages seen through a browser-like client: dashboard, navigation, tokens, audit log, assets."""

from __future__ import annotations

import csv
import io
import re
import uuid

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.audit.service import CSV_COLUMNS
from cockpit.auth.models import ApiToken
from cockpit.users.models import UserRole
from tests.builders import bearer, console_login, csrf_for, make_account, make_token, make_user

NAV_TITLE = re.compile(r'<div class="nav-title">([^<]+)</div>')
NAV_LINK = re.compile(r'class="nav-link[^"]*"[^>]*>.*?<span>([^<]+)</span></a>', re.S)
NEW_TOKEN = re.compile(r'data-testid="new-token">(ck_[^<]+)</code>')
AUDIT_ACTIONS = re.compile(r'<code class="code-pill">([a-z_.]+)</code></a></td>')


async def _sign_in(
    db: AsyncSession, client: AsyncClient, role: UserRole = UserRole.owner
) -> tuple[uuid.UUID, str]:
    account, owner = await make_account(db, name="Nimbus Analytics")
    user = owner if role is UserRole.owner else await make_user(db, account, role=role)
    account_id, email = account.id, user.email
    response = await console_login(client, email)
    assert response.status_code == 303, response.text
    return account_id, email


def _table(html: str) -> str:
    match = re.search(r'<table class="table" id="audit-table">.*?</table>', html, re.S)
    return match.group(0) if match else ""


async def _tokens_named(db: AsyncSession, name: str) -> list[ApiToken]:
    db.expire_all()
    rows = list(await db.scalars(select(ApiToken).where(ApiToken.name == name)))
    await db.commit()
    return rows


# ---- dashboard and navigation ----


async def test_dashboard_shows_the_organisation_and_the_navigation(
    db: AsyncSession, client: AsyncClient
) -> None:
    await _sign_in(db, client)

    page = await client.get("/")

    assert page.status_code == 200
    assert "Nimbus Analytics" in page.text
    assert NAV_TITLE.findall(page.text) == ["CONTROL", "FINANCE", "OPERATIONS", "ACCOUNT"]
    assert NAV_LINK.findall(page.text) == [
        "Users",
        "Groups",
        "Projects",
        "Agents",
        "Integrations",
        "Access policies",
        "Notifications",
        "Support",
        "Audit log",
        "Credits &amp; Allocations",
        "Cost tracking",
        "Conversations",
        "Request log",
        "Jobs",
        "Events",
        "Dashboard",
        "Organisation",
        "Usage",
        "Billing",
        "Models",
        "API tokens",
    ]
    assert 'href="/" class="nav-link active" aria-current="page"' in page.text
    # The owner sees this week's activity: the account set-up and their own sign-in.
    assert "Audit events, last 7 days" in page.text
    assert "auth.login" in page.text


async def test_a_member_sees_no_audit_log_in_the_navigation(db: AsyncSession, client: AsyncClient) -> None:
    await _sign_in(db, client, UserRole.member)

    page = await client.get("/")

    assert page.status_code == 200
    assert NAV_TITLE.findall(page.text) == ["CONTROL", "FINANCE", "OPERATIONS", "ACCOUNT"]
    # Members see the projects they belong to and their own calls, not the administration pages.
    assert NAV_LINK.findall(page.text) == [
        "Projects",
        "Agents",
        "Integrations",
        "Support",
        "Credits &amp; Allocations",
        "Conversations",
        "Request log",
        "Dashboard",
        "Organisation",
        "Usage",
        "API tokens",
    ]
    assert "Audit events" not in page.text
    assert (await client.get("/audit")).status_code == 403


async def test_pages_need_a_signed_in_user(db: AsyncSession, client: AsyncClient) -> None:
    for path in ("/", "/tokens", "/audit", "/account"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")


# ---- API tokens ----


async def _create_token(client: AsyncClient, name: str, *scopes: str) -> str:
    data: dict[str, object] = {"name": name, "csrf_token": await csrf_for(client, "/tokens")}
    if scopes:
        data["scopes"] = list(scopes)
    response = await client.post("/tokens", data=data)
    assert response.status_code == 201, response.text
    match = NEW_TOKEN.search(response.text)
    assert match, "the new token is not shown"
    return match.group(1)


async def test_a_created_token_is_shown_once_and_works(db: AsyncSession, client: AsyncClient) -> None:
    await _sign_in(db, client)

    secret = await _create_token(client, "reporting script", "admin", "gateway")

    assert secret.startswith("ck_")
    [token] = await _tokens_named(db, "reporting script")
    assert token.scopes == ["admin", "gateway"]
    assert token.prefix == secret[:10]
    reloaded = await client.get("/tokens")
    assert reloaded.status_code == 200
    assert secret not in reloaded.text
    assert 'data-testid="new-token"' not in reloaded.text
    assert "reporting script" in reloaded.text
    assert f"{secret[:10]}…" in reloaded.text  # only the prefix is listed
    api = await client.get("/api/v1/account", headers=bearer(secret))
    assert api.status_code == 200
    assert api.json()["name"] == "Nimbus Analytics"


async def test_revoking_a_token_redirects_with_a_flash(db: AsyncSession, client: AsyncClient) -> None:
    await _sign_in(db, client)
    secret = await _create_token(client, "old script", "admin")
    [token] = await _tokens_named(db, "old script")

    response = await client.post(
        f"/tokens/{token.id}/revoke", data={"csrf_token": await csrf_for(client, "/tokens")}
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/tokens"
    page = await client.get("/tokens")
    assert "Token “old script” was revoked." in page.text
    row = re.search(r"<tr>\s*<td class=\"strong\">old script</td>.*?</tr>", page.text, re.S)
    assert row is not None
    assert '<span class="badge badge-neutral">revoked</span>' in row.group(0)
    assert "Revoke" not in row.group(0)  # no second revoke button
    [stored] = await _tokens_named(db, "old script")
    assert stored.revoked_at is not None
    assert (await client.get("/api/v1/account", headers=bearer(secret))).status_code == 401


async def test_a_token_without_scopes_is_not_created(db: AsyncSession, client: AsyncClient) -> None:
    await _sign_in(db, client)
    csrf = await csrf_for(client, "/tokens")

    response = await client.post("/tokens", data={"name": "no scopes", "csrf_token": csrf})

    assert response.status_code == 422
    assert "Choose at least one scope" in response.text
    assert 'value="no scopes"' in response.text  # the form keeps what was typed
    assert "ck_" not in response.text
    assert await _tokens_named(db, "no scopes") == []


async def test_someone_elses_token_cannot_be_revoked(db: AsyncSession, client: AsyncClient) -> None:
    _, stranger = await make_account(db, name="Elsewhere")
    await make_token(db, stranger, name="their token")
    [theirs] = await _tokens_named(db, "their token")
    await _sign_in(db, client)

    response = await client.post(
        f"/tokens/{theirs.id}/revoke", data={"csrf_token": await csrf_for(client, "/tokens")}
    )

    assert response.status_code == 404
    [stored] = await _tokens_named(db, "their token")
    assert stored.revoked_at is None


# ---- the audit log ----


async def _audit_trail(db: AsyncSession, client: AsyncClient) -> uuid.UUID:
    """Owner signed in; entries: account.created, user.created, auth.login, api_token.created x2."""
    account_id, _ = await _sign_in(db, client)
    await _create_token(client, "billing export", "admin")
    await _create_token(client, "chat bot", "gateway")
    return account_id


async def test_the_audit_page_lists_and_filters(db: AsyncSession, client: AsyncClient) -> None:
    await _audit_trail(db, client)

    everything = await client.get("/audit")
    by_text = await client.get("/audit", params={"q": "billing"})
    by_action = await client.get("/audit", params={"action": "auth.login"})

    assert everything.status_code == 200
    assert AUDIT_ACTIONS.findall(_table(everything.text)) == [
        "api_token.created", "api_token.created", "auth.login", "user.created", "account.created",
    ]  # fmt: skip
    assert AUDIT_ACTIONS.findall(_table(by_text.text)) == ["api_token.created"]
    assert "billing export" in _table(by_text.text)
    assert "chat bot" not in _table(by_text.text)
    assert 'value="billing"' in by_text.text  # the search box keeps the query
    assert AUDIT_ACTIONS.findall(_table(by_action.text)) == ["auth.login"]
    assert '<option value="auth.login" selected>' in by_action.text
    nothing = await client.get("/audit", params={"q": "no such thing"})
    assert _table(nothing.text) == ""
    assert "No matching entries" in nothing.text


async def test_a_bad_date_filter_shows_an_error_not_a_crash(db: AsyncSession, client: AsyncClient) -> None:
    await _audit_trail(db, client)

    response = await client.get("/audit", params={"since": "not-a-date"})

    assert response.status_code == 200
    assert "is not a valid date and time" in response.text


async def test_htmx_requests_get_only_the_results_fragment(db: AsyncSession, client: AsyncClient) -> None:
    await _audit_trail(db, client)

    fragment = await client.get(
        "/audit", params={"q": "chat"}, headers={"HX-Request": "true", "HX-Target": "audit-results"}
    )

    assert fragment.status_code == 200
    assert AUDIT_ACTIONS.findall(fragment.text) == ["api_token.created"]
    assert "chat bot" in fragment.text
    assert "<html" not in fragment.text
    assert "nav-title" not in fragment.text
    assert 'id="audit-results"' not in fragment.text
    assert "Nimbus Analytics" not in fragment.text  # no sidebar
    full = await client.get("/audit", params={"q": "chat"})
    assert "<html" in full.text
    assert 'id="audit-results"' in full.text


async def test_the_console_exports_csv(db: AsyncSession, client: AsyncClient) -> None:
    await _audit_trail(db, client)

    response = await client.get("/audit/export.csv", params={"action": "api_token.created"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    header, *rows = list(csv.reader(io.StringIO(response.text)))
    assert header == CSV_COLUMNS
    records = [dict(zip(header, row, strict=True)) for row in rows]
    assert [r["target_label"] for r in records] == ["chat bot", "billing export"]
    assert {r["action"] for r in records} == {"api_token.created"}


async def test_an_entry_has_a_detail_page(db: AsyncSession, client: AsyncClient) -> None:
    account_id = await _audit_trail(db, client)
    db.expire_all()
    entry = await db.scalar(
        select(AuditEntry).where(AuditEntry.account_id == account_id, AuditEntry.target_label == "chat bot")
    )
    await db.commit()
    assert entry is not None

    page = await client.get(f"/audit/{entry.id}")

    assert page.status_code == 200
    assert f"Entry #{entry.seq}" in page.text
    assert "api_token.created" in page.text
    assert "chat bot" in page.text
    assert entry.hash in page.text
    assert entry.prev_hash in page.text
    assert "203.0.113.7" in page.text
    assert '<td class="strong">scopes</td>' in page.text


async def test_an_unknown_entry_is_a_404_page(db: AsyncSession, client: AsyncClient) -> None:
    await _audit_trail(db, client)

    response = await client.get(f"/audit/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Page not found" in response.text
    assert "No such audit entry." in response.text


async def test_another_accounts_entry_is_a_404_page(db: AsyncSession, client: AsyncClient) -> None:
    stranger, _ = await make_account(db, name="Elsewhere")
    theirs = await db.scalar(select(AuditEntry.id).where(AuditEntry.account_id == stranger.id).limit(1))
    await db.commit()
    await _sign_in(db, client)

    response = await client.get(f"/audit/{theirs}")

    assert response.status_code == 404
    assert "Elsewhere" not in response.text


# ---- static assets ----


async def test_stylesheet_and_vendored_scripts_are_served(db: AsyncSession, client: AsyncClient) -> None:
    await _sign_in(db, client)
    page = (await client.get("/")).text
    scripts = re.findall(r'<script src="([^"]+)"', page)
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert any("htmx" in s for s in scripts)
    assert any("alpine" in s for s in scripts)

    css = await client.get("/static/css/cockpit.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert len(css.content) > 1000
    for url in scripts + styles:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"], url
    assert (await client.get("/static/vendor/does-not-exist.js")).status_code == 404
