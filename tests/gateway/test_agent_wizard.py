"""The agent wizard over the API: a draft from a plain description (a metered model call attributed to
the person, offline with the simulated provider) and a preview run of an unsaved configuration."""

from __future__ import annotations

from typing import Any

import httpx2
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from tests.gateway.agent_tools import ToolServer, setup_agent
from tests.gateway.conftest import Org, records

DESCRIPTION = "An agent that tells our sales team where an order is and when it shipped."


def api(app: Any, token: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app),
        base_url="http://cockpit",
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_a_draft_suggests_every_field_and_the_matching_tools(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    _agent, integration = await setup_agent(db, org, tool_server)
    async with api(gateway_app, org.admin_token) as http:
        response = await http.post(
            "/api/v1/agents/draft", json={"description": DESCRIPTION, "model": "sim-chat"}
        )
    assert response.status_code == 200, response.text
    draft = response.json()
    assert draft["name"]
    assert draft["slug"]
    assert draft["description"]
    assert DESCRIPTION in draft["instructions"]
    assert 1 <= len(draft["starters"]) <= 6
    assert draft["model"] == "sim-chat"
    assert draft["integration_ids"] == [str(integration.id)]
    assert draft["tools"][str(integration.id)]["names"] == ["lookup_order"]
    # The drafting call was metered like any call, attributed to the admin, with no token.
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.user_id, r.model, r.status, r.api_token_id) for r in rows] == [
        (org.admin.id, "sim-chat", "success", None)
    ]
    assert rows[0].input_tokens > 0


async def test_a_draft_is_refused_when_agents_create_is_denied(
    db: AsyncSession, gateway_app: Any, org: Org
) -> None:
    db.add(AccessPolicy(
        account_id=org.account_id, scope=Scope.user, scope_id=org.admin.id,
        resource_type=ResourceType.feature, resource="agents.create", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    async with api(gateway_app, org.admin_token) as http:
        response = await http.post("/api/v1/agents/draft", json={"description": DESCRIPTION})
        assert response.status_code == 403
        unknown = await http.post("/api/v1/agents/draft", json={"description": "x"})
        assert unknown.status_code == 422  # too short to draft from
    assert await records(gateway_app, db, org.account_id) == []


async def test_a_preview_runs_an_unsaved_configuration_with_its_tools(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    _agent, integration = await setup_agent(db, org, tool_server)
    body = {
        "model": "sim-chat",
        "instructions": "You answer about orders.",
        "integration_ids": [str(integration.id)],
        "messages": [{"role": "user", "content": "Where is my order 42?"}],
    }
    async with api(gateway_app, org.admin_token) as http:
        response = await http.post("/api/v1/agents/preview", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert "Order 42 shipped" in answer["choices"][0]["message"]["content"]
        assert [s["tool"] for s in answer["cockpit"]["steps"]] == ["lookup_order"]
        unknown = await http.post("/api/v1/agents/preview", json={**body, "model": "nope"})
        assert unknown.status_code == 422
    rows = await records(gateway_app, db, org.account_id)
    assert sorted(r.operation for r in rows) == ["chat", "chat", "tool_call"]
