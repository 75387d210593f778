"""The guided agent wizard in the console, driven like a browser: describe the agent, get a draft in
the full agent form (a metered model call charged to the person), try it in the preview chat (its
tool calls against a real MCP server), publish it; and a refusal when agents.create is denied."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent
from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from cockpit.providers.models import Model
from tests.builders import console_login, csrf_for
from tests.gateway import conftest as gateway_fixtures
from tests.gateway.agent_tools import ToolServer, setup_agent
from tests.gateway.conftest import Org, records

# The gateway's fixtures (an app that may reach local servers, an account with a simulated model) and
# its MCP tool server, used by this module's tests.
upstream = gateway_fixtures.upstream
anthropic_upstream = gateway_fixtures.anthropic_upstream
gateway_settings = gateway_fixtures.gateway_settings
gateway_app = gateway_fixtures.gateway_app
org = gateway_fixtures.org
tool_server = gateway_fixtures.tool_server

DESCRIPTION = "An agent that tells our sales team where an order is and when it shipped."
WIZARD = "/agents/wizard"
CONVERSATION = re.compile(r"id=\"preview-conversation\" value='([^']*)'")


@pytest.fixture
async def console(gateway_app: Any) -> AsyncIterator[AsyncClient]:
    """A browser on the gateway's app (it may reach the local MCP server)."""
    transport = ASGITransport(app=gateway_app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def _post(client: AsyncClient, url: str, data: Any) -> Response:
    """A form post; ``data`` a dict, or pairs when a name repeats (checkboxes, starters)."""
    pairs = list(data.items()) if isinstance(data, dict) else list(data)
    fields: dict[str, list[str]] = {"csrf_token": [await csrf_for(client, "/agents")]}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return await client.post(url, data=fields)


async def _sim_chat(db: AsyncSession, org: Org) -> str:
    model = await db.scalar(select(Model).where(Model.account_id == org.account_id, Model.name == "sim-chat"))
    assert model is not None
    return str(model.id)


def _textarea(page: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>([^<]*)</textarea>', page)
    assert match, name
    return html.unescape(match.group(1))


def _input(page: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page)
    assert match, name
    return html.unescape(match.group(1))


async def test_the_first_step_renders_with_the_catalogue(
    console: AsyncClient, db: AsyncSession, org: Org
) -> None:
    assert (await console_login(console, org.admin.email)).status_code == 303
    listed = await console.get("/agents")
    assert f'href="{WIZARD}"' in listed.text
    assert "Guided wizard" in listed.text
    page = await console.get(WIZARD)
    assert page.status_code == 200
    assert "What should the agent do, and for whom?" in page.text
    assert '<option value="sim-chat">sim-chat</option>' in page.text
    assert 'action="/agents/wizard"' in page.text


async def test_a_description_becomes_a_draft_in_the_full_form(
    console: AsyncClient, db: AsyncSession, org: Org, tool_server: ToolServer, gateway_app: Any
) -> None:
    _agent, integration = await setup_agent(db, org, tool_server)
    iid = str(integration.id)
    await console_login(console, org.admin.email)
    page = await _post(console, WIZARD, {"description": DESCRIPTION, "model": "sim-chat"})
    assert page.status_code == 200, page.text
    text = page.text
    assert _input(text, "name")
    assert _input(text, "slug")
    assert DESCRIPTION in _textarea(text, "instructions")
    assert _input(text, "starters")  # the first starter is filled in
    assert re.search(rf'name="integration_ids" value="{iid}"[^>]* checked', text)
    assert re.search(rf'name="tools:{iid}" value="lookup_order"[^>]* checked', text)
    assert not re.search(rf'name="tools:{iid}" value="refund_payment"[^>]* checked', text)
    assert re.search(r'<option value="[^"]+" selected>sim-chat</option>', text)
    # Every field of the manual form, posted to the wizard's publish; the preview chat beside it.
    for field in ("icon", "description", "temperature", "max_output_tokens", "max_steps", "visibility"):
        assert f'name="{field}"' in text, field
    assert 'action="/agents/wizard/publish"' in text
    assert "/agents/new" not in text.replace('href="/agents/new"', "")
    assert 'hx-post="/agents/wizard/preview"' in text
    assert "charged to you" in text
    assert str(escape(DESCRIPTION)) in text  # the description, kept for reference

    # One metered call, attributed to the person (no API token).
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.user_id, r.model, r.status, r.api_token_id) for r in rows] == [
        (org.admin.id, "sim-chat", "success", None)
    ]


async def test_a_too_short_description_is_kept_with_the_reason(
    console: AsyncClient, db: AsyncSession, org: Org, gateway_app: Any
) -> None:
    await console_login(console, org.admin.email)
    page = await _post(console, WIZARD, {"description": "a bot", "model": ""})
    assert page.status_code == 422
    assert "at least 10 characters" in page.text
    assert ">a bot</textarea>" in page.text
    assert await records(gateway_app, db, org.account_id) == []


def _form(org_model: str, iid: str, message: str, conversation: str = "[]") -> list[tuple[str, str]]:
    """The agent form as it is, plus a chat message: what the preview chat posts."""
    return [
        ("name", "Order helper"),
        ("model", org_model),
        ("instructions", "You answer about orders."),
        ("max_steps", "4"),
        ("integration_ids", iid),
        (f"tools:{iid}", "lookup_order"),
        ("message", message),
        ("conversation", conversation),
    ]


