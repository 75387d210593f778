"""Sending messages in a conversation: the answer of its model or agent through the gateway, kept with
its exact cost and credits; branches by editing and regenerating; refusals kept as failed answers."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx2
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from tests.gateway.agent_tools import ToolServer, setup_agent
from tests.gateway.conftest import Org, fund, records

API = "/api/v1/conversations"


def api(app: Any, token: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://cockpit",
        headers={"Authorization": f"Bearer {token}"}, timeout=60,
    )  # fmt: skip


async def test_a_model_answers_and_the_answer_is_kept_with_its_exact_cost(
    db: AsyncSession, gateway_app: Any, org: Org
) -> None:
    await fund(db, org)
    async with api(gateway_app, org.admin_token) as http:
        conversation = (await http.post(API, json={"model": "sim-chat", "title": "Plants"})).json()
        sent = await http.post(
            f"{API}/{conversation['id']}/messages", json={"content": "How do plants grow?"}
        )
        assert sent.status_code == 201, sent.text
        exchange = sent.json()
        asked, answer = exchange["asked"], exchange["message"]
        assert (asked["role"], asked["content"]) == ("user", "How do plants grow?")
        assert (answer["role"], answer["status"], answer["parent_id"]) == (
            "assistant",
            "complete",
            asked["id"],
        )
        assert answer["content"]
        assert answer["output_tokens"] > 0
        listed = (await http.get(f"{API}/{conversation['id']}/messages")).json()
        assert [m["id"] for m in listed["items"]] == [asked["id"], answer["id"]]
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.user_id, row.api_token_id, row.model, row.status) == (
        org.admin.id,
        None,
        "sim-chat",
        "success",
    )
    assert Decimal(answer["cost_usd"]) == row.cost_usd > 0
    assert Decimal(answer["credits"]) == row.credits > 0
    assert (answer["input_tokens"], answer["output_tokens"]) == (row.input_tokens, row.output_tokens)


async def test_an_agent_answers_with_its_tools_and_its_whole_cost(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await fund(db, org)
    _agent, integration = await setup_agent(db, org, tool_server)
    integration.price_credits = Decimal("1.5")
    await db.commit()
    async with api(gateway_app, org.admin_token) as http:
        conversation = (await http.post(API, json={"agent": "support", "title": "Orders"})).json()
        sent = await http.post(
            f"{API}/{conversation['id']}/messages", json={"content": "Where is my order 42?"}
        )
        assert sent.status_code == 201, sent.text
        answer = sent.json()["message"]
    assert "Order 42 shipped" in answer["content"]
    assert [s["tool"] for s in answer["tool_steps"]] == ["lookup_order"]
    rows = await records(gateway_app, db, org.account_id)
    assert sorted(r.operation for r in rows) == ["chat", "chat", "tool_call"]
    assert Decimal(answer["cost_usd"]) == sum((r.cost_usd for r in rows), Decimal(0))
    assert Decimal(answer["credits"]) == sum((r.credits for r in rows), Decimal(0))


async def test_edit_and_regenerate_make_branches(db: AsyncSession, gateway_app: Any, org: Org) -> None:
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"model": "sim-chat"})).json()["id"]
        first = (await http.post(f"{API}/{cid}/messages", json={"content": "Tell me about tea?"})).json()
        await http.post(f"{API}/{cid}/messages", json={"content": "And coffee?"})
        edited = await http.post(
            f"{API}/{cid}/messages", json={"content": "Tell me about cocoa?", "edit_of": first["asked"]["id"]}
        )
        assert edited.status_code == 201, edited.text
        assert edited.json()["asked"]["sibling_ids"] == [first["asked"]["id"], edited.json()["asked"]["id"]]
        again = await http.post(
            f"{API}/{cid}/messages", json={"regenerate_of": edited.json()["message"]["id"]}
        )
        assert again.status_code == 201, again.text
        assert again.json()["asked"] is None
        assert len(again.json()["message"]["sibling_ids"]) == 2
        branch = (await http.get(f"{API}/{cid}/messages")).json()["items"]
        assert next(m["content"] for m in branch) == "Tell me about cocoa?"
        assert len(branch) == 2
        whole = (await http.get(f"{API}/{cid}/messages", params={"tree": "true"})).json()["items"]
        assert len(whole) == 7  # tea, its answer, coffee, its answer, cocoa, two answers
        bad = await http.post(f"{API}/{cid}/messages", json={"regenerate_of": first["asked"]["id"]})
        assert bad.status_code == 422


async def test_a_refused_call_is_kept_as_a_failed_answer_and_costs_nothing(
    db: AsyncSession, gateway_app: Any, org: Org
) -> None:
    db.add(AccessPolicy(
        account_id=org.account_id, scope=Scope.user, scope_id=org.admin.id,
        resource_type=ResourceType.model, resource="*", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"model": "sim-chat"})).json()["id"]
        refused = await http.post(f"{API}/{cid}/messages", json={"content": "Hello?"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "model_not_allowed"
        kept = (await http.get(f"{API}/{cid}/messages")).json()["items"]
    assert [(m["role"], m["status"]) for m in kept] == [("user", "complete"), ("assistant", "error")]
    assert "denied" in (kept[1]["error"] or "")
    assert kept[1]["cost_usd"] == "0"
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.status, r.cost_usd) for r in rows] == [("error", 0)]


async def _events(response: Any) -> list[dict[str, Any]]:
    found = []
    async for line in response.aiter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            found.append(json.loads(line[6:]))
    return found


async def test_an_answer_streams_and_is_kept_with_its_cost(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await fund(db, org)
    await setup_agent(db, org, tool_server)
    stream = {"Accept": "text/event-stream"}
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"agent": "support", "title": "Orders"})).json()["id"]
        body = {"content": "Where is my order 42?"}
        async with http.stream("POST", f"{API}/{cid}/messages", json=body, headers=stream) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = await _events(response)
        kinds = [e["type"] for e in events]
        assert kinds[0] == "tool_step"
        assert kinds[-1] == "message"
        assert kinds.count("delta") > 3  # written piece by piece
        text = "".join(e["content"] for e in events if e["type"] == "delta")
        kept = events[-1]["message"]
        assert kept["content"] == text
        assert "Order 42 shipped" in text
        assert kept["status"] == "complete"
        # A bare model streams the same way.
        model_cid = (await http.post(API, json={"model": "sim-chat", "title": "Tea"})).json()["id"]
        body = {"content": "Tell me about tea?"}
        async with http.stream("POST", f"{API}/{model_cid}/messages", json=body, headers=stream) as response:
            model_events = await _events(response)
        assert model_events[-1]["message"]["output_tokens"] > 0
    rows = await records(gateway_app, db, org.account_id)
    assert Decimal(kept["cost_usd"]) == sum((r.cost_usd for r in rows if r.agent_id), Decimal(0))
    assert sorted((r.operation, r.stream) for r in rows) == [
        ("chat", True),
        ("chat", True),
        ("chat", True),
        ("tool_call", False),
    ]


async def test_a_refused_streamed_answer_says_why(db: AsyncSession, gateway_app: Any, org: Org) -> None:
    db.add(AccessPolicy(
        account_id=org.account_id, scope=Scope.user, scope_id=org.admin.id,
        resource_type=ResourceType.model, resource="*", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"model": "sim-chat"})).json()["id"]
        async with http.stream(
            "POST",
            f"{API}/{cid}/messages",
            json={"content": "Hello?"},
            headers={"Accept": "text/event-stream"},
        ) as response:
            events = await _events(response)
    assert [e["type"] for e in events] == ["message", "error"]
    assert events[0]["message"]["status"] == "error"
    assert events[1]["error"]["code"] == "model_not_allowed"


async def test_the_first_exchange_suggests_a_title_by_a_metered_call(
    db: AsyncSession, gateway_app: Any, org: Org
) -> None:
    await fund(db, org)
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"model": "sim-chat"})).json()["id"]
        sent = await http.post(f"{API}/{cid}/messages", json={"content": "How do plants grow?"})
        assert sent.status_code == 201, sent.text
        titled = (await http.get(f"{API}/{cid}")).json()["title"]
        assert titled
        assert len(titled) <= 60
        assert "\n" not in titled
        # The second exchange leaves the title alone (no second title call), and so does a rename.
        await http.post(f"{API}/{cid}/messages", json={"content": "And trees?"})
        assert (await http.get(f"{API}/{cid}")).json()["title"] == titled
        # Streamed: the title arrives as its own event after the answer.
        streamed_cid = (await http.post(API, json={"model": "sim-chat"})).json()["id"]
        async with http.stream(
            "POST",
            f"{API}/{streamed_cid}/messages",
            json={"content": "Tell me about tea?"},
            headers={"Accept": "text/event-stream"},
        ) as response:
            events = await _events(response)
        assert [e["type"] for e in events][-2:] == ["message", "title"]
        assert (await http.get(f"{API}/{streamed_cid}")).json()["title"] == events[-1]["title"] != ""
    rows = await records(gateway_app, db, org.account_id)
    # Each title is a call of the person's, metered like the answers: 3 answers + 2 titles.
    assert len(rows) == 5
    assert {(r.user_id, r.model, r.status) for r in rows} == {(org.admin.id, "sim-chat", "success")}
    assert all(r.cost_usd > 0 for r in rows)


async def test_a_refused_title_call_leaves_the_conversation_untitled(
    db: AsyncSession, gateway_app: Any, org: Org
) -> None:
    await fund(db, org)
    gateway_app.state.gateway.settings = gateway_app.state.gateway.settings.model_copy(
        update={"conversation_title_model": "no-such-model"}
    )
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"model": "sim-chat"})).json()["id"]
        sent = await http.post(f"{API}/{cid}/messages", json={"content": "How do plants grow?"})
        assert sent.status_code == 201, sent.text
        assert sent.json()["message"]["status"] == "complete"
        assert (await http.get(f"{API}/{cid}")).json()["title"] == ""
    rows = await records(gateway_app, db, org.account_id)
    assert sorted(r.status for r in rows) == ["error", "success"]  # the refused title call is recorded


async def test_sending_checks_the_token_like_the_rest_of_the_api(
    db: AsyncSession, gateway_app: Any, org: Org
) -> None:
    """Sending reads the token from the gateway's directory (no query before the model is called):
    the same refusals as the REST API, and a revoked token is refused at once."""
    await fund(db, org)
    async with api(gateway_app, org.admin_token) as http:
        cid = (await http.post(API, json={"model": "sim-chat", "title": "Tokens"})).json()["id"]
        url = f"{API}/{cid}/messages"
        assert (await http.post(url, json={"content": "Hi?"})).status_code == 201
    async with api(gateway_app, org.member_token) as member:  # a gateway-only token: no 'admin' scope
        refused = await member.post(url, json={"content": "Hi?"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "token_scope_missing")
    async with api(gateway_app, "ck_live_not-a-token") as nobody:
        assert (await nobody.post(url, json={"content": "Hi?"})).status_code == 401
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=gateway_app), base_url="http://x"
    ) as bare:
        assert (await bare.post(url, json={"content": "Hi?"})).status_code == 401
    async with api(gateway_app, org.admin_token) as http:
        tokens = (await http.get("/api/v1/tokens")).json()["items"]
        mine = next(t for t in tokens if t["name"])
        assert (await http.delete(f"/api/v1/tokens/{mine['id']}")).status_code in (200, 204)
        after = await http.post(url, json={"content": "Still there?"})
        assert after.status_code == 401
