"""The agent wizard's drafting step: from a plain description of what an agent should do and for whom,
a model drafts its name, description, instructions, conversation starters and the tools it should use
among the connected integrations. The call goes through the gateway (``internal.complete_for``): access
policies, credits and metering as for any call, attributed to the person."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from cockpit.gateway.directory import Caller, Catalog, Route
from cockpit.gateway.errors import GatewayError
from cockpit.gateway.internal import complete_for
from cockpit.gateway.service import Gateway
from cockpit.policies.models import ResourceType

MAX_STARTERS = 6
MAX_TOOLS_OFFERED = 200
SYSTEM = (
    "You design AI assistants for an organisation. From the description you are given, draft the "
    "assistant: a short name (at most 5 words), a one-sentence description, its instructions (a system "
    "prompt in the second person: role, audience, tone, what to do and what not to do), up to four "
    "conversation starters a user might send first, an emoji icon, and which of the available tools it "
    "needs (only names from the list). Reply with JSON only, following the schema."
)


@dataclass
class Draft:
    name: str
    slug: str
    description: str
    icon: str
    instructions: str
    starters: list[str]
    model: str
    # {"<integration id>": ["tool", ...]}: the suggested tools per integration.
    tools: dict[str, list[str]] = field(default_factory=dict)


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64].strip("-")
    return slug or "agent"


def _allowed(gateway: Gateway, caller: Caller, catalog: Catalog, kind: ResourceType, resource: str) -> bool:
    return gateway._decide(caller, catalog, kind, resource).allowed


def choose_model(gateway: Gateway, caller: Caller, catalog: Catalog, wanted: str | None) -> Route:
    """The model asked for, or the first chat model of the catalogue the person may use."""
    if wanted:
        route = catalog.routes.get(wanted)
        if route is None:
            raise GatewayError(
                404, f"There is no model '{wanted[:100]}'.", code="model_not_found", param="model"
            )
        return route
    for name in sorted(catalog.routes):
        route = catalog.routes[name]
        chat = "chat" in (route.capabilities or frozenset({"chat"}))
        if chat and _allowed(gateway, caller, catalog, ResourceType.model, str(route.model_id)):
            return route
    raise GatewayError(
        409, "No chat model is available to you: add one to the catalogue first.", code="no_model_available"
    )


def available_tools(gateway: Gateway, caller: Caller, catalog: Catalog) -> dict[str, tuple[uuid.UUID, str]]:
    """The tools of the enabled integrations the person may use, by "<integration slug>__<tool>"."""
    found: dict[str, tuple[uuid.UUID, str]] = {}
    for integration in catalog.integrations.values():
        if not integration.enabled:
            continue
        if not _allowed(gateway, caller, catalog, ResourceType.integration, integration.slug):
            continue
        for tool in integration.tools:
            found[f"{integration.slug}__{tool['name']}"] = (integration.id, tool["name"])
            if len(found) >= MAX_TOOLS_OFFERED:
                return found
    return found


def _schema(tool_names: list[str]) -> dict[str, Any]:
    tools: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    if tool_names:
        tools["items"] = {"type": "string", "enum": tool_names}
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "icon": {"type": "string"},
            "instructions": {"type": "string"},
            "starters": {"type": "array", "items": {"type": "string"}},
            "tools": tools,
        },
        "required": ["name", "description", "icon", "instructions", "starters", "tools"],
        "additionalProperties": False,
    }


def _text(value: Any, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


async def draft_agent(
    gateway: Gateway, caller: Caller, *, description: str, model: str | None = None
) -> Draft:
    catalog = await gateway.directory.catalog(caller.account_id)
    route = choose_model(gateway, caller, catalog, model)
    tools = available_tools(gateway, caller, catalog)
    body: dict[str, Any] = {
        "model": route.name,
        "messages": [
            {"role": "system", "content": SYSTEM + "\n\nAvailable tools: " + (", ".join(tools) or "none")},
            {"role": "user", "content": description},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "agent_draft", "schema": _schema(list(tools))},
        },
        "temperature": 0.2,
    }
    answer = await complete_for(gateway, caller, body)
    try:
        content = answer["choices"][0]["message"]["content"]
        data = json.loads(content) if isinstance(content, str) else {}
    except (KeyError, IndexError, TypeError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    name = _text(data.get("name"), 100) or "New assistant"
    starters = [s for s in (_text(x, 200) for x in data.get("starters") or []) if s][:MAX_STARTERS]
    suggested: dict[str, list[str]] = {}
    for function in data.get("tools") or []:
        if isinstance(function, str) and function in tools:
            integration_id, tool = tools[function]
            suggested.setdefault(str(integration_id), []).append(tool)
    return Draft(
        name=name,
        slug=slugify(name),
        description=_text(data.get("description"), 1000),
        icon=_text(data.get("icon"), 8) or "🤖",
        instructions=_text(data.get("instructions"), 20_000) or description.strip()[:20_000],
        starters=starters,
        model=route.name,
        tools=suggested,
    )
