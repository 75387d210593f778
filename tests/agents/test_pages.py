"""The Agents console page, driven like a browser: the list, the form, its errors and the actions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import AgentStatus
from tests.agents.conftest import agent_audit, agent_count, create, make_team, stored
from tests.builders import console_login, csrf_for

FLASH = re.compile(
    r'<div class="banner banner-(success|error|info)" role="status"[^>]*>.*?<span>([^<]*)</span>', re.S
)


async def _follow(client: AsyncClient, response: Response) -> tuple[str, str, str]:
    """A POST's redirect, then the page it leads to: (location, flash kind, flash message)."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    page = await client.get(location)
    assert page.status_code == 200, page.text
    match = FLASH.search(page.text)
    assert match, "no flash message"
    return location, match.group(1), match.group(2)


async def _post(client: AsyncClient, url: str, data: Mapping[str, Any], page: str) -> Response:
    return await client.post(url, data={**data, "csrf_token": await csrf_for(client, page)})


async def test_the_list_and_the_form_render(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    assert (await console_login(client, t.admin.email)).status_code == 303
    empty = await client.get("/agents")
    assert empty.status_code == 200
    assert "No agents yet" in empty.text
    assert 'href="/agents/new"' in empty.text
    assert 'href="/agents"' in empty.text  # the navigation item

    form = await client.get("/agents/new")
    assert form.status_code == 200
    for text in (
        "gpt-4o",
        "claude",
        "Wiki",
        "create_page",
        "ask first",
        "Everyone in the organisation",
        "Support",
    ):
        assert text in form.text, text
    assert ">off<" not in form.text  # disabled models are not offered

    await create(client, t.admin_headers, name="Listed", icon="🤖", integration_ids=[str(t.wiki_id)])
    listed = await client.get("/agents")
    assert "Listed" in listed.text
    assert "🤖" in listed.text
    assert "Wiki" in listed.text
    assert "gpt-4o" in listed.text
    searched = await client.get("/agents", params={"q": "nothing-like-it"})
    assert "No agents match" in searched.text
    inactive = await client.get("/agents", params={"status": "inactive"})
    assert "Listed" not in inactive.text


async def test_a_form_post_creates_an_agent(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    await console_login(client, t.admin.email)
    wiki = str(t.wiki_id)
    data = {
        "name": "Form Bot",
        "slug": "",
        "icon": "",
        "description": "Made in the console",
        "model": str(t.models["claude"]),
        "instructions": "Answer briefly.",
        "temperature": "0.7",
        "max_output_tokens": "",
        "max_steps": "3",
        "integration_ids": [wiki, str(t.crm_id)],
        f"tools:{wiki}": ["search"],
        f"confirm:{wiki}": ["search"],
        "starters": ["First question", "", ""],
        "visibility": "account",
        "project_id": "",
    }
    response = await _post(client, "/agents/new", data, "/agents/new")
    location, kind, message = await _follow(client, response)
    assert (location, kind) == ("/agents", "success")
    assert "Form Bot" in message
    entries = await agent_audit(db, t.account.id)
    assert [e.action for e in entries] == ["agent.created"]
    agent = await stored(db, entries[0].target_id)  # type: ignore[arg-type]
    assert agent is not None
    assert (agent.slug, agent.temperature, agent.max_output_tokens, agent.max_steps) == (
        "form-bot",
        0.7,
        None,
        3,
    )
    assert agent.model_id == t.models["claude"]
    assert agent.starters == ["First question"]
    assert agent.tools[wiki] == {"all": False, "names": ["search"], "confirm": ["search"]}
    assert agent.tools[str(t.crm_id)]["all"] is True

    # Edit it on its page: the form shows what is stored, and saving changes it.
    page = await client.get(f"/agents/{agent.id}")
    assert page.status_code == 200
    assert "Answer briefly." in page.text
    assert "agent:form-bot" in page.text
    saved = await _post(
        client,
        f"/agents/{agent.id}",
        {**data, "name": "Renamed Bot", "temperature": ""},
        f"/agents/{agent.id}",
    )
    _, kind, _ = await _follow(client, saved)
    assert kind == "success"
    agent = await stored(db, agent.id)
    assert agent is not None
    assert agent.name == "Renamed Bot"
    assert agent.temperature is None
    assert agent.slug == "form-bot"


async def test_form_errors_are_shown_next_to_their_fields(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    await console_login(client, t.admin.email)
    data = {"name": "Bad", "model": str(t.models["gpt-4o"]), "temperature": "5", "max_steps": "lots",
            "slug": "Not A Slug", "visibility": "account"}  # fmt: skip
    response = await _post(client, "/agents/new", data, "/agents/new")
    assert response.status_code == 422
    for field in ("temperature", "max_steps", "slug"):
        assert f'data-testid="error-{field}"' in response.text, field
    assert 'value="Bad"' in response.text  # what was typed is kept
    unknown = await _post(
        client, "/agents/new", {"name": "Bad", "model": "", "visibility": "account"}, "/agents/new"
    )
    assert unknown.status_code == 422
    assert 'data-testid="error-model"' in unknown.text
    assert await agent_count(db, t.account.id) == 0


async def test_actions_from_the_list(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    agent = await create(client, t.admin_headers, name="Acting Bot")
    aid = agent["id"]
    await console_login(client, t.admin.email)

    _, kind, message = await _follow(client, await _post(client, f"/agents/{aid}/default", {}, "/agents"))
    assert kind == "success"
    assert "default" in message
    assert 'data-testid="default-star"' in (await client.get("/agents")).text
    location, kind, _ = await _follow(client, await _post(client, f"/agents/{aid}/duplicate", {}, "/agents"))
    assert kind == "success"
    assert location != "/agents"
    await _follow(client, await _post(client, f"/agents/{aid}/deactivate", {}, "/agents"))
    assert (await stored(db, aid)).status is AgentStatus.inactive  # type: ignore[union-attr]
    await _follow(client, await _post(client, f"/agents/{aid}/reactivate", {}, "/agents"))
    assert (await stored(db, aid)).status is AgentStatus.active  # type: ignore[union-attr]

    _, kind, message = await _follow(
        client, await _post(client, f"/agents/{aid}/delete", {"confirm": "acting bot"}, "/agents")
    )
    assert kind == "error"
    assert "Acting Bot" in message
    assert await stored(db, aid) is not None
    _, kind, _ = await _follow(
        client, await _post(client, f"/agents/{aid}/delete", {"confirm": "Acting Bot"}, "/agents")
    )
    assert kind == "success"
    assert await stored(db, aid) is None
    assert (await client.get(f"/agents/{aid}")).status_code == 404
    assert (await client.get(f"/agents/{uuid.uuid4()}")).status_code == 404


async def test_a_member_sees_their_projects_agents(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    await create(client, t.admin_headers, name="Project Bot", project_id=str(t.project_id))
    hidden = await create(client, t.admin_headers, name="Hidden Bot", project_id=str(t.other_project_id))
    await console_login(client, t.member.email)
    page = await client.get("/agents")
    assert page.status_code == 200
    assert "Project Bot" in page.text
    assert "Hidden Bot" not in page.text
    assert 'href="/agents/new"' in page.text
    form = await client.get("/agents/new")
    assert "None: an organisation-wide agent" not in form.text
    assert "Research" not in form.text
    assert (await client.get(f"/agents/{hidden['id']}")).status_code == 404
    data = {"name": "Member Bot", "model": "gpt-4o", "project_id": str(t.project_id), "visibility": "project"}
    _, kind, _ = await _follow(client, await _post(client, "/agents/new", data, "/agents/new"))
    assert kind == "success"
    assert await agent_count(db, t.account.id) == 3


async def test_the_form_is_checked_as_it_is_typed(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    await console_login(client, t.admin.email)
    taken = await create(client, t.admin_headers, name="Support", slug="support")
    csrf = await csrf_for(client, "/agents/new")
    base = {"csrf_token": csrf, "model": str(t.models["gpt-4o"]), "max_steps": "5"}

    fine = await client.post("/agents/check", data={**base, "name": "Helper"}, headers={"HX-Request": "true"})
    assert fine.status_code == 200
    assert "Everything looks right" in fine.text

    wrong = await client.post(
        "/agents/check",
        data={**base, "name": "", "slug": "support", "temperature": "7", "max_steps": "99"},
        headers={"HX-Request": "true"},
    )
    assert wrong.status_code == 200
    assert "Not ready to save yet" in wrong.text
    for label in ("Name", "Temperature", "Max steps"):
        assert f"<strong>{label}</strong>" in wrong.text
    own = await client.post(
        f"/agents/check?agent_id={taken['id']}", data={**base, "name": "Support", "slug": "support"}
    )
    assert "Everything looks right" in own.text  # its own slug is not "taken"
    clash = await client.post("/agents/check", data={**base, "name": "Other", "slug": "support"})
    assert "already the slug of Support" in clash.text
    assert await agent_count(db, t.account.id) == 1  # checking saves nothing
