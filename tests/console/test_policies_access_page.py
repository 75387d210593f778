"""Access policies in the console, continued: the defaults, effective access (with its person
picker), and the features a denied policy hides (token creation, credit requests, CSV exports)."""

from __future__ import annotations

import html as htmllib
import re

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import ApiToken
from cockpit.authz.actor import Actor
from cockpit.credits.models import CreditRequest
from cockpit.policies import service as policies
from cockpit.policies.models import Effect, PolicyDefaults, ResourceType, Scope
from tests.builders import csrf_for, make_account
from tests.console.test_policies_page import (
    BANNER_ERROR,
    EFFECTIVE,
    PAGE,
    _audits,
    _count,
    _follow,
    _login,
    _org,
    _post,
    _row,
    _rule,
    _rules,
    _selected,
)
from tests.policies.conftest import add_agent


def _picked(text: str, picker_id: str) -> tuple[str, str]:
    """A searchable picker: (what its text box shows, the id it sends)."""
    box = re.search(rf'<input class="input" type="search" id="{picker_id}"[^>]*value="([^"]*)"', text)
    sent = re.search(rf'value="([^"]*)" x-ref="value" id="{picker_id}-value"', text)
    assert box, picker_id
    assert sent, picker_id
    return htmllib.unescape(box.group(1)), sent.group(1)


