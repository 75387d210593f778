"""The agents and integrations endpoints probed as an attacker would: undecodable and hostile text,
deeply nested and huge bodies, wrong types, and the other account's ids. Every answer is a clear
4xx (never a 500) and nothing is stored."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent
from cockpit.integrations.models import Integration
from tests.agents.conftest import AGENTS, create, make_team

INTEGRATIONS = "/api/v1/integrations"
CLEAR = {400, 403, 404, 409, 413, 422}


def _bodies(field: str) -> list[str]:
    """Raw JSON bodies with one hostile value for ``field``."""
    return [
        f'{{"{field}": "x\\ud800y"}}',  # a lone surrogate
        f'{{"{field}": "x\\u0000y"}}',  # NUL
        f'{{"{field}": ' + "[" * 5000 + "]" * 5000 + "}",  # deeply nested
        f'{{"{field}": {{"a": ' * 300 + "1" + "}" * 300 + "}",
        f'{{"{field}": "' + "x" * 300_000 + '"}',  # far too long
        f'{{"{field}": 12345678901234567890123456789}}',
        f'{{"{field}": null}}',
        "[]",
        '"just a string"',
        "{not json",
    ]


async def _count(db: AsyncSession, model: type[Any], account_id: Any) -> int:
    await db.commit()
    return int(
        await db.scalar(select(func.count()).select_from(model).where(model.account_id == account_id)) or 0
    )


async def test_hostile_bodies_get_a_clear_answer_and_store_nothing(
    db: AsyncSession, client: AsyncClient
) -> None:
    team = await make_team(db)
    headers = {**team.admin_headers, "content-type": "application/json"}
    agents_before = await _count(db, Agent, team.account.id)
    integrations_before = await _count(db, Integration, team.account.id)
    answers: dict[int, int] = {}
    agent_fields = (
        "name",
        "slug",
        "model",
        "instructions",
        "tools",
        "starters",
        "integration_ids",
        "temperature",
    )
    for field in agent_fields:
        for body in _bodies(field):
            for url in (AGENTS, f"{AGENTS}/draft", f"{AGENTS}/preview"):
                answer = await client.post(url, content=body, headers=headers)
                assert answer.status_code in CLEAR, (
                    url,
                    field,
                    body[:60],
                    answer.status_code,
                    answer.text[:200],
                )
                answers[answer.status_code] = answers.get(answer.status_code, 0) + 1
    for field in ("name", "url", "kind", "auth", "openapi_document", "price_credits", "timeout_seconds"):
        for body in _bodies(field):
            answer = await client.post(INTEGRATIONS, content=body, headers=headers)
            assert answer.status_code in CLEAR, (field, body[:60], answer.status_code, answer.text[:200])
    assert await _count(db, Agent, team.account.id) == agents_before
    assert await _count(db, Integration, team.account.id) == integrations_before
    assert answers.get(422, 0) > 0


async def test_the_other_accounts_ids_are_not_found(db: AsyncSession, client: AsyncClient) -> None:
    ours, theirs = await make_team(db, name="Ours"), await make_team(db, name="Theirs")
    agent = await create(client, theirs.admin_headers, name="Their agent")
    h = ours.admin_headers
    for method, url in (
        ("GET", f"{AGENTS}/{agent['id']}"),
        ("PATCH", f"{AGENTS}/{agent['id']}"),
        ("DELETE", f"{AGENTS}/{agent['id']}?confirm=Their%20agent"),
        ("POST", f"{AGENTS}/{agent['id']}/deactivate"),
        ("POST", f"{AGENTS}/{agent['id']}/set-default"),
        ("POST", f"{AGENTS}/{agent['id']}/duplicate"),
        ("GET", f"{INTEGRATIONS}/{theirs.wiki_id}"),
        ("PATCH", f"{INTEGRATIONS}/{theirs.wiki_id}"),
        ("DELETE", f"{INTEGRATIONS}/{theirs.wiki_id}"),
        ("POST", f"{INTEGRATIONS}/{theirs.wiki_id}/test"),
        ("GET", f"{INTEGRATIONS}/{theirs.wiki_id}/tools"),
    ):
        answer = await client.request(
            method, url, headers=h, json={"name": "Mine now"} if method == "PATCH" else None
        )
        assert answer.status_code == 404, (method, url, answer.text)
    # Naming their integration or their project in one of ours is refused too.
    refused = await client.post(
        AGENTS,
        json={"name": "Sneaky", "model": "gpt-4o", "integration_ids": [str(theirs.wiki_id)]},
        headers=h,
    )
    assert refused.status_code == 422
    refused = await client.post(
        AGENTS, json={"name": "Sneaky", "model": "gpt-4o", "project_id": str(theirs.project_id)}, headers=h
    )
    assert refused.status_code in (404, 422)
    stored = await db.get(Agent, __import__("uuid").UUID(agent["id"]), populate_existing=True)
    assert stored is not None
    assert stored.name == "Their agent"
    assert stored.status.value == "active"
