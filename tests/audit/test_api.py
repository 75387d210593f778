"""The audit log over the REST API: search, filters, pagination, export, verification and access."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.audit.service import CSV_COLUMNS
from cockpit.tenancy.models import Account
from cockpit.users.models import UserRole
from tests.builders import bearer, make_account, make_token, make_user

AUDIT = AuditEntry.__table__


@dataclass
class Org:
    account_id: uuid.UUID
    owner_id: uuid.UUID
    owner_email: str
    owner_token: str
    admin_id: uuid.UUID
    admin_email: str
    admin_token: str


async def _org(db: AsyncSession, client: AsyncClient) -> Org:
    """Six entries: 1 account.created, 2 user.created, 3-4 api_token.created (owner, admin),
    5 account.updated by the owner (rename), 6 account.updated by the admin (time zone)."""
    account, owner = await make_account(db, name="Audit Co")
    owner_token = await make_token(db, owner, name="owner token")
    admin = await make_user(db, account, role=UserRole.admin)
    admin_token = await make_token(db, admin, name="admin token")
    org = Org(account.id, owner.id, owner.email, owner_token, admin.id, admin.email, admin_token)
    renamed = await client.patch("/api/v1/account", json={"name": "Zephyr Labs"}, headers=bearer(owner_token))
    assert renamed.status_code == 200, renamed.text
    moved = await client.patch(
        "/api/v1/account", json={"timezone": "Europe/Paris"}, headers=bearer(admin_token)
    )
    assert moved.status_code == 200, moved.text
    return org


async def _list(client: AsyncClient, org: Org, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/audit", params=params, headers=bearer(org.owner_token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _seqs(client: AsyncClient, org: Org, **params: Any) -> list[int]:
    return [item["seq"] for item in (await _list(client, org, **params))["items"]]


async def test_entries_come_newest_first_with_page_meta(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)

    body = await _list(client, org)

    assert [i["seq"] for i in body["items"]] == [6, 5, 4, 3, 2, 1]
    assert [i["action"] for i in body["items"]][:2] == ["account.updated", "account.updated"]
    assert body["items"][-1]["action"] == "account.created"
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 6, "pages": 1}


async def test_pagination_splits_the_trail(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)

    first = await _list(client, org, per_page=4)
    second = await _list(client, org, per_page=4, page=2)
    beyond = await _list(client, org, per_page=4, page=3)

    assert [i["seq"] for i in first["items"]] == [6, 5, 4, 3]
    assert first["meta"] == {"page": 1, "per_page": 4, "total": 6, "pages": 2}
    assert [i["seq"] for i in second["items"]] == [2, 1]
    assert second["meta"] == {"page": 2, "per_page": 4, "total": 6, "pages": 2}
    assert beyond["items"] == []
    assert beyond["meta"]["total"] == 6


@pytest.mark.parametrize("params", [{"per_page": 0}, {"per_page": 201}, {"page": 0}])
async def test_out_of_range_paging_is_refused(
    db: AsyncSession, client: AsyncClient, params: dict[str, int]
) -> None:
    org = await _org(db, client)
    response = await client.get("/api/v1/audit", params=params, headers=bearer(org.owner_token))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


async def test_q_matches_the_actor_email(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)
    # The admin's e-mail appears only as the actor of entry 6 (searching is case-insensitive).
    assert await _seqs(client, org, q=org.admin_email.upper()) == [6]
    assert await _seqs(client, org, q=org.admin_email.split("@")[0]) == [6]


async def test_q_matches_the_action_and_the_target_label(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)
    assert await _seqs(client, org, q="token.creat") == [4, 3]
    assert await _seqs(client, org, q="zephyr") == [6, 5]  # the account's label after the rename
    assert await _seqs(client, org, q="admin token") == [4]
    assert await _seqs(client, org, q="nothing like this") == []


async def test_percent_and_underscore_in_q_are_literal(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)
    sale = await client.patch(
        "/api/v1/account", json={"name": "Sale 50%_off"}, headers=bearer(org.owner_token)
    )
    assert sale.status_code == 200

    assert await _seqs(client, org, q="50%_off") == [7]
    assert await _seqs(client, org, q="%") == [7]
    assert await _seqs(client, org, q="_off") == [7]
    # As LIKE wildcards these would match "account.updated" and "api_token...".
    assert await _seqs(client, org, q="account%updated") == []
    assert await _seqs(client, org, q="a_i") == []
    assert await _seqs(client, org, q="api_token") == [4, 3]


async def test_action_and_actor_filters(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)
    assert await _seqs(client, org, action="account.updated") == [6, 5]
    assert await _seqs(client, org, action="account.update") == []  # exact, not a prefix
    assert await _seqs(client, org, actor_id=str(org.owner_id)) == [5]
    assert await _seqs(client, org, actor_id=str(org.admin_id)) == [6]
    assert await _seqs(client, org, action="account.updated", q=org.admin_email) == [6]
    assert await _seqs(client, org, actor_id=str(uuid.uuid4())) == []


async def test_since_is_inclusive_and_until_exclusive(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)
    items = (await _list(client, org))["items"]
    created = {i["seq"]: datetime.fromisoformat(i["created_at"]) for i in items}
    pivot = created[5]
    assert created[1] < pivot  # the owner's rename came after the account was set up

    in_paris_summer = timezone(timedelta(hours=2))
    since = await _seqs(client, org, since=pivot.astimezone(in_paris_summer).isoformat())
    until = await _seqs(client, org, until=pivot.isoformat())

    assert since == sorted((s for s, t in created.items() if t >= pivot), reverse=True)
    assert 5 in since
    assert 1 not in since
    assert until == sorted((s for s, t in created.items() if t < pivot), reverse=True)
    assert 1 in until
    assert 5 not in until
    both = await _seqs(
        client, org, since=pivot.isoformat(), until=(pivot + timedelta(microseconds=1)).isoformat()
    )
    assert both == sorted((s for s, t in created.items() if t == pivot), reverse=True)
    assert await _seqs(client, org, since=(pivot + timedelta(days=1)).isoformat()) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"until": "2026-01-01T00:00:00"}, "until"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "yesterday"}, "since"),
    ],
)
async def test_bad_time_ranges_are_refused(
    db: AsyncSession, client: AsyncClient, params: dict[str, str], field: str
) -> None:
    org = await _org(db, client)
    response = await client.get("/api/v1/audit", params=params, headers=bearer(org.owner_token))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["details"][0]["field"] == field


async def test_get_one_entry(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)
    newest = (await _list(client, org))["items"][0]

    response = await client.get(f"/api/v1/audit/{newest['id']}", headers=bearer(org.owner_token))

    assert response.status_code == 200
    assert response.json() == newest


async def test_another_accounts_entry_is_not_found(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)
    _, stranger = await make_account(db, name="Elsewhere")
    stranger_token = await make_token(db, stranger)
    theirs = (await client.get("/api/v1/audit", headers=bearer(stranger_token))).json()["items"][0]

    response = await client.get(f"/api/v1/audit/{theirs['id']}", headers=bearer(org.owner_token))
    unknown = await client.get(f"/api/v1/audit/{uuid.uuid4()}", headers=bearer(org.owner_token))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "audit_entry_not_found"
    assert unknown.status_code == 404
    # And their trail never shows up in ours.
    assert "Elsewhere" not in {i["target_label"] for i in (await _list(client, org))["items"]}


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_export_returns_the_filtered_trail_as_csv(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)

    response = await client.get(
        "/api/v1/audit/export", params={"action": "account.updated"}, headers=bearer(org.owner_token)
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert ".csv" in response.headers["content-disposition"]
    header, *rows = _rows(response.text)
    assert header == CSV_COLUMNS
    records = [dict(zip(header, row, strict=True)) for row in rows]
    assert [r["seq"] for r in records] == ["6", "5"]
    assert [r["actor"] for r in records] == [org.admin_email, org.owner_email]
    assert records[1]["before"] == '{"name": "Audit Co"}'
    assert records[1]["after"] == '{"name": "Zephyr Labs"}'
    assert records[0]["target_label"] == "Zephyr Labs"
    assert records[0]["ip"] == "203.0.113.7"

    everything = await client.get("/api/v1/audit/export", headers=bearer(org.owner_token))
    assert [row[0] for row in _rows(everything.text)[1:]] == ["6", "5", "4", "3", "2", "1"]


async def test_export_defuses_spreadsheet_formulas(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)
    formula = '=HYPERLINK("http://evil.example","click")'
    renamed = await client.patch("/api/v1/account", json={"name": formula}, headers=bearer(org.owner_token))
    assert renamed.status_code == 200
    other = await client.patch(
        "/api/v1/account", json={"name": "@SUM(A1:A9)"}, headers=bearer(org.owner_token)
    )
    assert other.status_code == 200

    response = await client.get("/api/v1/audit/export", params={"q": "("}, headers=bearer(org.owner_token))

    header, *rows = _rows(response.text)
    labels = [dict(zip(header, row, strict=True))["target_label"] for row in rows]
    assert labels == ["'@SUM(A1:A9)", "'" + formula]
    assert not any(cell.startswith(("=", "@", "+", "-")) for row in rows for cell in row)


async def test_verify_reports_an_intact_then_an_altered_chain(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)
    newest = (await _list(client, org))["items"][0]

    intact = await client.get("/api/v1/audit/verify", headers=bearer(org.owner_token))

    assert intact.status_code == 200
    assert intact.json() == {"ok": True, "entries": 6, "head": newest["hash"], "problem": None}

    await db.execute(
        update(AUDIT)
        .where((AUDIT.c.account_id == org.account_id) & (AUDIT.c.seq == 3))
        .values(target_label="x")
    )
    await db.commit()
    broken = (await client.get("/api/v1/audit/verify", headers=bearer(org.owner_token))).json()

    assert broken["ok"] is False
    assert broken["entries"] == 2
    assert "entry #3" in broken["problem"]
    assert "altered" in broken["problem"]


async def test_members_may_not_read_the_audit_log(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)
    newest = (await _list(client, org))["items"][0]
    account = await db.get(Account, org.account_id)
    assert account is not None
    member = await make_user(db, account, role=UserRole.member)
    member_token = await make_token(db, member)

    for path in (
        "/api/v1/audit",
        "/api/v1/audit/export",
        "/api/v1/audit/verify",
        f"/api/v1/audit/{newest['id']}",
    ):
        response = await client.get(path, headers=bearer(member_token))
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "not_permitted", path
        assert "seq" not in response.text


async def test_the_audit_log_needs_a_token(db: AsyncSession, client: AsyncClient) -> None:
    await _org(db, client)
    for path in ("/api/v1/audit", "/api/v1/audit/export", "/api/v1/audit/verify"):
        response = await client.get(path)
        assert response.status_code == 401, path


async def test_an_admin_write_records_who_what_target_and_change(
    db: AsyncSession, client: AsyncClient
) -> None:
    org = await _org(db, client)

    response = await client.patch(
        "/api/v1/account", json={"name": "Renamed Co"},
        headers={**bearer(org.admin_token), "User-Agent": "ops-script/2.1"},
    )  # fmt: skip

    assert response.status_code == 200
    entry = (await _list(client, org))["items"][0]
    assert entry["seq"] == 7
    assert entry["action"] == "account.updated"
    assert entry["actor_id"] == str(org.admin_id)
    assert entry["actor_label"] == org.admin_email
    assert entry["actor_kind"] == "token"
    assert (entry["target_type"], entry["target_id"], entry["target_label"]) == (
        "account", str(org.account_id), "Renamed Co",
    )  # fmt: skip
    # Only the changed field: the time zone stayed the same.
    assert entry["before"] == {"name": "Zephyr Labs"}
    assert entry["after"] == {"name": "Renamed Co"}
    assert entry["ip"] == "203.0.113.7"
    assert entry["user_agent"] == "ops-script/2.1"


async def test_a_write_that_changes_nothing_records_nothing(db: AsyncSession, client: AsyncClient) -> None:
    org = await _org(db, client)

    response = await client.patch(
        "/api/v1/account",
        json={"name": "Zephyr Labs", "timezone": "Europe/Paris"},
        headers=bearer(org.owner_token),
    )

    assert response.status_code == 200
    assert (await _list(client, org))["meta"]["total"] == 6
