"""Access policies in the console (/policies and /policies/effective): the rules table, "Add rule",
delete, filters, defaults, effective access, who may open what, and the features a denied policy
hides (token creation, credit requests, CSV exports)."""

from __future__ import annotations

import html as htmllib
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent
from cockpit.audit.models import AuditEntry
from cockpit.auth.models import ApiToken
from cockpit.authz.actor import Actor
from cockpit.credits.models import CreditRequest
from cockpit.groups import service as groups
from cockpit.policies import catalogues as policy_catalogues
from cockpit.policies import service as policies
from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.tenancy.models import Account
from cockpit.users import service as users
from cockpit.users.models import User, UserRole
from tests.builders import console_login, csrf_for, make_account, make_user
from tests.conftest import TEST_SECRET
from tests.policies.conftest import add_agent

PAGE = "/policies"
EFFECTIVE = "/policies/effective"
FLASH = re.compile(
    r'<div class="banner banner-(success|error|info)" role="status"[^>]*>.*?<span>([^<]*)</span>', re.S
)
BANNER_ERROR = re.compile(r'<div class="banner banner-error" role="alert">.*?<span>([^<]*)</span>', re.S)
PARTIAL = {"HX-Request": "true", "HX-Target": "policy-rules"}


@dataclass
class Org:
    account: Account
    owner: User
    admin: User
    member: User
    group_id: uuid.UUID  # Engineering, the member's group
    gpt: uuid.UUID
    claude: uuid.UUID


async def _org(db: AsyncSession, name: str = "Policy Co") -> Org:
    account, owner = await make_account(db, name=name, email=f"owner-{uuid.uuid4().hex[:6]}@example.com")
    admin = await make_user(db, account, role=UserRole.admin, email=f"ada-{uuid.uuid4().hex[:6]}@example.com")
    member = await make_user(db, account, email=f"mia-{uuid.uuid4().hex[:6]}@example.com")
    actor = Actor.for_user(owner)
    group = await groups.create_group(db, actor, name="Engineering")
    await users.add_members(db, actor, group.id, [member.id])
    provider = await providers.create_provider(
        db, actor, name="Sim", kind=ProviderKind.simulated, secret_key=TEST_SECRET, allow_private=True
    )
    models = {}
    for model_name in ("gpt-4o", "claude-sonnet"):
        model = await providers.create_model(
            db,
            actor,
            name=model_name,
            provider_id=provider.id,
            upstream_model=model_name,
            input_price_per_million=Decimal(1),
            output_price_per_million=Decimal(2),
        )
        models[model_name] = model.id
    await db.commit()
    return Org(account, owner, admin, member, group.id, models["gpt-4o"], models["claude-sonnet"])


async def _rule(
    db: AsyncSession,
    org: Org,
    *,
    scope: Scope,
    scope_id: uuid.UUID | None,
    kind: ResourceType,
    resource: str,
    effect: Effect,
    note: str = "",
) -> uuid.UUID:
    actor = Actor.for_user(org.owner)
    agents = (await db.scalars(select(Agent).where(Agent.account_id == org.account.id))).all()
    row = await policies.create_policy(
        db,
        actor,
        scope=scope,
        scope_id=scope_id,
        resource_type=kind,
        resource=resource,
        effect=effect,
        note=note,
        catalogues=await policy_catalogues.build(db, actor, agents=agents),
    )
    await db.commit()
    return row.policy.id


async def _login(client: AsyncClient, user: User) -> None:
    response = await console_login(client, user.email)
    assert response.status_code == 303, response.text


async def _post(client: AsyncClient, url: str, data: dict[str, str], page: str = PAGE) -> Response:
    return await client.post(url, data={**data, "csrf_token": await csrf_for(client, page)})


