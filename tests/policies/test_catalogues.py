"""Agent and integration rules name the catalogues (issue 14, item 6): an agent or integration is
named by its slug or its id and stored by slug; an unknown one (another account's included) is
refused; rules and effective access show names, "Deleted agent" once the agent is gone; effective
access lists every agent and integration of the account."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Visibility
from cockpit.authz.actor import Actor
from cockpit.kit.errors import InvalidInput
from cockpit.policies import catalogues
from cockpit.policies import service as policies
from tests.policies.conftest import (
    API,
    POLICIES,
    add_agent,
    add_integration,
    add_rule,
    error_of,
    make_team,
    policy_audit,
    post_rule,
    rule_count,
)


def _by_resource(items: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {i["resource"]: i for i in items if i["resource_type"] == kind}


async def test_an_agent_or_integration_is_named_by_slug_or_id_and_stored_by_slug(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    helper = await add_agent(db, t.account.id, "helper", "Helper Bot")
    slack = await add_integration(db, t.account.id, "slack", "Slack")
    by_id = await add_rule(
        client,
        t.owner_headers,
        scope="account",
        resource_type="agent",
        resource=str(helper.id),
        effect="deny",
    )
    assert (by_id["resource"], by_id["resource_name"]) == ("helper", "Helper Bot")
    # The same rule by its slug is the same stored rule.
    again = await post_rule(
        client, t.owner_headers, scope="account", resource_type="agent", resource="helper", effect="deny"
    )
    assert (again.status_code, error_of(again)["code"]) == (409, "policy_exists")
    by_slug = await add_rule(
        client, t.owner_headers, scope="user", scope_id=str(t.member.id), resource_type="integration",
        resource="slack", effect="allow",
    )  # fmt: skip
    by_integration_id = await add_rule(
        client, t.owner_headers, scope="account", resource_type="integration", resource=str(slack.id),
        effect="deny",
    )  # fmt: skip
    assert [(r["resource"], r["resource_name"]) for r in (by_slug, by_integration_id)] == [
        ("slack", "Slack"), ("slack", "Slack"),
    ]  # fmt: skip
    every = await add_rule(
        client, t.owner_headers, scope="account", resource_type="agent", resource="*", effect="allow"
    )
    assert (every["resource"], every["resource_name"]) == ("*", "All agents")
    listed = (await client.get(POLICIES, params={"resource_type": "agent"}, headers=t.owner_headers)).json()
    assert {(i["resource"], i["resource_name"]) for i in listed["items"]} == {
        ("helper", "Helper Bot"), ("*", "All agents"),
    }  # fmt: skip
    created = [e for e in await policy_audit(db, t.account.id) if e.action == "policy.created"]
    assert created[0].after is not None
    assert (created[0].after["resource"], created[0].after["resource_name"]) == ("helper", "Helper Bot")


async def test_an_unknown_or_another_accounts_agent_or_integration_is_refused(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    them = await make_team(db, name="Elsewhere")
    await add_agent(db, t.account.id, "helper", "Helper")
    await add_integration(db, t.account.id, "slack", "Slack")
    their_agent = await add_agent(db, them.account.id, "theirs", "Their Bot")
    their_integration = await add_integration(db, them.account.id, "jira", "Jira")
    cases = [
        ("agent", "support-bot", "unknown_agent"),
        ("agent", "Helper", "unknown_agent"),  # a name is not an identifier
        ("agent", "theirs", "unknown_agent"),
        ("agent", str(their_agent.id), "unknown_agent"),
        ("agent", "slack", "unknown_agent"),  # an integration is not an agent
        ("integration", "jira", "unknown_integration"),
        ("integration", str(their_integration.id), "unknown_integration"),
        ("integration", "helper", "unknown_integration"),
    ]
    for kind, resource, code in cases:
        response = await post_rule(
            client, t.owner_headers, scope="account", resource_type=kind, resource=resource, effect="deny"
        )
        assert response.status_code == 422, (kind, resource, response.text)
        error = error_of(response)
        assert error["code"] == code, (kind, resource)
        assert f"'{resource}'" in error["message"]
        assert [d["field"] for d in error["details"]] == ["resource"]
    assert await rule_count(db, t.account.id) == 0
    assert await policy_audit(db, t.account.id) == []
    # Their own agent is theirs to govern.
    await add_rule(
        client, them.owner_headers, scope="account", resource_type="agent", resource="theirs", effect="deny"
    )


async def test_effective_access_lists_every_agent_and_integration_by_name(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    for slug, name in (("helper", "Helper"), ("writer", "Writer"), ("analyst", "Analyst")):
        await add_agent(db, t.account.id, slug, name)
    for slug, name in (("slack", "Slack"), ("wiki", "Wiki")):
        await add_integration(db, t.account.id, slug, name)
    helper_deny = await add_rule(
        client, t.owner_headers, scope="user", scope_id=str(t.member.id), resource_type="agent",
        resource="helper", effect="deny",
    )  # fmt: skip
    closed = await add_rule(
        client, t.owner_headers, scope="account", resource_type="integration", resource="*", effect="deny"
    )
    wiki_open = await add_rule(
        client, t.owner_headers, scope="group", scope_id=str(t.default_group_id), resource_type="integration",
        resource="wiki", effect="allow",
    )  # fmt: skip
    url = f"{API}/users/{t.member.id}/effective-access"
    for headers in (t.owner_headers, t.member_headers):  # an administrator's view and their own
        items = (await client.get(url, headers=headers)).json()["items"]
        agents = [i for i in items if i["resource_type"] == "agent"]
        assert [(i["resource"], i["name"]) for i in agents] == [
            ("analyst", "Analyst"), ("helper", "Helper"), ("writer", "Writer"),
        ]  # fmt: skip
        decided = {
            i["resource"]: (i["allowed"], i["decided_by"], i["rule"]["id"] if i["rule"] else None)
            for i in items
            if i["resource_type"] in ("agent", "integration")
        }
        assert decided == {
            "analyst": (True, "default", None),
            "helper": (False, "rule", helper_deny["id"]),
            "writer": (True, "default", None),
            "slack": (False, "rule", closed["id"]),
            "wiki": (True, "rule", wiki_open["id"]),
        }
        helper = _by_resource(items, "agent")["helper"]
        assert "agent 'Helper' is denied by a user-level rule" in helper["explanation"]
        assert _by_resource(items, "integration")["slack"]["name"] == "Slack"
    # One of them, by its slug or its id.
    for asked in ("wiki", str((await add_integration(db, t.account.id, "crm", "CRM")).id)):
        one = await client.get(
            url, params={"resource_type": "integration", "resource": asked}, headers=t.owner_headers
        )
        [item] = one.json()["items"]
        assert item["resource"] in ("wiki", "crm")
        assert item["name"] == {"wiki": "Wiki", "crm": "CRM"}[item["resource"]]


async def test_a_member_sees_the_agents_shared_with_them(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    await add_agent(db, t.account.id, "helper", "Helper")
    hidden = await add_agent(db, t.account.id, "secret", "Secret")
    hidden.visibility, hidden.group_ids = Visibility.groups, []
    await db.commit()
    url = f"{API}/users/{t.member.id}/effective-access"
    params = {"resource_type": "agent"}
    own = (await client.get(url, params=params, headers=t.member_headers)).json()["items"]
    assert [i["name"] for i in own] == ["Helper"]
    admins_view = (await client.get(url, params=params, headers=t.owner_headers)).json()["items"]
    assert [i["name"] for i in admins_view] == ["Helper", "Secret"]


async def test_a_rule_for_a_deleted_agent_or_integration_shows_as_deleted(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    helper = await add_agent(db, t.account.id, "helper", "Helper")
    slack = await add_integration(db, t.account.id, "slack", "Slack")
    agent_rule = await add_rule(
        client, t.owner_headers, scope="user", scope_id=str(t.member.id), resource_type="agent",
        resource="helper", effect="deny",
    )  # fmt: skip
    integration_rule = await add_rule(
        client, t.owner_headers, scope="account", resource_type="integration", resource="slack", effect="deny"
    )
    await db.delete(helper)
    await db.delete(slack)
    await db.commit()

    listed = (await client.get(POLICIES, headers=t.owner_headers)).json()["items"]
    assert {(i["id"], i["resource"], i["resource_name"]) for i in listed} == {
        (agent_rule["id"], "helper", "Deleted agent"),
        (integration_rule["id"], "slack", "Deleted integration"),
    }
    fetched = (await client.get(f"{POLICIES}/{agent_rule['id']}", headers=t.owner_headers)).json()
    assert fetched["resource_name"] == "Deleted agent"

    # An administrator still sees the rules decide (the slug may be given to a new agent).
    url = f"{API}/users/{t.member.id}/effective-access"
    items = (await client.get(url, headers=t.owner_headers)).json()["items"]
    agent = _by_resource(items, "agent")["helper"]
    assert (agent["name"], agent["allowed"], agent["rule"]["id"]) == (
        "Deleted agent",
        False,
        agent_rule["id"],
    )
    assert _by_resource(items, "integration")["slack"]["name"] == "Deleted integration"
    # The member is not shown what no longer exists.
    own = (await client.get(url, headers=t.member_headers)).json()["items"]
    assert [i for i in own if i["resource_type"] in ("agent", "integration")] == []

    # Deleting the rule still works, and its audit entry says what it was about.
    deleted = await client.delete(f"{POLICIES}/{agent_rule['id']}", headers=t.owner_headers)
    assert deleted.status_code == 200
    last = (await policy_audit(db, t.account.id))[-1]
    assert last.action == "policy.deleted"
    assert last.before is not None
    assert (last.before["resource"], last.before["resource_name"]) == ("helper", "Deleted agent")


async def test_the_service_names_agents_from_the_callers_catalogue(db: AsyncSession) -> None:
    """Policies sit below agents: the caller hands the agents over; without them none is known."""
    t = await make_team(db)
    helper = await add_agent(db, t.account.id, "helper", "Helper")
    await add_integration(db, t.account.id, "slack", "Slack")
    actor = Actor.for_user(t.owner)
    with pytest.raises(InvalidInput) as refused:
        await policies.create_policy(
            db, actor, scope="account", scope_id=None, resource_type="agent", resource="helper", effect="deny"
        )
    assert refused.value.code == "unknown_agent"
    known = await catalogues.build(db, actor, agents=[helper])
    row = await policies.create_policy(
        db, actor, scope="account", scope_id=None, resource_type="agent", resource=str(helper.id),
        effect="deny", catalogues=known,
    )  # fmt: skip
    assert (row.policy.resource, row.resource_label) == ("helper", "Helper")
    # The integrations the service reads itself; without the agents a rule shows its slug.
    slack = await policies.create_policy(
        db,
        actor,
        scope="account",
        scope_id=None,
        resource_type="integration",
        resource="slack",
        effect="deny",
    )
    assert slack.resource_label == "Slack"
    assert (await policies.get_policy(db, actor, row.policy.id)).resource_label == "helper"
