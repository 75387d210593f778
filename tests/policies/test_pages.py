"""The console's access policies and the catalogues: "Add rule" offers the account's agents and
integrations to choose from, rules and effective access show them by name with their identifier,
and a rule for an agent that is gone shows "Deleted agent"."""

from __future__ import annotations

import html as htmllib
import re

from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from tests.builders import console_login, csrf_for
from tests.policies.conftest import add_agent, add_integration, make_team

PAGE = "/policies"
FLASH = re.compile(r'<div class="banner banner-success" role="status"[^>]*>.*?<span>([^<]*)</span>', re.S)
BANNER_ERROR = re.compile(r'<div class="banner banner-error" role="alert">.*?<span>([^<]*)</span>', re.S)


def _select(text: str, select_id: str) -> str:
    match = re.search(rf'<select[^>]*id="{select_id}"[^>]*>(.*?)</select>', text, re.S)
    assert match, f"no select {select_id}"
    return match.group(1)


def _options(text: str, select_id: str) -> list[tuple[str, str]]:
    return [
        (value, htmllib.unescape(label.strip()))
        for value, label in re.findall(
            r'<option value="([^"]*)"[^>]*>([^<]*)</option>', _select(text, select_id)
        )
    ]


async def _post(client: AsyncClient, data: dict[str, str]) -> Response:
    return await client.post(PAGE, data={**data, "csrf_token": await csrf_for(client, PAGE)})


async def test_add_rule_offers_the_agents_and_integrations_and_stores_the_slug(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    them = await make_team(db, name="Elsewhere")
    await add_agent(db, t.account.id, "helper", "Helper Bot")
    await add_agent(db, t.account.id, "analyst", "Analyst")
    await add_integration(db, t.account.id, "slack", "Slack")
    await add_agent(db, them.account.id, "theirs", "Their Bot")
    assert (await console_login(client, t.owner.email)).status_code == 303

    text = (await client.get(PAGE)).text
    assert _options(text, "rule-agent") == [
        ("", "Choose an agent…"), ("*", "All agents (*)"), ("analyst", "Analyst (analyst)"),
        ("helper", "Helper Bot (helper)"),
    ]  # fmt: skip
    assert _options(text, "rule-integration") == [
        ("", "Choose an integration…"), ("*", "All integrations (*)"), ("slack", "Slack (slack)"),
    ]  # fmt: skip
    assert 'id="rule-identifier"' not in text  # no free text any more

    response = await _post(
        client, {"scope": "account", "resource_type": "agent", "agent": "helper", "effect": "deny"}
    )
    assert response.status_code == 303, response.text
    page = await client.get(response.headers["location"])
    flash = FLASH.search(page.text)
    assert flash
    assert htmllib.unescape(flash.group(1)) == "Rule added: deny agent “Helper Bot” for everyone."
    response = await _post(
        client,
        {"scope": "user", "user_id": str(t.member.id), "resource_type": "integration", "integration": "*",
         "effect": "allow"},
    )  # fmt: skip
    assert response.status_code == 303, response.text
    await db.commit()
    stored = list(await db.scalars(select(AccessPolicy).where(AccessPolicy.account_id == t.account.id)))
    assert sorted((p.scope, p.resource_type, p.resource, p.effect) for p in stored) == [
        (Scope.account, ResourceType.agent, "helper", Effect.deny),
        (Scope.user, ResourceType.integration, "*", Effect.allow),
    ]
    # The table: the name, with the identifier beside it.
    rules = (await client.get(PAGE)).text
    row = re.search(
        rf'<tr id="rule-{next(p.id for p in stored if p.resource == "helper")}".*?</tr>', rules, re.S
    )
    assert row
    assert (
        '<span class="strong">Helper Bot</span> <code class="code-pill" title="Its identifier">helper</code>'
        in (row.group(0))
    )

    # Another account's agent, or an unknown one, is refused; the choices stay offered.
    for sent in ("theirs", "nobody"):
        refused = await _post(
            client, {"scope": "account", "resource_type": "agent", "agent": sent, "effect": "deny"}
        )
        assert refused.status_code == 422
        error = BANNER_ERROR.search(refused.text)
        assert error
        assert f"There is no agent '{sent}' in this account" in htmllib.unescape(error.group(1))
        assert ("helper", "Helper Bot (helper)") in _options(refused.text, "rule-agent")
    await db.commit()
    assert (
        len(list(await db.scalars(select(AccessPolicy).where(AccessPolicy.account_id == t.account.id)))) == 2
    )


async def test_rules_and_effective_access_name_agents_and_show_deleted_ones(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    helper = await add_agent(db, t.account.id, "helper", "Helper Bot")
    await add_agent(db, t.account.id, "writer", "Writer")
    await add_integration(db, t.account.id, "slack", "Slack")
    assert (await console_login(client, t.owner.email)).status_code == 303
    for kind, field, value, effect in (
        ("agent", "agent", "helper", "deny"),
        ("agent", "agent", "writer", "deny"),
    ):
        response = await _post(
            client, {"scope": "account", "resource_type": kind, field: value, "effect": effect}
        )
        assert response.status_code == 303, response.text

    effective = (await client.get("/policies/effective", params={"user_id": str(t.member.id)})).text
    table = re.search(r'id="effective-agent-table".*?</table>', effective, re.S)
    assert table
    rows = re.findall(r'<tr data-resource="([^"]+)" data-allowed="(\w+)"', table.group(0))
    assert rows == [("helper", "no"), ("writer", "no"), ("*", "yes")]
    assert (
        '<span class="strong">Helper Bot</span> <code class="code-pill" title="Its identifier">helper</code>'
        in (table.group(0))
    )
    integrations = re.search(r'id="effective-integration-table".*?</table>', effective, re.S)
    assert integrations
    assert '<span class="strong">Slack</span>' in integrations.group(0)

    await db.delete(helper)
    await db.commit()
    rules = (await client.get(PAGE)).text
    assert "Deleted agent" in rules
    assert '<code class="code-pill" title="Its identifier">helper</code>' in rules
    effective = (await client.get("/policies/effective", params={"user_id": str(t.member.id)})).text
    assert "Deleted agent" in effective
    # The rule can still be deleted.
    rule_id = await db.scalar(
        select(AccessPolicy.id).where(
            AccessPolicy.account_id == t.account.id, AccessPolicy.resource == "helper"
        )
    )
    response = await client.post(
        f"{PAGE}/{rule_id}/delete", data={"csrf_token": await csrf_for(client, PAGE)}
    )
    assert response.status_code == 303
    page = await client.get(response.headers["location"])
    flash = FLASH.search(page.text)
    assert flash
    assert htmllib.unescape(flash.group(1)) == "Rule deleted: deny agent “Deleted agent” for everyone."