async def test_the_preview_chat_answers_with_its_tool_steps(
    console: AsyncClient, db: AsyncSession, org: Org, tool_server: ToolServer, gateway_app: Any
) -> None:
    _agent, integration = await setup_agent(db, org, tool_server)
    iid, model = str(integration.id), await _sim_chat(db, org)
    admin_id = org.admin.id
    await console_login(console, org.admin.email)
    turn = await _post(console, f"{WIZARD}/preview", _form(model, iid, "Where is my order 42?"))
    assert turn.status_code == 200, turn.text
    assert 'data-testid="preview-answer"' in turn.text
    assert "Order 42 shipped" in turn.text
    assert 'data-testid="preview-step"' in turn.text
    assert "Order desk" in turn.text
    assert "<code>lookup_order</code>" in turn.text
    assert "badge-success" in turn.text
    match = CONVERSATION.search(turn.text)
    assert match
    conversation = json.loads(html.unescape(match.group(1)))
    assert [m["role"] for m in conversation] == ["user", "assistant"]
    assert conversation[0]["content"] == "Where is my order 42?"

    # The next turn carries the conversation; what the model or a tool says is text, never HTML.
    second = await _post(
        console, f"{WIZARD}/preview", _form(model, iid, "<i>And order 9?</i>", match.group(1))
    )
    assert second.status_code == 200, second.text
    assert "<i>" not in second.text
    assert "&lt;i&gt;And order 9?&lt;/i&gt;" in second.text
    later = CONVERSATION.search(second.text)
    assert later
    assert len(json.loads(html.unescape(later.group(1)))) == 4

    rows = await records(gateway_app, db, org.account_id)
    assert sorted(r.operation for r in rows) == ["chat", "chat", "chat", "chat", "tool_call", "tool_call"]
    assert {r.user_id for r in rows} == {admin_id}


async def test_the_preview_shows_why_it_cannot_run(
    console: AsyncClient, db: AsyncSession, org: Org, gateway_app: Any
) -> None:
    await console_login(console, org.admin.email)
    no_model = await _post(
        console, f"{WIZARD}/preview", {"name": "x", "model": "", "max_steps": "5", "message": "Hello"}
    )
    assert no_model.status_code == 200  # htmx swaps it into the chat
    assert no_model.headers["x-preview-failed"] == "model_required"
    assert 'data-testid="preview-error"' in no_model.text
    assert "Choose a model" in no_model.text
    assert await records(gateway_app, db, org.account_id) == []


async def test_publish_creates_the_agent_and_lands_on_it(
    console: AsyncClient, db: AsyncSession, org: Org, tool_server: ToolServer
) -> None:
    _agent, integration = await setup_agent(db, org, tool_server)
    iid, model = str(integration.id), await _sim_chat(db, org)
    await console_login(console, org.admin.email)
    fields = [
        ("name", "Order helper"),
        ("slug", ""),
        ("icon", "📦"),
        ("description", "Where orders are"),
        ("model", model),
        ("instructions", "You answer the sales team about orders."),
        ("temperature", ""),
        ("max_output_tokens", ""),
        ("max_steps", "5"),
        ("integration_ids", iid),
        (f"tools:{iid}", "lookup_order"),
        ("starters", "Where is order 42?"),
        ("starters", ""),
        ("visibility", "account"),
        ("project_id", ""),
        ("brief", DESCRIPTION),
        ("drafted_with", "sim-chat"),
    ]
    invalid = await _post(console, f"{WIZARD}/publish", [(k, "" if k == "name" else v) for k, v in fields])
    assert invalid.status_code == 422
    assert 'action="/agents/wizard/publish"' in invalid.text
    assert "You answer the sales team about orders." in invalid.text  # the fields are kept
    assert 'data-testid="error-name"' in invalid.text

    published = await _post(console, f"{WIZARD}/publish", fields)
    assert published.status_code == 303, published.text
    await db.commit()
    agent = await db.scalar(
        select(Agent).where(Agent.account_id == org.account_id, Agent.name == "Order helper")
    )
    assert agent is not None
    assert published.headers["location"] == f"/agents/{agent.id}"
    assert agent.tools == {iid: {"all": False, "names": ["lookup_order"], "confirm": []}}
    assert agent.starters == ["Where is order 42?"]
    landing = await console.get(published.headers["location"])
    assert landing.status_code == 200
    assert "Agent “Order helper” published." in landing.text


async def test_a_denied_agents_create_policy_is_shown_and_nothing_is_spent(
    console: AsyncClient, db: AsyncSession, org: Org, gateway_app: Any
) -> None:
    db.add(AccessPolicy(
        account_id=org.account_id, scope=Scope.user, scope_id=org.admin.id,
        resource_type=ResourceType.feature, resource="agents.create", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    await console_login(console, org.admin.email)
    listed = await console.get("/agents")
    assert f'href="{WIZARD}"' not in listed.text
    assert (await console.get(WIZARD)).status_code == 403

    page = await _post(console, WIZARD, {"description": DESCRIPTION, "model": "sim-chat"})
    assert page.status_code == 403
    assert 'class="banner banner-error" role="alert"' in page.text
    assert str(escape(DESCRIPTION)) in page.text  # the description is kept
    preview = await _post(
        console,
        f"{WIZARD}/preview",
        {"model": await _sim_chat(db, org), "max_steps": "5", "message": "Hello"},
    )
    assert 'data-testid="preview-error"' in preview.text
    assert await records(gateway_app, db, org.account_id) == []
    await db.commit()
    assert await db.scalar(select(Agent.id).where(Agent.account_id == org.account_id)) is None
