"""Running an agent from the official ``openai`` client: its instructions and tools, tool calls executed
against a real MCP server, every model call and tool call metered, policies enforced before spending."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import openai
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent, AgentStatus, Visibility
from cockpit.integrations.models import Integration
from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from tests.gateway.agent_tools import ToolServer, setup_agent
from tests.gateway.conftest import Org, client_for, fund, records


def _ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_an_agent_calls_its_tools_and_every_call_is_metered(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    agent, integration = await setup_agent(db, org, tool_server)
    client = client_for(gateway_app, org.member_token)
    answer = await client.chat.completions.create(
        model="agent:support", messages=_ask("Where is my order 42?")
    )
    text = answer.choices[0].message.content or ""
    assert "Order 42 shipped on 3 December" in text
    assert answer.model == "agent:support"
    extra = answer.model_extra or {}
    steps = extra["cockpit"]["steps"]
    assert [(s["tool"], s["ok"]) for s in steps] == [("lookup_order", True)]
    assert steps[0]["arguments"] == {"order_id": "Where is my order 42?"}

    rows = await records(gateway_app, db, org.account_id)
    chats = [r for r in rows if r.operation == "chat"]
    tools = [r for r in rows if r.operation == "tool_call"]
    assert len(chats) == 2
    assert len(tools) == 1
    assert {r.agent_id for r in rows} == {str(agent.id)}
    assert all(r.user_id == org.member.id and r.status == "success" for r in rows)
    assert all(r.model == "sim-chat" and r.input_tokens > 0 for r in chats)
    assert (tools[0].integration_id, tools[0].tool) == (integration.id, "lookup_order")
    # The answer's usage adds up the model calls of the run.
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == sum(r.input_tokens for r in chats)
    assert answer.usage.completion_tokens == sum(r.output_tokens for r in chats)
    # The second model call saw the agent's instructions, the tool call and its result.
    first, second = sorted(chats, key=lambda r: r.created_at)
    assert first.tool is None
    assert second.input_tokens > first.input_tokens


async def test_a_stream_carries_tool_steps_that_openai_clients_skip(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await setup_agent(db, org, tool_server)
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(
        model="agent:support", messages=_ask("Where is my order 7?"), stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    text, steps, usage = "", [], None
    async for chunk in stream:
        extra = chunk.model_extra or {}
        if "cockpit" in extra:
            steps.append(extra["cockpit"]["tool_step"])
            assert chunk.choices == []
        for choice in chunk.choices:
            text += choice.delta.content or ""
        usage = chunk.usage or usage
    assert "Order 7 is waiting for payment." in text
    assert [s["tool"] for s in steps] == ["lookup_order"]
    assert usage is not None
    assert usage.total_tokens > 0


async def test_a_failing_tool_is_recorded_and_the_agent_still_answers(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await setup_agent(db, org, tool_server)
    client = client_for(gateway_app, org.member_token)
    answer = await client.chat.completions.create(
        model="agent:support", messages=_ask("Please refund the payment of my order.")
    )
    assert "payments service is down" in (answer.choices[0].message.content or "")
    rows = await records(gateway_app, db, org.account_id)
    tool = next(r for r in rows if r.operation == "tool_call")
    assert (tool.tool, tool.status, tool.error_type) == ("refund_payment", "error", "tool_failed")
    assert "payments service is down" in (tool.error_message or "")


async def test_chosen_tools_only_and_ask_before_running_is_not_run_from_the_api(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    integration_id = uuid.uuid4()
    await setup_agent(db, org, tool_server, tools={})
    agent = await db.scalar(select(Agent).where(Agent.account_id == org.account_id))
    integration = await db.scalar(select(Integration).where(Integration.account_id == org.account_id))
    assert agent is not None
    assert integration is not None
    assert integration.id != integration_id
    agent.tools = {
        str(integration.id): {"all": False, "names": ["lookup_order"], "confirm": ["lookup_order"]}
    }
    await db.commit()
    client = client_for(gateway_app, org.member_token)
    answer = await client.chat.completions.create(
        model="agent:support", messages=_ask("Refund the payment of order 42?")
    )
    steps = (answer.model_extra or {})["cockpit"]["steps"]
    # refund_payment was not offered; lookup_order needs the person's approval: not run.
    assert [s["tool"] for s in steps] == ["lookup_order"]
    assert steps[0]["ok"] is False
    assert "approves" in steps[0]["error"]
    assert "Order 42 shipped" not in (answer.choices[0].message.content or "")


async def test_policies_refuse_before_anything_is_spent(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await setup_agent(db, org, tool_server)
    db.add(AccessPolicy(
        account_id=org.account_id, scope=Scope.user, scope_id=org.member.id,
        resource_type=ResourceType.integration, resource="orders", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await client.chat.completions.create(model="agent:support", messages=_ask("Where is order 42?"))
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["code"] == "integration_not_allowed"
    assert "Order desk" in body["message"]
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.status, r.input_tokens, r.cost_usd) for r in rows] == [("error", 0, 0)]

    db.add(AccessPolicy(
        account_id=org.account_id, scope=Scope.user, scope_id=org.member.id,
        resource_type=ResourceType.agent, resource="support", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await client.chat.completions.create(model="agent:support", messages=_ask("Hello?"))
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "agent_not_allowed"
    listed = [m.id for m in (await client.models.list()).data]
    assert "agent:support" not in listed


async def test_inactive_unknown_and_invisible_agents(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await setup_agent(db, org, tool_server, status=AgentStatus.inactive)
    client = client_for(gateway_app, org.member_token)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await client.chat.completions.create(model="agent:support", messages=_ask("Hello?"))
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "agent_inactive"
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="agent:nobody", messages=_ask("Hello?"))
    assert "agent:support" not in [m.id for m in (await client.models.list()).data]

    agent = await db.scalar(select(Agent).where(Agent.account_id == org.account_id))
    assert agent is not None
    agent.status = AgentStatus.active
    agent.visibility = Visibility.groups
    agent.group_ids = [str(uuid.uuid4())]  # not the member's group
    await db.commit()
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="agent:support", messages=_ask("Hello?"))
    admin = client_for(gateway_app, org.admin_token)
    assert "agent:support" in [m.id for m in (await admin.models.list()).data]
    agent.group_ids = [str(org.member.group_id)]
    await db.commit()
    assert "agent:support" in [m.id for m in (await client.models.list()).data]
    found = await client.models.retrieve("agent:support")
    assert found.owned_by == "cockpit-agent"


async def test_agents_bring_their_own_tools(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await setup_agent(db, org, tool_server)
    client = client_for(gateway_app, org.member_token)
    tools: Any = [{"type": "function", "function": {"name": "x", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model="agent:support", messages=_ask("Hi?"), tools=tools)
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["param"] == "tools"


async def test_a_tool_price_in_credits_is_recorded(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await fund(db, org)
    _agent, integration = await setup_agent(db, org, tool_server)
    integration.price_credits = Decimal("2.5")
    await db.commit()
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="agent:support", messages=_ask("Where is my order 42?"))
    rows = await records(gateway_app, db, org.account_id)
    tool = next(r for r in rows if r.operation == "tool_call")
    assert tool.credits == Decimal("2.5")
    assert tool.credit_lease_id is not None
    assert tool.cost_usd == Decimal("0.025")  # the credits' worth in USD at 100 credits per $1


async def test_the_organisations_custom_instructions_come_first(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    from cockpit.tenancy.models import Account

    await setup_agent(db, org, tool_server)
    account = await db.get(Account, org.account_id)
    assert account is not None
    account.custom_instructions = "We are Gateway Co. Answer in British English."
    account.store_request_content = True
    await db.commit()
    client = client_for(gateway_app, org.member_token)
    await client.chat.completions.create(model="agent:support", messages=_ask("Hello there?"))
    rows = await records(gateway_app, db, org.account_id)
    sent = rows[0].request_content
    assert sent is not None
    assert sent["messages"][0] == {
        "role": "system",
        "content": "We are Gateway Co. Answer in British English.\n\nYou help customers.",
    }
    assert sent["messages"][1] == {"role": "user", "content": "Hello there?"}


async def test_a_stream_relays_the_answer_as_the_model_writes_it(
    db: AsyncSession, gateway_app: Any, org: Org, tool_server: ToolServer
) -> None:
    await setup_agent(db, org, tool_server)
    client = client_for(gateway_app, org.member_token)
    stream = await client.chat.completions.create(
        model="agent:support", messages=_ask("Tell me about gardening."), stream=True
    )
    pieces = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    # The simulated model writes in pieces of 1-3 words: they arrive as they are written.
    assert len(pieces) > 5
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.operation, r.stream, r.status) for r in rows] == [("chat", True, "success")]
    assert rows[0].output_tokens > 0