async def test_save_the_defaults(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    await _login(client, org.owner)

    response = await _post(
        client,
        "/policies/defaults",
        {"model": "deny", "agent": "allow", "integration": "deny", "feature": "allow", "admins_exempt": "1"},
    )
    location, kind, message, page = await _follow(client, response)
    assert (location, kind, message) == (PAGE, "success", "Defaults saved.")
    assert _selected(page, "default-model") == "deny"
    assert _selected(page, "default-integration") == "deny"
    assert _selected(page, "default-agent") == "allow"
    assert re.search(r'id="admins-exempt" checked', page)

    await db.commit()
    stored = await db.get(PolicyDefaults, org.account.id, populate_existing=True)
    assert stored is not None
    assert (stored.model, stored.agent, stored.integration, stored.feature, stored.admins_exempt) == (
        Effect.deny,
        Effect.allow,
        Effect.deny,
        Effect.allow,
        True,
    )
    audits = await _audits(db, org.account.id, "policy.defaults_updated")
    assert len(audits) == 1
    assert audits[0].after == {"model": "deny", "integration": "deny", "admins_exempt": True}

    # The same again changes nothing; unticking the box turns the exemption off.
    same = await _post(
        client,
        "/policies/defaults",
        {"model": "deny", "agent": "allow", "integration": "deny", "feature": "allow", "admins_exempt": "1"},
    )
    assert (await _follow(client, same))[2] == "Nothing changed: the defaults were already set this way."
    unticked = await _post(
        client,
        "/policies/defaults",
        {"model": "deny", "agent": "allow", "integration": "deny", "feature": "allow"},
    )
    assert (await _follow(client, unticked))[2] == "Defaults saved."
    await db.commit()
    stored = await db.get(PolicyDefaults, org.account.id, populate_existing=True)
    assert stored is not None
    assert stored.admins_exempt is False
    assert len(await _audits(db, org.account.id, "policy.defaults_updated")) == 2

    # A value the selects never send is refused in the card; nothing changes.
    refused = await _post(
        client,
        "/policies/defaults",
        {"model": "maybe", "agent": "allow", "integration": "deny", "feature": "allow"},
    )
    assert refused.status_code == 422
    error = BANNER_ERROR.search(refused.text)
    assert error
    assert error.group(1) == "Choose Allow or Deny as the default for models."
    await db.commit()
    stored = await db.get(PolicyDefaults, org.account.id, populate_existing=True)
    assert stored is not None
    assert stored.model is Effect.deny
    assert len(await _audits(db, org.account.id, "policy.defaults_updated")) == 2


# ---- effective access ----


async def test_effective_access_names_the_deciding_rule_or_the_default(
    db: AsyncSession, client: AsyncClient
) -> None:
    org = await _org(db)
    group_rule = await _rule(
        db,
        org,
        scope=Scope.group,
        scope_id=org.group_id,
        kind=ResourceType.model,
        resource=str(org.gpt),
        effect=Effect.deny,
        note="Too expensive",
    )
    await add_agent(db, org.account.id, "support-bot", "Support bot")
    await _rule(
        db,
        org,
        scope=Scope.user,
        scope_id=org.member.id,
        kind=ResourceType.agent,
        resource="support-bot",
        effect=Effect.allow,
    )
    await _rule(
        db, org, scope=Scope.account, scope_id=None, kind=ResourceType.agent, resource="*", effect=Effect.deny
    )
    await _login(client, org.admin)

    page = await client.get(EFFECTIVE, params={"user_id": str(org.member.id)})
    assert page.status_code == 200, page.text
    text = page.text
    assert _picked(text, "effective-user") == (f"{org.member.name} <{org.member.email}>", str(org.member.id))
    assert "Group Engineering" in text

    gpt = _row(text, "effective-model-table", str(org.gpt))
    assert '<span class="badge badge-danger">Denied</span>' in gpt
    assert f'data-rule="{group_rule}"' in gpt
    assert '<span class="badge badge-info">Group</span> <span class="strong">Group Engineering</span>' in gpt
    assert '<span class="badge badge-danger">Deny</span>' in gpt
    assert f"Set by {org.owner.email}" in gpt
    assert "Note: Too expensive" in gpt
    assert "is denied by a group-level rule (Group Engineering)" in htmllib.unescape(gpt)

    claude = _row(text, "effective-model-table", str(org.claude))
    assert '<span class="badge badge-success">Allowed</span>' in claude
    assert '<span class="badge badge-neutral">Default</span>' in claude
    assert "is allowed by the account&#39;s default for models." in claude

    bot = _row(text, "effective-agent-table", "support-bot")
    assert '<span class="badge badge-success">Allowed</span>' in bot
    assert '<span class="badge badge-warning">User</span>' in bot
    others = _row(text, "effective-agent-table", "*")
    assert "Any other agent" in others
    assert '<span class="badge badge-danger">Denied</span>' in others
    assert '<span class="badge badge-accent">Account</span> <span class="strong">Everyone</span>' in others

    feature = _row(text, "effective-feature-table", "api_tokens.create")
    assert "Create personal API tokens" in feature
    assert '<span class="badge badge-neutral">Default</span>' in feature

    # Owners and admins exempt: the admin's own access says so.
    await policies.change_defaults(db, Actor.for_user(org.owner), model="deny", admins_exempt=True)
    await db.commit()
    own = await client.get(EFFECTIVE)
    assert _picked(own.text, "effective-user")[1] == str(org.admin.id)
    row = _row(own.text, "effective-model-table", str(org.gpt))
    assert '<span class="badge badge-success">Allowed</span>' in row
    assert "Owners and admins are exempt" in row
    # The member is not exempt: the default now denies what no rule allows.
    member = await client.get(EFFECTIVE, params={"user_id": str(org.member.id)})
    row = _row(member.text, "effective-model-table", str(org.claude))
    assert '<span class="badge badge-danger">Denied</span>' in row
    assert '<span class="badge badge-neutral">Default</span>' in row

    # Another account's user is not found.
    _other_account, other_owner = await make_account(db, name="Other Co")
    assert (await client.get(EFFECTIVE, params={"user_id": str(other_owner.id)})).status_code == 404
    assert (await client.get(EFFECTIVE, params={"user_id": "nope"})).status_code == 404


async def test_the_person_picker_suggests_people_of_the_account_as_one_types(
    db: AsyncSession, client: AsyncClient
) -> None:
    org = await _org(db)
    org.member.name = "Mia Member"
    other = await _org(db, name="Other Co")  # also has a "mia-…" member: never suggested
    await db.commit()
    await _login(client, org.admin)

    page = await client.get(EFFECTIVE)
    found = await client.get(f"{EFFECTIVE}/people", params={"q": "mia"})

    # Every person is a suggestion of the page's picker, by name and e-mail, with their id.
    assert f'<option value="Mia Member &lt;{org.member.email}&gt;" data-id="{org.member.id}">' in page.text
    assert found.status_code == 200
    options = re.findall(r'<option value="([^"]*)" data-id="([^"]*)">', found.text)
    assert options == [(f"Mia Member &lt;{org.member.email}&gt;", str(org.member.id))]
    assert str(other.member.id) not in found.text
    # Members have no picker and cannot search people.
    client.cookies.clear()
    await _login(client, org.member)
    assert (await client.get(f"{EFFECTIVE}/people", params={"q": "a"})).status_code == 403


async def test_a_member_sees_only_their_own_effective_access(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    await _rule(
        db,
        org,
        scope=Scope.group,
        scope_id=org.group_id,
        kind=ResourceType.model,
        resource=str(org.gpt),
        effect=Effect.deny,
    )
    await _login(client, org.member)

    dashboard = await client.get("/")
    assert 'href="/policies"' not in dashboard.text
    forbidden = await client.get(PAGE)
    assert forbidden.status_code == 403
    assert "This page is for account administrators." in forbidden.text

    own = await client.get(EFFECTIVE)
    assert own.status_code == 200
    assert "Your access" in own.text
    assert 'id="effective-user"' not in own.text  # no picker
    assert 'id="tab-rules"' not in own.text
    assert org.member.email in own.text
    assert '<span class="badge badge-danger">Denied</span>' in _row(
        own.text, "effective-model-table", str(org.gpt)
    )
    assert (await client.get(EFFECTIVE, params={"user_id": str(org.member.id)})).status_code == 200

    someone_else = await client.get(EFFECTIVE, params={"user_id": str(org.owner.id)})
    assert someone_else.status_code == 403

    # Nor may they write.
    for url, data in (
        (PAGE, {"scope": "account", "resource_type": "feature", "feature": "*", "effect": "allow"}),
        (
            "/policies/defaults",
            {"model": "allow", "agent": "allow", "integration": "allow", "feature": "allow"},
        ),
    ):
        response = await _post(client, url, data, EFFECTIVE)
        assert response.status_code == 403
    assert len(await _rules(db, org.account.id)) == 1


async def test_csrf_is_required(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    rule_id = await _rule(
        db,
        org,
        scope=Scope.account,
        scope_id=None,
        kind=ResourceType.feature,
        resource="*",
        effect=Effect.deny,
    )
    await _login(client, org.owner)
    await client.get(PAGE)  # the CSRF cookie is set

    for url, data in (
        (PAGE, {"scope": "account", "resource_type": "model", "model": "*", "effect": "deny"}),
        (f"/policies/{rule_id}/delete", {}),
        (
            "/policies/defaults",
            {"model": "deny", "agent": "allow", "integration": "allow", "feature": "allow"},
        ),
    ):
        response = await client.post(url, data={**data, "csrf_token": "forged"})
        assert response.status_code == 403
        assert "This form has expired or did not come from Cockpit." in response.text
    assert [p.id for p in await _rules(db, org.account.id)] == [rule_id]
    await db.commit()
    assert await db.get(PolicyDefaults, org.account.id) is None


# ---- what a denied feature hides ----


async def test_a_denied_token_feature_hides_the_create_form(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    await _login(client, org.member)
    before = await client.get("/tokens")
    assert 'id="create-token-form"' in before.text
    assert 'id="create-token-off"' not in before.text

    await _rule(
        db,
        org,
        scope=Scope.group,
        scope_id=org.group_id,
        kind=ResourceType.feature,
        resource="api_tokens.create",
        effect=Effect.deny,
    )
    after = await client.get("/tokens")
    assert 'id="create-token-form"' not in after.text
    assert "do not let you create API tokens" in after.text

    # Submitted anyway (a page opened before the rule): refused, and the page says why.
    refused = await _post(client, "/tokens", {"name": "script", "scopes": "admin"}, "/tokens")
    assert refused.status_code == 403
    error = BANNER_ERROR.search(refused.text)
    assert error
    assert "feature &#39;api_tokens.create&#39; is denied by a group-level rule" in error.group(1)
    assert 'id="create-token-form"' not in refused.text
    assert await _count(db, ApiToken, org.account.id) == 0

    # Others are not concerned.
    await client.post("/logout", data={"csrf_token": await csrf_for(client, "/tokens")})
    await _login(client, org.admin)
    assert 'id="create-token-form"' in (await client.get("/tokens")).text


async def test_a_denied_credit_request_feature_hides_the_request_button(
    db: AsyncSession, client: AsyncClient
) -> None:
    org = await _org(db)
    await _login(client, org.member)
    before = await client.get("/credits/requests")
    assert 'id="request-credits"' in before.text
    assert 'id="file-request-form"' in before.text

    await _rule(
        db,
        org,
        scope=Scope.user,
        scope_id=org.member.id,
        kind=ResourceType.feature,
        resource="credit_requests.create",
        effect=Effect.deny,
        note="Ask your manager",
    )
    after = await client.get("/credits/requests")
    assert 'id="request-credits"' not in after.text
    assert 'id="file-request-form"' not in after.text
    assert "do not let you ask for extra credits" in after.text

    response = await _post(
        client, "/credits/requests", {"amount": "100", "reason": "Evals"}, "/credits/requests"
    )
    location, kind, message, _ = await _follow(client, response)
    assert (location, kind) == ("/credits/requests", "error")
    assert message.startswith("You may not ask for extra credits. Access to feature 'credit_requests.create'")
    assert "is denied by a user-level rule" in message
    assert await _count(db, CreditRequest, org.account.id) == 0


async def test_denied_exports_hide_the_csv_links(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    await _login(client, org.owner)
    for url in ("/audit", "/credits/statement"):
        page = await client.get(url)
        assert page.status_code == 200, page.text
        assert 'id="export-csv"' in page.text, url

    await _rule(
        db,
        org,
        scope=Scope.account,
        scope_id=None,
        kind=ResourceType.feature,
        resource="export.reports",
        effect=Effect.deny,
    )
    for url in ("/audit", "/credits/statement"):
        page = await client.get(url)
        assert page.status_code == 200, page.text
        assert 'id="export-csv"' not in page.text, url
        assert "Export CSV" not in page.text, url
    filtered = await client.get(
        "/audit", params={"q": "policy"}, headers={"HX-Request": "true", "HX-Target": "audit-results"}
    )
    assert 'id="export-csv"' not in filtered.text

    # A download link kept from before is refused with the reason.
    for url in ("/audit/export.csv", "/credits/statement.csv"):
        refused = await client.get(url)
        assert refused.status_code == 403, url
        assert "feature &#39;export.reports&#39; is denied by an account-level rule" in refused.text

    # Exempt owners and admins get the links back.
    await policies.change_defaults(db, Actor.for_user(org.owner), admins_exempt=True)
    await db.commit()
    assert 'id="export-csv"' in (await client.get("/audit")).text
    assert 'id="export-csv"' in (await client.get("/credits/statement")).text
