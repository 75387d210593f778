"""The demo organisation's agents and integrations: Cockpit's own MCP server connected as an
integration (so that the "Cockpit helper" answers "how many credits do I have left?" offline, for
whoever asks), and the two project agents whose calls fill the demo's history."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent, AgentStatus, Visibility
from cockpit.api.mcp import tool_specs
from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.integrations.models import AuthType, Integration, IntegrationKind, Transport
from cockpit.kit.time import utcnow
from cockpit.projects.models import Project
from cockpit.providers.models import Model

COCKPIT_SLUG = "cockpit"


def _agent(actor: Actor, **values: Any) -> Agent:
    base: dict[str, Any] = {
        "account_id": actor.account_id, "icon": "🤖", "tools": {}, "starters": [], "group_ids": [],
        "integration_ids": [], "max_steps": 4, "status": AgentStatus.active, "created_by": actor.user_id,
    }  # fmt: skip
    base.update(values)
    return Agent(id=uuid.uuid4(), **base)


async def seed_agents(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    models: list[Model],
    assistant: Project,
    research: Project,
) -> dict[str, str]:
    """The integration and agents; returns each project agent's slug → id (for the seeded calls)."""
    by_name = {m.name: m for m in models}
    cockpit = Integration(
        id=uuid.uuid4(), account_id=actor.account_id, name="Cockpit", slug=COCKPIT_SLUG,
        description="Cockpit's own MCP server: your credits, usage, requests and models.",
        kind=IntegrationKind.mcp, transport=Transport.streamable_http, url=f"{settings.base_url}/mcp",
        auth_type=AuthType.none, auth_settings={"on_behalf_of": True}, tools=await tool_specs(),
        tools_listed_at=utcnow(), last_test_ok=True, last_test_message="Cockpit's own MCP server",
        created_by=actor.user_id,
    )  # fmt: skip
    session.add(cockpit)
    agents = [
        _agent(
            actor, name="Cockpit helper", slug="cockpit-helper", is_default=True,
            description="Answers questions about your credits, usage and the models you may use.",
            instructions="You help people of the organisation understand their use of AI in Cockpit. "
            "Use the Cockpit tools to look up their credits, usage, requests and models; answer briefly.",
            model_id=by_name["gpt-4o-mini"].id, integration_ids=[str(cockpit.id)],
            starters=["How many credits do I have left?", "What did I spend this month?",
                      "Which models may I use?"],
            visibility=Visibility.account,
        ),
        _agent(
            actor, name="Support triage bot", slug="support-triage-bot", project_id=assistant.id,
            description="Sorts incoming support tickets and drafts a first answer.",
            instructions="You triage customer support tickets: classify, set a priority, draft a reply.",
            model_id=by_name["gpt-4o-mini"].id, visibility=Visibility.project, is_default=True,
            starters=["Triage this ticket:", "Draft a polite answer to this complaint:"],
        ),
        _agent(
            actor, name="Release notes agent", slug="release-notes-agent", project_id=research.id,
            description="Turns merged changes into release notes for customers.",
            instructions="You write clear, short release notes from a list of changes.",
            model_id=by_name["claude-sonnet-4"].id, visibility=Visibility.project, icon="📝",
            starters=["Write release notes for these changes:"],
        ),
    ]  # fmt: skip
    session.add_all(agents)
    await session.flush()
    await audit.record(
        session, actor, "integration.created", target=Target("integration", cockpit.id, cockpit.name),
        after={"name": cockpit.name, "kind": "mcp", "url": cockpit.url},
    )  # fmt: skip
    for agent in agents:
        await audit.record(
            session, actor, "agent.created", target=Target("agent", agent.id, agent.name),
            after={"name": agent.name, "slug": agent.slug},
        )  # fmt: skip
    return {agent.slug: str(agent.id) for agent in agents}


async def point_cockpit_integration(session: AsyncSession, settings: Settings) -> None:
    """At every `cockpit demo`: Cockpit's own MCP server is where this demo now listens."""
    rows = await session.scalars(select(Integration).where(Integration.slug == COCKPIT_SLUG))
    for integration in rows:
        if (integration.auth_settings or {}).get("on_behalf_of") is True:
            integration.url = f"{settings.base_url}/mcp"
