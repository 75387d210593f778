"""The analytics and exports API: the same figures as the rows, names instead of ids, money as exact
strings, members limited to their own calls, clear errors for bad filters, another account's
objects not found."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.config import Settings
from cockpit.jobs.worker import Worker
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.usage.models import UsageRecord
from cockpit.users.models import UserRole
from tests.analytics.data import END, START, expected, make_calls
from tests.builders import bearer, make_account, make_token, make_user

API = "/api/v1"
PERIOD = {"from": START.isoformat(), "to": END.isoformat()}


class Org:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


async def org(db: AsyncSession) -> Org:
    account, owner = await make_account(db, name="Acme")
    member = await make_user(db, account, role=UserRole.member)
    member.name = "Mia Member"
    calls = make_calls(account.id, n=200)
    for row in calls.rows[:30]:
        row["user_id"] = member.id
    await db.execute(insert(UsageRecord), calls.rows)
    await db.commit()
    return Org(
        account=account, owner=owner, member=member, rows=calls.rows,
        admin=bearer(await make_token(db, owner)), mine=bearer(await make_token(db, member)),
    )  # fmt: skip


async def test_the_summary_and_a_breakdown_match_the_rows(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)

    summary = await client.get(f"{API}/analytics/summary", params=PERIOD, headers=o.admin)
    by_user = await client.get(f"{API}/analytics/breakdown", params={**PERIOD, "by": "user"}, headers=o.admin)

    assert summary.status_code == 200, summary.text
    body = summary.json()
    whole = expected(o.rows)
    assert (body["requests"], body["errors"], body["active_users"]) == (
        whole.requests,
        whole.errors,
        whole.active_users,
    )
    assert Decimal(body["cost_usd"]) == whole.cost_usd
    assert body["from"] == START.isoformat().replace("+00:00", "Z")
    assert body["previous"]["requests"] == 0
    assert by_user.status_code == 200, by_user.text
    items = by_user.json()["items"]
    mia = next(i for i in items if i["key"] == str(o.member.id))
    assert mia["label"] == "Mia Member"
    assert mia["requests"] == 30
    assert {i["label"] for i in items} <= {"Mia Member", "Deleted user", "No user"}  # never a raw id
    assert abs(sum(Decimal(i["share"]) for i in items) - 1) <= Decimal("0.00001")  # each to the millionth


async def test_members_see_their_own_calls_only(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)

    mine = await client.get(f"{API}/analytics/summary", params=PERIOD, headers=o.mine)
    theirs = await client.get(
        f"{API}/analytics/summary", params={**PERIOD, "user_id": str(o.owner.id)}, headers=o.mine
    )

    assert mine.json()["requests"] == 30
    assert theirs.json()["requests"] == 0


async def test_timeseries_top_users_and_pivot_add_up(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    params = {**PERIOD, "granularity": "day", "stack_by": "model"}

    line = (await client.get(f"{API}/analytics/timeseries", params=params, headers=o.admin)).json()
    top = (await client.get(f"{API}/analytics/top-users", params=PERIOD, headers=o.admin)).json()
    table = await client.get(
        f"{API}/analytics/pivot", params={**PERIOD, "columns": "agent", "value": "requests"}, headers=o.admin
    )

    assert line["zone"] == "UTC"
    assert sum(p["requests"] for p in line["points"]) == len(o.rows)
    assert sum(p["requests"] for s in line["stacks"] for p in s["points"]) == len(o.rows)
    assert len(top["items"]) == 10
    pivot = table.json()
    assert pivot["total"] == len(o.rows)
    assert {c["label"] for c in pivot["columns"]} == {"helper", "research", "Direct API"}
    for row in pivot["rows"]:
        assert sum(row["cells"]) == row["total"]


async def test_bad_filters_are_refused_and_foreign_projects_are_not_found(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    _, stranger = await make_account(db, name="Other")
    other = bearer(await make_token(db, stranger))
    url = f"{API}/analytics/summary"

    naive = await client.get(
        url, params={"from": "2026-11-01T00:00:00", "to": END.isoformat()}, headers=o.admin
    )
    backwards = await client.get(
        url, params={"from": END.isoformat(), "to": START.isoformat()}, headers=o.admin
    )
    unknown = await client.get(f"{API}/analytics/breakdown", params={"by": "colour"}, headers=o.admin)
    foreign = await client.get(url, params={"project_id": str(uuid.uuid4())}, headers=o.mine)
    outsider = await client.get(url, params=PERIOD, headers=other)

    assert naive.status_code == 422
    assert naive.json()["error"]["details"][0]["field"] == "from"
    assert backwards.status_code == 422
    assert unknown.status_code == 422
    assert foreign.status_code == 404
    assert outsider.json()["requests"] == 0  # another account's calls are never counted


async def test_an_export_is_made_in_the_background_and_downloaded(
    client: AsyncClient, db: AsyncSession, settings: Settings, database_url: str
) -> None:
    o = await org(db)

    asked = await client.post(f"{API}/exports", json={"format": "xlsx", **PERIOD}, headers=o.admin)
    assert asked.status_code == 202, asked.text
    export = asked.json()
    assert (export["status"], export["download_url"]) == ("queued", None)
    engine = make_engine(database_url)
    try:
        await Worker(make_sessionmaker(engine), settings, schedules=False).run_until_idle()
    finally:
        await engine.dispose()
    done = (await client.get(f"{API}/exports/{export['id']}", headers=o.admin)).json()
    assert (done["status"], done["progress"]) == ("done", 100)
    got = await client.get(done["download_url"], headers=o.admin)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert got.content[:2] == b"PK"
    assert (await client.get(f"{API}/exports/{export['id']}", headers=o.mine)).status_code == 404
    refused = await client.post(f"{API}/exports", json={"format": "pdf", "view": "calls"}, headers=o.admin)
    assert refused.status_code == 422


HOSTILE = ["a\x00b", "é" * 5000, "[" * 2000, "1e999", "-1", "9" * 40, "' OR 1=1 --"]
FIELDS = [
    "model", "agent", "user_id", "group_id", "api_token_id", "project_id", "operation", "status", "from",
    "to", "by", "metric", "columns", "value", "granularity", "stack_by", "limit", "offset",
]  # fmt: skip


async def test_hostile_values_get_a_clear_answer_never_a_server_error(
    client: AsyncClient, db: AsyncSession
) -> None:
    """Every filter of every view with hostile text, undecodable bytes (a lone surrogate as
    %ED%A0%80, NUL, overlong UTF-8), hostile export bodies and paging: 200, 400 or 422, never 500."""
    o = await org(db)
    answers: dict[int, int] = {}

    def seen(status: int) -> None:
        answers[status] = answers.get(status, 0) + 1

    for view in ("summary", "timeseries", "breakdown", "top-users", "pivot"):
        for field in FIELDS:
            for value in HOSTILE:
                seen((await client.get(f"{API}/analytics/{view}", params={**PERIOD, field: value},
                                       headers=o.admin)).status_code)  # fmt: skip
            for raw in ("%ED%A0%80", "%00", "%FF", "%C0%AF"):
                answer = await client.get(f"{API}/analytics/{view}?{field}=x{raw}y", headers=o.admin)
                seen(answer.status_code)
    bodies = [
        '{"format": "pdf", "view": "cost", "model": "x\\ud800y"}',
        '{"format": "csv", "view": "calls", "from": "x\\u0000"}',
        '{"format": "xlsx", "view": "cost", "agent": "' + "[" * 10000 + '"}',
        '{"format": "pdf", "view": "calls"}',
        "[1, 2]",
        '"x"',
    ]
    for body in bodies:
        answer = await client.post(
            f"{API}/exports", content=body, headers={**o.admin, "content-type": "application/json"}
        )
        assert answer.status_code in (400, 422), (body[:40], answer.text)
    for params in ({"page": "-1"}, {"per_page": "100000000"}, {"order": "x\x00"}, {"order": "elsewhere"}):
        seen((await client.get(f"{API}/credits/pace", params=params, headers=o.admin)).status_code)
    assert set(answers) <= {200, 400, 422}, answers
    assert answers.get(422, 0) > 0  # bad values are refused, not all quietly accepted
