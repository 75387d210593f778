"""Every list endpoint of the REST API is paged: no request returns an unbounded list."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.groups.models import Group
from tests.builders import bearer, make_account, make_token

LISTS = ["/api/v1/groups", "/api/v1/projects", "/api/v1/providers", "/api/v1/models", "/api/v1/tokens"]


@pytest.mark.parametrize("path", LISTS)
async def test_a_page_larger_than_the_cap_is_refused(
    client: AsyncClient, db: AsyncSession, path: str
) -> None:
    _account, owner = await make_account(db, name="Caps Co")
    headers = bearer(await make_token(db, owner))
    too_big = await client.get(path, params={"per_page": "201"}, headers=headers)
    assert too_big.status_code == 422
    first = await client.get(path, headers=headers)
    assert first.status_code == 200
    assert first.json()["meta"]["per_page"] == 200


async def test_many_groups_come_in_pages(client: AsyncClient, db: AsyncSession) -> None:
    account, owner = await make_account(db, name="Many Groups Co")
    headers = bearer(await make_token(db, owner))
    for i in range(205):
        db.add(Group(account_id=account.id, name=f"Group {i:03d}", name_key=f"group {i:03d}"))
    await db.commit()
    first = (await client.get("/api/v1/groups", headers=headers)).json()
    assert len(first["items"]) == 200
    assert first["meta"] == {"page": 1, "per_page": 200, "total": 206, "pages": 2}
    assert first["items"][0]["name"] == "Default"
    second = (await client.get("/api/v1/groups", params={"page": "2"}, headers=headers)).json()
    assert [g["name"] for g in second["items"]] == [f"Group {i:03d}" for i in range(199, 205)]
