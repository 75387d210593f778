"""Access policies in a browser: add a group-level deny rule for a model through "Add rule", find it
in the table and through the filters, see it decide a group member's effective access, then delete
it after confirming; and an agent rule picked from the account's agents, shown by name."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from playwright.async_api import Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent
from cockpit.audit.models import AuditEntry
from cockpit.authz.actor import Actor
from cockpit.groups import service as groups
from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.users import service as users
from tests.builders import make_account, make_user
from tests.conftest import TEST_SECRET
from tests.e2e.test_console import sign_in


async def _stored(db: AsyncSession, account_id: uuid.UUID) -> list[AccessPolicy]:
    await db.commit()
    rows = list(await db.scalars(select(AccessPolicy).where(AccessPolicy.account_id == account_id)))
    await db.commit()
    return rows


async def _actions(db: AsyncSession, account_id: uuid.UUID) -> list[str]:
    await db.commit()
    rows = list(
        await db.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.account_id == account_id, AuditEntry.action.like("policy.%"))
            .order_by(AuditEntry.seq)
        )
    )
    await db.commit()
    return rows


async def test_deny_a_model_for_a_group_see_it_decide_then_delete_it(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Policies in a Browser")
    member = await make_user(db, account, email="mia@example.com")
    member.name = "Mia Member"
    actor = Actor.for_user(owner)
    engineering = await groups.create_group(db, actor, name="Engineering")
    await users.add_members(db, actor, engineering.id, [member.id])
    provider = await providers.create_provider(
        db, actor, name="Sim", kind=ProviderKind.simulated, secret_key=TEST_SECRET, allow_private=True
    )
    models = {}
    for name in ("gpt-4o", "claude-sonnet"):
        model = await providers.create_model(
            db, actor, name=name, provider_id=provider.id, upstream_model=name,
            input_price_per_million=Decimal(1), output_price_per_million=Decimal(2),
        )  # fmt: skip
        models[name] = str(model.id)
    db.add(Agent(account_id=account.id, slug="helper", name="Helper Bot"))
    await db.commit()

    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.get_by_role("link", name="Access policies").click()
    await expect(page).to_have_url(f"{live_server}/policies")
    await page.wait_for_load_state()  # the page's scripts handle what follows
    await expect(page.locator(".empty-title")).to_have_text("No rules yet")

    # "Add rule": the group field appears for a group rule, the model list for a model rule.
    await page.locator("#add-rule").click()
    dialog = page.locator("#add-rule-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("#rule-group")).to_be_hidden()
    await expect(dialog.locator("#rule-agent")).to_be_hidden()
    await dialog.locator("#rule-scope").select_option("group")
    await expect(dialog.locator("#rule-group")).to_be_visible()
    await expect(dialog.locator("#rule-user")).to_be_hidden()
    await dialog.locator("#rule-group").select_option(label="Engineering")
    await dialog.locator("#rule-kind").select_option("agent")
    await expect(dialog.locator("#rule-agent")).to_be_visible()
    await expect(dialog.locator("#rule-model")).to_be_hidden()
    await expect(dialog.locator("#rule-agent option")).to_have_text(
        ["Choose an agent…", "All agents (*)", "Helper Bot (helper)"]
    )
    await dialog.locator("#rule-kind").select_option("integration")
    await expect(dialog.locator("#rule-integration")).to_be_visible()
    await expect(dialog.locator("#rule-agent")).to_be_hidden()
    await dialog.locator("#rule-kind").select_option("model")
    await expect(dialog.locator("#rule-model")).to_be_visible()
    await dialog.locator("#rule-model").select_option(label="gpt-4o")
    await dialog.locator("#rule-deny").check()
    await dialog.locator("#rule-note").fill("Too expensive for day-to-day work")
    await dialog.locator("#add-rule-submit").click()

    await expect(page.locator(".banner-success")).to_contain_text(
        "Rule added: deny model “gpt-4o” for Group Engineering."
    )
    rows = page.locator("#rules-table tbody tr")
    await expect(rows).to_have_count(1)
    row = rows.first
    await expect(row.locator(".badge-info")).to_have_text("Group")
    await expect(row).to_contain_text("Group Engineering")
    await expect(row).to_contain_text("gpt-4o")
    await expect(row.locator(".badge-danger")).to_have_text("Deny")
    await expect(row).to_contain_text("Too expensive for day-to-day work")
    stored = await _stored(db, account.id)
    assert [(p.scope, p.scope_id, p.resource_type, p.resource, p.effect) for p in stored] == [
        (Scope.group, engineering.id, ResourceType.model, models["gpt-4o"], Effect.deny)
    ]

    # The filters swap the table in place and give the view its own address.
    await page.locator("#filter-level").select_option("user")
    await expect(page).to_have_url(re.compile(r"[?&]scope=user"))
    await expect(rows).to_have_count(0)
    await expect(page.locator(".empty-title")).to_have_text("No rules match")
    await page.locator("#filter-level").select_option("group")
    await expect(rows).to_have_count(1)

    # Effective access of a member of the group: the model is denied, and the rule is named.
    await page.locator("#tab-effective").click()
    await expect(page).to_have_url(f"{live_server}/policies/effective")
    await page.wait_for_load_state()
    # The person picker: type, choose the suggestion (a name shown, the id sent).
    picker = page.locator("#effective-user")
    await picker.fill("Mia Member <mia@example.com>")
    await picker.blur()
    await expect(page).to_have_url(re.compile(rf"[?&]user_id={member.id}"))
    await expect(page.locator("#effective-subject")).to_contain_text("Mia Member")
    denied = page.locator(f'#effective-model-table tr[data-resource="{models["gpt-4o"]}"]')
    await expect(denied.locator("td").nth(1)).to_have_text("Denied")
    decided = denied.locator(".effective-decided")
    await expect(decided).to_contain_text("Group Engineering")
    await expect(decided.locator(".badge-danger")).to_have_text("Deny")
    await expect(decided).to_contain_text(f"Set by {owner.email}")
    await expect(decided).to_contain_text("Too expensive for day-to-day work")
    await expect(denied.locator(".effective-why")).to_contain_text("is denied by a group-level rule")
    allowed = page.locator(f'#effective-model-table tr[data-resource="{models["claude-sonnet"]}"]')
    await expect(allowed.locator("td").nth(1)).to_have_text("Allowed")
    await expect(allowed.locator(".effective-decided")).to_contain_text("Default")

    # Delete: cancelled first, then confirmed.
    await page.locator("#tab-rules").click()
    await expect(rows).to_have_count(1)
    await rows.first.get_by_role("button", name="Delete").click()
    confirm = page.locator("#confirm-dialog")
    await expect(confirm).to_be_visible()
    await expect(confirm.locator("#confirm-title")).to_have_text("Delete this rule?")
    await expect(confirm.locator("#confirm-message")).to_contain_text("This cannot be undone.")
    await confirm.get_by_role("button", name="Cancel").click()
    await expect(confirm).to_be_hidden()
    assert len(await _stored(db, account.id)) == 1

    await rows.first.get_by_role("button", name="Delete").click()
    await expect(confirm).to_be_visible()
    await confirm.locator("#confirm-ok").click()
    await expect(page.locator(".banner-success")).to_contain_text(
        "Rule deleted: deny model “gpt-4o” for Group Engineering."
    )
    await expect(page.locator(".empty-title")).to_have_text("No rules yet")
    assert await _stored(db, account.id) == []
    assert await _actions(db, account.id) == ["policy.created", "policy.deleted"]


async def test_deny_an_agent_picked_from_the_catalogue(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Agent Policies in a Browser")
    db.add_all([
        Agent(account_id=account.id, slug="helper", name="Helper Bot"),
        Agent(account_id=account.id, slug="writer", name="Writer"),
    ])  # fmt: skip
    await db.commit()

    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/policies")
    await page.wait_for_load_state()
    await page.locator("#add-rule").click()
    dialog = page.locator("#add-rule-dialog")
    await dialog.locator("#rule-kind").select_option("agent")
    await dialog.locator("#rule-agent").select_option(label="Writer (writer)")
    await dialog.locator("#rule-deny").check()
    await dialog.locator("#add-rule-submit").click()

    await expect(page.locator(".banner-success")).to_contain_text(
        "Rule added: deny agent “Writer” for everyone."
    )
    row = page.locator("#rules-table tbody tr").first
    await expect(row.locator(".policy-resource")).to_contain_text("Writer")
    await expect(row.locator(".policy-resource code")).to_have_text("writer")
    stored = await _stored(db, account.id)
    assert [(p.resource_type, p.resource, p.effect) for p in stored] == [
        (ResourceType.agent, "writer", Effect.deny)
    ]

    # Effective access: every agent of the account by name, the denied one with its rule.
    await page.goto(f"{live_server}/policies/effective")
    agents = page.locator("#effective-agent-table tbody tr")
    await expect(agents).to_have_count(3)  # both agents, then any other
    writer = page.locator('#effective-agent-table tr[data-resource="writer"]')
    await expect(writer.locator(".effective-name")).to_contain_text("Writer")
    await expect(writer.locator("td").nth(1)).to_have_text("Denied")
    helper = page.locator('#effective-agent-table tr[data-resource="helper"]')
    await expect(helper.locator(".effective-name")).to_contain_text("Helper Bot")
    await expect(helper.locator("td").nth(1)).to_have_text("Allowed")