async def _follow(client: AsyncClient, response: Response) -> tuple[str, str, str, str]:
    """A POST's redirect, then the page it leads to: (location, flash kind, flash message, page)."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    page = await client.get(location)
    assert page.status_code == 200, page.text
    match = FLASH.search(page.text)
    assert match, "no flash message"
    return location, match.group(1), htmllib.unescape(match.group(2)), page.text


async def _rules(db: AsyncSession, account_id: uuid.UUID) -> list[AccessPolicy]:
    await db.commit()  # a fresh transaction sees what the app committed
    rows = await db.scalars(
        select(AccessPolicy)
        .where(AccessPolicy.account_id == account_id)
        .order_by(AccessPolicy.created_at)
        .execution_options(populate_existing=True)
    )
    found = list(rows)
    await db.commit()
    return found


async def _audits(db: AsyncSession, account_id: uuid.UUID, action: str) -> list[AuditEntry]:
    await db.commit()
    rows = list(
        await db.scalars(
            select(AuditEntry)
            .where(AuditEntry.account_id == account_id, AuditEntry.action == action)
            .order_by(AuditEntry.seq)
        )
    )
    await db.commit()
    return rows


async def _count(db: AsyncSession, model: type[ApiToken] | type[CreditRequest], account_id: uuid.UUID) -> int:
    await db.commit()
    count = await db.scalar(select(func.count()).select_from(model).where(model.account_id == account_id))
    await db.commit()
    return count or 0


def _table(text: str, table_id: str) -> str:
    match = re.search(rf'<table class="table[^"]*" id="{table_id}">.*?</table>', text, re.S)
    return match.group(0) if match else ""


def _row(text: str, table_id: str, resource: str) -> str:
    match = re.search(rf'<tr data-resource="{re.escape(resource)}".*?</tr>', _table(text, table_id), re.S)
    assert match, f"no row for {resource} in {table_id}"
    return match.group(0)


def _rule_rows(text: str) -> list[str]:
    return re.findall(r'<tr id="rule-[^"]+".*?</tr>', _table(text, "rules-table"), re.S)


def _selected(text: str, select_id: str) -> str | None:
    match = re.search(rf'<select[^>]*id="{select_id}"[^>]*>(.*?)</select>', text, re.S)
    assert match, f"no select {select_id}"
    chosen = re.search(r'<option value="([^"]*)" selected>', match.group(1))
    return chosen.group(1) if chosen else None


# ---- the page ----


async def test_an_admin_sees_the_empty_state_the_form_and_the_defaults(
    db: AsyncSession, client: AsyncClient
) -> None:
    org = await _org(db)
    await _login(client, org.admin)

    page = await client.get(PAGE)
    assert page.status_code == 200, page.text
    text = page.text
    assert '<a href="/policies" class="nav-link active" aria-current="page">' in text
    assert "No rules yet" in text
    assert "Until you add one, the defaults below decide for everyone." in text
    assert _table(text, "rules-table") == ""
    # "Add rule": the catalogue's models and the features, each with "all of them".
    assert 'id="add-rule-dialog"' in text
    assert f'<option value="{org.gpt}">gpt-4o</option>' in text
    assert f'<option value="{org.claude}">claude-sonnet</option>' in text
    assert '<option value="*">All models (*)</option>' in text
    assert '<option value="*">All features (*)</option>' in text
    assert '<option value="api_tokens.create">api_tokens.create — Create personal API tokens</option>' in text
    assert f'<option value="{org.group_id}">Engineering</option>' in text
    assert f'<option value="{org.member.id}">{org.member.email}</option>' in text
    # The defaults: everything allowed, nobody exempt; and how a decision is made.
    for kind in ("model", "agent", "integration", "feature"):
        assert _selected(text, f"default-{kind}") == "allow"
    assert re.search(r'id="admins-exempt"\s*>', text)
    assert "The most specific level wins" in text
    assert "deny beats allow" in text


async def test_add_a_rule_of_each_level_and_kind(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    await add_agent(db, org.account.id, "support-bot", "Support bot")
    await _login(client, org.admin)
    forms = [
        (
            {
                "scope": "account",
                "resource_type": "feature",
                "feature": "export.reports",
                "effect": "deny",
                "note": "No exports for now",
            },
            "Rule added: deny feature “export.reports” for everyone.",
            (Scope.account, org.account.id, ResourceType.feature, "export.reports", Effect.deny),
        ),
        (
            {
                "scope": "group",
                "group_id": str(org.group_id),
                "resource_type": "model",
                "model": str(org.gpt),
                "effect": "deny",
            },
            "Rule added: deny model “gpt-4o” for Group Engineering.",
            (Scope.group, org.group_id, ResourceType.model, str(org.gpt), Effect.deny),
        ),
        (
            # A model may be named as well as picked by id; it is stored by id.
            {
                "scope": "user",
                "user_id": str(org.member.id),
                "resource_type": "model",
                "model": "claude-sonnet",
                "effect": "allow",
            },
            f"Rule added: allow model “claude-sonnet” for {org.member.email}.",
            (Scope.user, org.member.id, ResourceType.model, str(org.claude), Effect.allow),
        ),
        (
            {
                "scope": "user",
                "user_id": str(org.member.id),
                "resource_type": "agent",
                "agent": "support-bot",
                "effect": "allow",
            },
            f"Rule added: allow agent “Support bot” for {org.member.email}.",
            (Scope.user, org.member.id, ResourceType.agent, "support-bot", Effect.allow),
        ),
        (
            {
                "scope": "group",
                "group_id": str(org.group_id),
                "resource_type": "integration",
                "integration": "*",
                "effect": "deny",
            },
            "Rule added: deny integration “All integrations” for Group Engineering.",
            (Scope.group, org.group_id, ResourceType.integration, "*", Effect.deny),
        ),
    ]
    for data, message, _ in forms:
        response = await _post(client, PAGE, data)
        location, kind, flashed, _page = await _follow(client, response)
        assert (location, kind, flashed) == (PAGE, "success", message)

    stored = await _rules(db, org.account.id)
    assert [(p.scope, p.scope_id, p.resource_type, p.resource, p.effect) for p in stored] == [
        expected for _, _, expected in forms
    ]
    assert stored[0].note == "No exports for now"
    assert {p.created_by_label for p in stored} == {org.admin.email}
    assert {p.created_by for p in stored} == {org.admin.id}

    audits = await _audits(db, org.account.id, "policy.created")
    assert [a.target_id for a in audits] == [str(p.id) for p in stored]
    assert audits[1].actor_id == org.admin.id
    assert audits[1].after is not None
    assert audits[1].after["applies_to"] == "Group Engineering"
    assert audits[1].after["resource_name"] == "gpt-4o"
    assert audits[1].after["effect"] == "deny"

    # The table: account first, then groups, then users; with their badges and notes.
    text = (await client.get(PAGE)).text
    rows = _rule_rows(text)
    assert [re.search(r'data-scope="(\w+)"', r).group(1) for r in rows] == [  # type: ignore[union-attr]
        "account",
        "group",
        "group",
        "user",
        "user",
    ]
    account_row = rows[0]
    assert '<span class="badge badge-accent">Account</span>' in account_row
    assert "Everyone" in account_row
    assert "export.reports" in account_row
    assert "Export reports (CSV, Excel, PDF)" in account_row
    assert '<span class="badge badge-danger">Deny</span>' in account_row
    assert "No exports for now" in account_row
    assert org.admin.email in account_row
    gpt_row = next(r for r in rows if f'id="rule-{stored[1].id}"' in r)
    assert '<span class="badge badge-info">Group</span>' in gpt_row
    assert "Group Engineering" in gpt_row
    assert '<span class="strong">gpt-4o</span>' in gpt_row
    agent_row = next(r for r in rows if f'id="rule-{stored[3].id}"' in r)
    assert '<span class="badge badge-warning">User</span>' in agent_row
    assert '<span class="badge badge-success">Allow</span>' in agent_row
    assert "support-bot" in agent_row


async def test_a_refused_rule_keeps_what_was_typed(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    await _login(client, org.owner)

    response = await _post(
        client,
        PAGE,
        {
            "scope": "user",
            "user_id": str(org.member.id),
            "resource_type": "agent",
            "agent": "support bot",
            "effect": "allow",
            "note": "Pilot for the support team",
        },
    )
    assert response.status_code == 422
    text = response.text
    error = BANNER_ERROR.search(text)
    assert error
    assert "There is no agent 'support bot'" in htmllib.unescape(error.group(1))
    # The dialog opens again with every choice and what was typed.
    assert re.search(r'<dialog id="add-rule-dialog"[^>]*x-init="\$el.showModal\(\)"', text)
    assert _selected(text, "rule-scope") == "user"
    assert _selected(text, "rule-user") == str(org.member.id)
    assert _selected(text, "rule-kind") == "agent"
    # (agents are chosen from the catalogue: a value it does not have cannot be kept as typed)
    assert "Pilot for the support team</textarea>" in text
    assert re.search(r'id="rule-allow" checked', text)

    # A group rule without a group, and a model the catalogue does not have.
    missing = await _post(
        client, PAGE, {"scope": "group", "resource_type": "model", "model": "*", "effect": "deny"}
    )
    assert missing.status_code == 422
    assert "Choose the group the rule applies to." in missing.text
    unknown = await _post(
        client, PAGE, {"scope": "account", "resource_type": "model", "model": "gpt-5", "effect": "deny"}
    )
    assert unknown.status_code == 422
    assert "There is no model &#39;gpt-5&#39; in the catalogue." in unknown.text
    assert _selected(unknown.text, "rule-kind") == "model"

    # The same rule twice.
    await _rule(
        db, org, scope=Scope.account, scope_id=None, kind=ResourceType.model, resource="*", effect=Effect.deny
    )
    twice = await _post(
        client, PAGE, {"scope": "account", "resource_type": "model", "model": "*", "effect": "deny"}
    )
    assert twice.status_code == 409
    assert "The same rule already exists" in twice.text

    assert len(await _rules(db, org.account.id)) == 1
    assert len(await _audits(db, org.account.id, "policy.created")) == 1


async def test_another_accounts_group_or_user_is_refused(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    other_account, other_owner = await make_account(db, name="Other Co")
    other_group = await groups.create_group(db, Actor.for_user(other_owner), name="Theirs")
    await db.commit()
    await _login(client, org.admin)

    for data, message in (
        ({"scope": "group", "group_id": str(other_group.id)}, "No such group."),
        ({"scope": "user", "user_id": str(other_owner.id)}, "No such user."),
        ({"scope": "group", "group_id": "not-an-id"}, "No such group."),
    ):
        response = await _post(
            client, PAGE, {**data, "resource_type": "feature", "feature": "*", "effect": "deny"}
        )
        assert response.status_code == 404, response.text
        error = BANNER_ERROR.search(response.text)
        assert error
        assert error.group(1) == message

    assert await _rules(db, org.account.id) == []
    assert await _rules(db, other_account.id) == []
    assert await _audits(db, org.account.id, "policy.created") == []


async def test_delete_asks_for_confirmation_then_removes_the_rule(
    db: AsyncSession, client: AsyncClient
) -> None:
    org = await _org(db)
    rule_id = await _rule(
        db,
        org,
        scope=Scope.group,
        scope_id=org.group_id,
        kind=ResourceType.model,
        resource=str(org.gpt),
        effect=Effect.deny,
        note="Too expensive",
    )
    await _login(client, org.admin)

    text = (await client.get(PAGE, params={"kind": "model"})).text
    form = re.search(rf'<form method="post" action="/policies/{rule_id}/delete"[^>]*>', text)
    assert form, "no delete form"
    confirm = htmllib.unescape(form.group(0))
    assert 'data-confirm-title="Delete this rule?"' in confirm
    assert "The rule to deny model “gpt-4o” for Group Engineering will be deleted." in confirm
    assert "This cannot be undone." in confirm

    response = await _post(
        client,
        f"/policies/{rule_id}/delete",
        {"scope": "", "kind": "model", "page": "1"},
        PAGE + "?kind=model",
    )
    location, kind, message, page = await _follow(client, response)
    assert location == "/policies?kind=model"  # back to the same filter
    assert (kind, message) == ("success", "Rule deleted: deny model “gpt-4o” for Group Engineering.")
    assert "No rules match" in page
    assert await _rules(db, org.account.id) == []
    deleted = await _audits(db, org.account.id, "policy.deleted")
    assert [a.target_id for a in deleted] == [str(rule_id)]
    assert deleted[0].before is not None
    assert deleted[0].before["note"] == "Too expensive"

    # An unknown rule (or another account's) is not found and nothing else changes.
    gone = await _post(client, f"/policies/{rule_id}/delete", {})
    assert gone.status_code == 404


async def test_another_accounts_rule_cannot_be_deleted(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    other = await _org(db, name="Other Co")
    theirs = await _rule(
        db,
        other,
        scope=Scope.account,
        scope_id=None,
        kind=ResourceType.feature,
        resource="*",
        effect=Effect.deny,
    )
    await _login(client, org.owner)

    response = await _post(client, f"/policies/{theirs}/delete", {})
    assert response.status_code == 404
    assert [p.id for p in await _rules(db, other.account.id)] == [theirs]
    assert "No such access policy." in response.text


async def test_filter_by_level_and_kind_in_place_and_paginate(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db)
    await _rule(
        db,
        org,
        scope=Scope.account,
        scope_id=None,
        kind=ResourceType.feature,
        resource="export.reports",
        effect=Effect.deny,
    )
    await _rule(
        db,
        org,
        scope=Scope.group,
        scope_id=org.group_id,
        kind=ResourceType.model,
        resource="gpt-4o",
        effect=Effect.deny,
    )
    await _rule(
        db,
        org,
        scope=Scope.user,
        scope_id=org.member.id,
        kind=ResourceType.model,
        resource="gpt-4o",
        effect=Effect.allow,
    )
    await _login(client, org.admin)

    everything = await client.get(PAGE)
    assert len(_rule_rows(everything.text)) == 3

    # The filters answer with the table alone (htmx swaps it in place).
    groups_only = await client.get(PAGE, params={"scope": "group"}, headers=PARTIAL)
    assert groups_only.status_code == 200
    assert "<html" not in groups_only.text
    assert 'id="add-rule-dialog"' not in groups_only.text
    rows = _rule_rows(groups_only.text)
    assert len(rows) == 1
    assert 'data-scope="group"' in rows[0]

    models = await client.get(PAGE, params={"kind": "model"}, headers=PARTIAL)
    assert [re.search(r'data-scope="(\w+)"', r).group(1) for r in _rule_rows(models.text)] == [  # type: ignore[union-attr]
        "group",
        "user",
    ]
    both = await client.get(PAGE, params={"scope": "user", "kind": "model"})
    rows = _rule_rows(both.text)
    assert len(rows) == 1
    assert 'data-effect="allow"' in rows[0]
    assert _selected(both.text, "filter-level") == "user"
    assert _selected(both.text, "filter-kind") == "model"

    none = await client.get(PAGE, params={"scope": "account", "kind": "agent"}, headers=PARTIAL)
    assert "No rules match" in none.text
    assert _rule_rows(none.text) == []

    unknown = await client.get(PAGE, params={"scope": "planet"})
    assert len(_rule_rows(unknown.text)) == 3
    assert "Unknown level “planet”: showing every rule of it." in htmllib.unescape(unknown.text)

    # 25 rules a page.
    actor = Actor.for_user(org.owner)
    for n in range(25):
        await add_agent(db, org.account.id, f"agent-{n:02d}", f"Agent {n:02d}")
    agents = (await db.scalars(select(Agent).where(Agent.account_id == org.account.id))).all()
    catalogues = await policy_catalogues.build(db, actor, agents=agents)
    for n in range(25):
        await policies.create_policy(
            db,
            actor,
            scope=Scope.account,
            scope_id=None,
            resource_type=ResourceType.agent,
            resource=f"agent-{n:02d}",
            effect=Effect.deny,
            catalogues=catalogues,
        )
    await db.commit()
    first = await client.get(PAGE)
    assert len(_rule_rows(first.text)) == 25
    assert "1\u201325 of 28" in first.text
    second = await client.get(PAGE, params={"page": "2"})
    assert len(_rule_rows(second.text)) == 3
    assert "26\u201328 of 28" in second.text
    agents = await client.get(PAGE, params={"kind": "agent", "page": "9"})  # past the end: the last page
    assert len(_rule_rows(agents.text)) == 25
