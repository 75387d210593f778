"""Tools marked "ask before running" in a conversation: the agent's run pauses with the call it wants
to make, the person approves (the tool runs, metered) or declines (it does not), and the run goes on
in the same answer; a decision is taken once; the OpenAI API still refuses such a tool."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tests.builders import make_token
from tests.gateway.agent_tools import ToolServer, setup_agent
from tests.gateway.conftest import Org, fund, records
from tests.gateway.test_conversation_send import API, api


async def _paused(http: Any, cid: str) -> dict[str, Any]:
    sent = await http.post(f"{API}/{cid}/messages", json={"content": "Where is my order 42?"})
    assert sent.status_code == 201, sent.text
    answer: dict[str, Any] = sent.json()["message"]
    assert answer["status"] == "awaiting_approval"
    return answer


async def _setup(db: AsyncSession, org: Org, tool_server: ToolServer) -> None:
    await fund(db, org)
    agent, integration = await setup_agent(db, org, tool_server)
    agent.tools = {str(integration.id): {"all": True, "confirm": ["lookup_order"]}}
    await db.commit()


async def test_an_approved_tool_runs_and_the_answer_goes_on(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await _setup(db, org, tool_server)
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"agent": "support", "title": "Orders"})).json()["id"]
        answer = await _paused(http, cid)
        [ask] = answer["approval"]
        assert (ask["integration"], ask["tool"]) == ("Order desk", "lookup_order")
        assert "42" in json.dumps(ask["arguments"])
        assert answer["tool_steps"] == []  # nothing ran yet
        rows = await records(gateway_app, db, org.account_id)
        assert [r.operation for r in rows] == ["chat"]
        decided = await http.post(f"{API}/{cid}/messages/{answer['id']}/approval", json={"approve": True})
        assert decided.status_code == 200, decided.text
        done = decided.json()["message"]
        assert done["id"] == answer["id"]  # the same answer, gone on
        assert (done["status"], done["approval"]) == ("complete", None)
        assert [s["tool"] for s in done["tool_steps"]] == ["lookup_order"]
        assert done["tool_steps"][0]["ok"] is True
        assert "Order 42 shipped" in done["content"]
        again = await http.post(f"{API}/{cid}/messages/{answer['id']}/approval", json={"approve": True})
        assert again.status_code == 409
    rows = await records(gateway_app, db, org.account_id)
    assert sorted(r.operation for r in rows) == ["chat", "chat", "tool_call"]
    assert Decimal(done["cost_usd"]) == sum((r.cost_usd for r in rows), Decimal(0))


async def test_a_declined_tool_does_not_run(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await _setup(db, org, tool_server)
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"agent": "support", "title": "Orders"})).json()["id"]
        answer = await _paused(http, cid)
        decided = await http.post(f"{API}/{cid}/messages/{answer['id']}/approval", json={"approve": False})
        assert decided.status_code == 200, decided.text
        done = decided.json()["message"]
        assert done["status"] == "complete"
        [step] = done["tool_steps"]
        assert (step["ok"], step["error"]) == (False, "The person declined to run this tool.")
        assert "Order 42 shipped" not in done["content"]
    rows = await records(gateway_app, db, org.account_id)
    tool_rows = [r for r in rows if r.operation == "tool_call"]
    assert [(r.status, r.credits) for r in tool_rows] == [("error", Decimal(0))]  # recorded, not run


async def test_concurrent_decisions_run_the_tool_once(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await _setup(db, org, tool_server)
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"agent": "support", "title": "Orders"})).json()["id"]
        answer = await _paused(http, cid)
        url = f"{API}/{cid}/messages/{answer['id']}/approval"
        results = await asyncio.gather(*(http.post(url, json={"approve": True}) for _ in range(4)))
        assert sorted(r.status_code for r in results) == [200, 409, 409, 409]
    rows = await records(gateway_app, db, org.account_id)
    assert [r.operation for r in rows].count("tool_call") == 1


async def test_only_the_owner_decides_and_only_a_paused_answer(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await _setup(db, org, tool_server)
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"agent": "support", "title": "Orders"})).json()["id"]
        answer = await _paused(http, cid)
    async with api(gateway_app, await make_token(db, org.member)) as other:  # another person
        refused = await other.post(f"{API}/{cid}/messages/{answer['id']}/approval", json={"approve": True})
        assert refused.status_code == 404
    async with api(gateway_app, org.admin_token) as http:
        question = answer["parent_id"]
        wrong = await http.post(f"{API}/{cid}/messages/{question}/approval", json={"approve": True})
        assert wrong.status_code == 404  # a question is not an answer
        bad = await http.post(f"{API}/{cid}/messages/{answer['id']}/approval", json={"approve": "x"})
        assert bad.status_code == 422
        still = (await http.get(f"{API}/{cid}/messages")).json()["items"][-1]
        assert still["status"] == "awaiting_approval"


async def test_the_openai_api_still_refuses_such_a_tool(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await _setup(db, org, tool_server)
    async with api(gateway_app, org.admin_token) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={
                "model": "agent:support",
                "messages": [{"role": "user", "content": "Where is my order 42?"}],
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "stop"
    [step] = body["cockpit"]["steps"]
    assert step["ok"] is False
    assert "approves it" in step["error"]
    assert "pending" not in body["cockpit"]
