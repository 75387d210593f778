"""The agents catalogue through the REST API (/api/v1/agents): the lifecycle of an agent, defaults,
the audit trail, isolation between accounts, who may do what, validation and listing."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents import service as agents
from tests.agents.conftest import AGENTS, agent_audit, agent_count, create, error_of, make_team, stored

# ---- the lifecycle ----


async def test_create_and_read_an_agent(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    body = {
        "name": "Support Bot",
        "description": "Answers customers",
        "icon": "🤖",
        "model": "gpt-4o",
        "instructions": "Be kind.",
        "temperature": 0.3,
        "max_output_tokens": 2000,
        "integration_ids": [str(t.wiki_id), str(t.crm_id)],
        "tools": {str(t.wiki_id): {"names": ["search"], "confirm": ["search"]}},
        "starters": ["How do I reset my password?", "  Where is my invoice?  "],
        "max_steps": 8,
    }
    agent = await create(client, t.admin_headers, **body)
    assert agent["slug"] == "support-bot"
    assert agent["model"] == "gpt-4o"
    assert agent["model_id"] == str(t.models["gpt-4o"])
    assert [i["name"] for i in agent["integrations"]] == ["Wiki", "CRM"]
    assert agent["tools"] == {
        str(t.wiki_id): {"all": False, "names": ["search"], "confirm": ["search"]},
        str(t.crm_id): {"all": True, "names": [], "confirm": []},
    }
    assert agent["starters"] == ["How do I reset my password?", "Where is my invoice?"]
    assert (agent["status"], agent["is_default"], agent["visibility"]) == ("active", False, "account")
    assert agent["project"] is None
    assert agent["created_by"] == str(t.admin.id)
    assert agent["created_by_name"] == "Test User"

    read = await client.get(f"{AGENTS}/{agent['id']}", headers=t.admin_headers)
    assert read.status_code == 200
    assert read.json() == agent
    [entry] = await agent_audit(db, t.account.id)
    assert entry.action == "agent.created"
    assert entry.target_label == "Support Bot"
    assert entry.after is not None
    assert entry.after["slug"] == "support-bot"

    # By its id too, and the same derived slug gets a suffix.
    again = await create(client, t.admin_headers, name="Support  Bot!", model=str(t.models["claude"]))
    assert again["slug"] == "support-bot-2"
    assert again["model"] == "claude"


async def test_update_changes_only_what_is_sent(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    agent = await create(
        client, t.admin_headers, name="Writer", temperature=1.0, starters=["Hi"],
        integration_ids=[str(t.wiki_id)],
    )  # fmt: skip
    url = f"{AGENTS}/{agent['id']}"
    response = await client.patch(
        url,
        json={
            "name": "Editor",
            "temperature": None,
            "tools": {str(t.wiki_id): {"all": True, "confirm": ["create_page"]}},
        },
        headers=t.admin_headers,
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["name"] == "Editor"
    assert changed["temperature"] is None
    assert changed["slug"] == "writer"
    assert changed["starters"] == ["Hi"]
    assert changed["tools"][str(t.wiki_id)] == {"all": True, "names": [], "confirm": ["create_page"]}
    entries = await agent_audit(db, t.account.id)
    assert entries[-1].action == "agent.updated"
    assert entries[-1].before is not None
    assert entries[-1].after is not None
    assert set(entries[-1].after) == {"name", "temperature", "tools"}
    assert entries[-1].before["name"] == "Writer"
    assert entries[-1].after["name"] == "Editor"

    # Dropping an integration drops its tools; null for a required field is refused.
    dropped = await client.patch(url, json={"integration_ids": []}, headers=t.admin_headers)
    assert dropped.json()["tools"] == {}
    assert dropped.json()["integrations"] == []
    refused = await client.patch(url, json={"name": None}, headers=t.admin_headers)
    assert refused.status_code == 422
    assert (await stored(db, agent["id"])).name == "Editor"  # type: ignore[union-attr]


async def test_duplicate(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    agent = await create(client, t.admin_headers, name="Helper", starters=["Go"])
    await client.post(f"{AGENTS}/{agent['id']}/set-default", headers=t.admin_headers)
    response = await client.post(f"{AGENTS}/{agent['id']}/duplicate", headers=t.admin_headers)
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["name"] == "Helper (copy)"
    assert copy["slug"] == "helper-copy"
    assert copy["id"] != agent["id"]
    assert copy["is_default"] is False
    assert copy["starters"] == ["Go"]
    second = (await client.post(f"{AGENTS}/{agent['id']}/duplicate", headers=t.admin_headers)).json()
    assert second["slug"] == "helper-copy-2"
    assert [e.action for e in await agent_audit(db, t.account.id)][-1] == "agent.duplicated"


async def test_one_default_for_the_account_and_one_per_project(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    a = await create(client, t.admin_headers, name="A")
    b = await create(client, t.admin_headers, name="B")
    p = await create(client, t.admin_headers, name="P", project_id=str(t.project_id))
    q = await create(client, t.admin_headers, name="Q", project_id=str(t.project_id))

    async def defaults() -> set[str]:
        listed = (await client.get(AGENTS, headers=t.admin_headers)).json()["items"]
        return {x["name"] for x in listed if x["is_default"]}

    for agent in (a, p):
        response = await client.post(f"{AGENTS}/{agent['id']}/set-default", headers=t.admin_headers)
        assert response.status_code == 200
        assert response.json()["is_default"] is True
    assert await defaults() == {"A", "P"}
    await client.post(f"{AGENTS}/{b['id']}/set-default", headers=t.admin_headers)
    assert await defaults() == {"B", "P"}  # the project's default is its own
    await client.post(f"{AGENTS}/{q['id']}/set-default", headers=t.admin_headers)
    assert await defaults() == {"B", "Q"}
    entry = (await agent_audit(db, t.account.id))[-1]
    assert entry.action == "agent.default_set"
    assert entry.before == {"default": ["P"], "of": "project"}

    # A deactivated agent stops being the default, and cannot become one.
    await client.post(f"{AGENTS}/{b['id']}/deactivate", headers=t.admin_headers)
    assert await defaults() == {"Q"}
    refused = await client.post(f"{AGENTS}/{b['id']}/set-default", headers=t.admin_headers)
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "agent_inactive"


async def test_deactivate_and_reactivate(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    agent = await create(client, t.admin_headers, name="Bot")
    off = await client.post(f"{AGENTS}/{agent['id']}/deactivate", headers=t.admin_headers)
    assert off.status_code == 200
    assert off.json()["status"] == "inactive"
    on = await client.post(f"{AGENTS}/{agent['id']}/reactivate", headers=t.admin_headers)
    assert on.status_code == 200
    assert on.json()["status"] == "active"
    actions = [e.action for e in await agent_audit(db, t.account.id)]
    assert actions == ["agent.created", "agent.deactivated", "agent.reactivated"]


async def test_delete_needs_the_exact_name(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    agent = await create(client, t.admin_headers, name="Old Bot")
    url = f"{AGENTS}/{agent['id']}"
    for typed in ("", "old bot", "Old Bot "):
        refused = await client.delete(url, params={"confirm": typed}, headers=t.admin_headers)
        assert refused.status_code == 422
        assert error_of(refused)["code"] == "confirmation_mismatch"
    assert await stored(db, agent["id"]) is not None
    assert await agents.names_of(db, t.account.id, [agent["id"]]) == {agent["id"]: "Old Bot"}

    deleted = await client.delete(url, params={"confirm": "Old Bot"}, headers=t.admin_headers)
    assert deleted.status_code == 204
    assert await stored(db, agent["id"]) is None
    assert (await client.get(url, headers=t.admin_headers)).status_code == 404
    entry = (await agent_audit(db, t.account.id))[-1]
    assert entry.action == "agent.deleted"
    assert entry.before is not None
    assert entry.before["name"] == "Old Bot"
    # Usage keeps the id string: the name is gone ("Deleted agent" on its pages).
    assert await agents.names_of(db, t.account.id, [agent["id"], "not-an-id"]) == {}


# ---- isolation and authorization ----


async def test_another_accounts_agent_is_not_found_everywhere(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    other = await make_team(db, name="Other")
    agent = await create(client, other.admin_headers, name="Theirs")
    url = f"{AGENTS}/{agent['id']}"
    calls = [
        client.get(url, headers=t.owner_headers),
        client.patch(url, json={"name": "Mine"}, headers=t.owner_headers),
        client.delete(url, params={"confirm": "Theirs"}, headers=t.owner_headers),
        *(client.post(f"{url}/{action}", headers=t.owner_headers)
          for action in ("deactivate", "reactivate", "set-default", "duplicate")),
    ]  # fmt: skip
    for call in calls:
        response = await call
        assert response.status_code == 404, response.text
        assert error_of(response)["code"] == "agent_not_found"
    listed = (await client.get(AGENTS, headers=t.owner_headers)).json()
    assert listed["items"] == []
    assert listed["meta"]["total"] == 0
    theirs = await stored(db, agent["id"])
    assert theirs is not None
    assert theirs.name == "Theirs"
    assert theirs.status == "active"
    # Another account's model, integration, group or project cannot be named either.
    for body in (
        {"model": str(other.models["gpt-4o"])},
        {"integration_ids": [str(other.wiki_id)]},
        {"project_id": str(other.project_id)},
    ):
        refused = await client.post(
            AGENTS, json={"name": "X", "model": "gpt-4o", **body}, headers=t.owner_headers
        )
        assert refused.status_code == 422, refused.text


async def test_a_member_creates_in_their_project_only(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    mine = await create(client, t.member_headers, name="Team Bot", project_id=str(t.project_id))
    assert mine["project"] == "Support"
    assert mine["visibility"] == "project"

    account_wide = await client.post(AGENTS, json={"name": "X", "model": "gpt-4o"}, headers=t.member_headers)
    assert account_wide.status_code == 403
    assert error_of(account_wide)["code"] == "account_agent_not_permitted"
    elsewhere = await client.post(
        AGENTS,
        json={"name": "X", "model": "gpt-4o", "project_id": str(t.other_project_id)},
        headers=t.member_headers,
    )
    assert elsewhere.status_code == 422
    assert error_of(elsewhere)["code"] == "unknown_project"
    shared = await client.post(
        AGENTS,
        json={"name": "X", "model": "gpt-4o", "project_id": str(t.project_id), "visibility": "account"},
        headers=t.member_headers,
    )
    assert shared.status_code == 403
    nowhere = await client.post(AGENTS, json={"name": "X", "model": "gpt-4o"}, headers=t.outsider_headers)
    assert nowhere.status_code == 403
    assert await agent_count(db, t.account.id) == 1

    # They manage their project's agent; the outsider does not even see it.
    url = f"{AGENTS}/{mine['id']}"
    assert (
        await client.patch(url, json={"description": "ours"}, headers=t.member_headers)
    ).status_code == 200
    assert (await client.post(f"{url}/set-default", headers=t.member_headers)).json()["is_default"] is True
    assert (await client.get(url, headers=t.outsider_headers)).status_code == 404


async def test_what_members_see_and_change(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    group = await client.post("/api/v1/groups", json={"name": "Sales"}, headers=t.owner_headers)
    group_id = group.json()["id"]
    moved = await client.post(
        f"/api/v1/groups/{group_id}/members", json={"user_ids": [str(t.outsider.id)]}, headers=t.owner_headers
    )
    assert moved.status_code == 200, moved.text
    everyone = await create(client, t.admin_headers, name="Everyone")
    sales = await create(client, t.admin_headers, name="Sales Bot", visibility="groups", group_ids=[group_id])
    assert [g["name"] for g in sales["groups"]] == ["Sales"]
    support = await create(client, t.admin_headers, name="Support Bot", project_id=str(t.project_id))
    research = await create(client, t.admin_headers, name="Research Bot", project_id=str(t.other_project_id))

    async def names(headers: dict[str, str]) -> set[str]:
        response = await client.get(AGENTS, headers=headers)
        assert response.status_code == 200, response.text
        return {a["name"] for a in response.json()["items"]}

    assert await names(t.admin_headers) == {"Everyone", "Sales Bot", "Support Bot", "Research Bot"}
    assert await names(t.member_headers) == {"Everyone", "Support Bot"}
    assert await names(t.outsider_headers) == {"Everyone", "Sales Bot"}
    assert (await client.get(f"{AGENTS}/{research['id']}", headers=t.member_headers)).status_code == 404
    assert (await client.get(f"{AGENTS}/{sales['id']}", headers=t.outsider_headers)).status_code == 200
    # Seeing is not changing: account-wide agents are the administrators'.
    refused = await client.patch(
        f"{AGENTS}/{everyone['id']}", json={"name": "Mine"}, headers=t.member_headers
    )
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "not_agent_manager"
    refused = await client.delete(
        f"{AGENTS}/{support['id']}", params={"confirm": "Support Bot"}, headers=t.outsider_headers
    )
    assert refused.status_code == 404


async def test_a_policy_that_denies_agents_create(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    rule = await client.post(
        "/api/v1/policies",
        json={"scope": "user", "scope_id": str(t.member.id), "resource_type": "feature",
              "resource": "agents.create", "effect": "deny"},
        headers=t.owner_headers,
    )  # fmt: skip
    assert rule.status_code == 201, rule.text
    body = {"name": "X", "model": "gpt-4o", "project_id": str(t.project_id)}
    refused = await client.post(AGENTS, json=body, headers=t.member_headers)
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "feature_not_allowed"
    assert rule.json()["id"] in error_of(refused)["message"]
    assert await agent_count(db, t.account.id) == 0
    # Duplicating creates an agent too.
    agent = await create(client, t.admin_headers, **body)
    refused = await client.post(f"{AGENTS}/{agent['id']}/duplicate", headers=t.member_headers)
    assert refused.status_code == 403
    assert await agent_count(db, t.account.id) == 1


# ---- validation ----


async def test_refusals_name_the_field_and_store_nothing(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    wiki = str(t.wiki_id)
    cases: list[tuple[dict[str, object], str]] = [
        ({"model": "gpt-5"}, "unknown_model"),
        ({"model": "off"}, "unknown_model"),
        ({"model": str(uuid.uuid4())}, "unknown_model"),
        ({"integration_ids": [str(uuid.uuid4())]}, "unknown_integration"),
        ({"integration_ids": ["nope"]}, "invalid_input"),
        ({"integration_ids": [wiki], "tools": {wiki: {"names": ["delete_all"]}}}, "unknown_tool"),
        ({"integration_ids": [wiki], "tools": {wiki: {"all": True, "confirm": ["nuke"]}}}, "unknown_tool"),
        ({"integration_ids": [wiki], "tools": {wiki: {"names": []}}}, "invalid_input"),
        ({"integration_ids": [wiki], "tools": {wiki: {"names": ["search"], "confirm": ["create_page"]}}},
         "invalid_input"),
        ({"tools": {wiki: {"all": True}}}, "tools_without_integration"),
        ({"slug": "Bad Slug"}, "invalid_input"),
        ({"slug": "x" * 65}, "invalid_input"),
        ({"name": "   "}, "invalid_input"),
        ({"name": "n" * 101}, "invalid_input"),
        ({"temperature": 2.5}, "invalid_input"),
        ({"temperature": "0.5"}, "invalid_input"),
        ({"max_output_tokens": 0}, "invalid_input"),
        ({"max_output_tokens": 1_000_001}, "invalid_input"),
        ({"max_steps": 21}, "invalid_input"),
        ({"max_steps": True}, "invalid_input"),
        ({"starters": ["s"] * 7}, "invalid_input"),
        ({"starters": ["s" * 201]}, "invalid_input"),
        ({"visibility": "groups"}, "groups_required"),
        ({"visibility": "groups", "group_ids": [str(uuid.uuid4())]}, "unknown_group"),
        ({"visibility": "project"}, "project_required"),
        ({"group_ids": [str(uuid.uuid4())]}, "groups_without_visibility"),
        ({"surprise": 1}, "invalid_input"),
    ]  # fmt: skip
    for extra, code in cases:
        response = await client.post(
            AGENTS, json={"name": "Bot", "model": "gpt-4o", **extra}, headers=t.admin_headers
        )
        assert response.status_code == 422, (extra, response.text)
        assert error_of(response)["code"] == code, (extra, response.text)
    assert await agent_count(db, t.account.id) == 0

    await create(client, t.admin_headers, name="Bot", slug="bot")
    taken = await client.post(
        AGENTS, json={"name": "Other", "model": "gpt-4o", "slug": "bot"}, headers=t.admin_headers
    )
    assert taken.status_code == 409
    assert error_of(taken)["code"] == "agent_slug_taken"
    other = await create(client, t.admin_headers, name="Other")
    renamed = await client.patch(f"{AGENTS}/{other['id']}", json={"slug": "bot"}, headers=t.admin_headers)
    assert renamed.status_code == 409
    assert await agent_count(db, t.account.id) == 2


async def test_unstorable_text_is_refused(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    headers = {**t.admin_headers, "Content-Type": "application/json"}
    for field in ("name", "instructions", "description", "starters"):
        for bad in ('"bad\\u0000text"', '"bad\\ud800text"'):
            value = f"[{bad}]" if field == "starters" else bad
            body = (
                '{"model": "gpt-4o", '
                + ("" if field == "name" else '"name": "Bot", ')
                + f'"{field}": {value}}}'
            )
            response = await client.post(AGENTS, content=body, headers=headers)
            # The front door (kit.guard) refuses it before the route, naming the field.
            assert response.status_code == 400, response.text
            assert error_of(response)["code"] == "invalid_text"
            assert field in error_of(response)["message"]
    assert await agent_count(db, t.account.id) == 0


# ---- listing ----


async def test_list_filters_search_and_pages(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    await create(client, t.admin_headers, name="Alpha", description="writes release notes")
    beta = await create(client, t.admin_headers, name="Beta_1")
    await create(client, t.admin_headers, name="Gamma", project_id=str(t.project_id))
    await client.post(f"{AGENTS}/{beta['id']}/deactivate", headers=t.admin_headers)

    async def names(**params: str) -> list[str]:
        response = await client.get(AGENTS, params=params, headers=t.admin_headers)
        assert response.status_code == 200, response.text
        return [a["name"] for a in response.json()["items"]]

    assert await names() == ["Alpha", "Beta_1", "Gamma"]
    assert await names(search="release") == ["Alpha"]
    assert await names(search="GAM") == ["Gamma"]
    assert await names(search="a_1") == ["Beta_1"]  # "_" is a character, not a wildcard
    assert await names(search="%") == []
    assert await names(status="inactive") == ["Beta_1"]
    assert await names(status="active") == ["Alpha", "Gamma"]
    assert await names(project_id=str(t.project_id)) == ["Gamma"]
    page = (await client.get(AGENTS, params={"per_page": 2, "page": 2}, headers=t.admin_headers)).json()
    assert [a["name"] for a in page["items"]] == ["Gamma"]
    assert page["meta"] == {"page": 2, "per_page": 2, "total": 3, "pages": 2}
    bad = await client.get(AGENTS, params={"status": "gone"}, headers=t.admin_headers)
    assert bad.status_code == 422
