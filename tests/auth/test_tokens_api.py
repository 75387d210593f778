"""The REST API for API tokens (/api/v1/tokens) and the caller (/api/v1/me), with bearer tokens."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.auth.models import ApiToken
from cockpit.kit.time import utcnow
from cockpit.users.models import User, UserRole, UserStatus
from tests.builders import bearer, make_account, make_token, make_user

CLIENT_IP = "203.0.113.7"
AGENT = "deploy-bot/2.1 (tests)"


# ---- helpers ----


def auth(raw: str) -> dict[str, str]:
    return {**bearer(raw), "User-Agent": AGENT}


async def create(client: AsyncClient, raw: str, body: dict[str, Any]) -> Response:
    return await client.post("/api/v1/tokens", json=body, headers=auth(raw))


async def rows(db: AsyncSession, stmt: Any) -> list[Any]:
    """Rows as committed now (ends the snapshot, refreshes objects already loaded)."""
    await db.commit()
    return list((await db.scalars(stmt.execution_options(populate_existing=True))).all())


async def count(db: AsyncSession, model: Any) -> int:
    await db.commit()
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def write(db: AsyncSession, stmt: Any) -> None:
    await db.commit()
    await db.execute(stmt)
    await db.commit()


async def token_row(db: AsyncSession, raw: str) -> ApiToken:
    [row] = await rows(
        db, select(ApiToken).where(ApiToken.token_hash == hashlib.sha256(raw.encode()).hexdigest())
    )
    return row


def error(response: Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


def fields(response: Response) -> list[str]:
    return [d["field"] for d in error(response).get("details", [])]


# ---- creating tokens ----


async def test_create_returns_the_token_once(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    admin_token = await make_token(db, owner)

    created = await create(client, admin_token, {"name": "  CI pipeline ", "scopes": ["gateway", "admin"]})

    assert created.status_code == 201
    body = created.json()
    raw = body["token"]
    assert raw.startswith("ck_")
    assert len(raw) > 30
    assert body["name"] == "CI pipeline"
    assert body["status"] == "active"
    assert sorted(body["scopes"]) == ["admin", "gateway"]
    assert body["user_id"] == str(owner.id)
    assert raw.startswith(body["prefix"])
    # The new token works...
    me = await client.get("/api/v1/me", headers=bearer(raw))
    assert me.status_code == 200
    assert me.json()["email"] == owner.email
    assert sorted(me.json()["token_scopes"]) == ["admin", "gateway"]
    # ...but is never shown again.
    listing = await client.get("/api/v1/tokens", headers=bearer(admin_token))
    single = await client.get(f"/api/v1/tokens/{body['id']}", headers=bearer(admin_token))
    assert listing.status_code == 200
    assert single.status_code == 200
    assert body["id"] in [t["id"] for t in listing.json()["items"]]
    for response in (listing, single):
        assert raw not in response.text
        assert raw[10:] not in response.text
    assert "token" not in single.json()
    assert all("token" not in item for item in listing.json()["items"])


async def test_only_a_sha256_of_the_token_is_stored(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    admin_token = await make_token(db, owner)

    raw = (await create(client, admin_token, {"name": "stored", "scopes": ["admin"]})).json()["token"]

    row = await token_row(db, raw)
    assert row.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    for column in ApiToken.__table__.columns:
        value = getattr(row, column.key)
        assert value != raw, column.key
        assert raw not in str(value), column.key
    # Nor does the audit trail keep it.
    for entry in await rows(db, select(AuditEntry)):
        assert raw not in f"{entry.before} {entry.after} {entry.target_label}"


async def test_a_100_character_name_and_a_future_expiry_are_accepted(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    admin_token = await make_token(db, owner)
    expires = (utcnow() + timedelta(days=30)).isoformat()

    response = await create(
        client, admin_token, {"name": "n" * 100, "scopes": ["admin"], "expires_at": expires}
    )

    assert response.status_code == 201
    assert response.json()["name"] == "n" * 100
    assert response.json()["expires_at"] is not None
    assert (await client.get("/api/v1/me", headers=bearer(response.json()["token"]))).status_code == 200


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"name": "x", "scopes": []}, "invalid_input", "scopes"),
        ({"name": "x", "scopes": ["root"]}, "invalid_input", "scopes"),
        ({"name": "x"}, "invalid_input", "scopes"),
        ({"name": "x", "scopes": ["admin"], "colour": "red"}, "invalid_input", "colour"),
        ({"name": "x" * 101, "scopes": ["admin"]}, "invalid_input", "name"),
        ({"name": "   ", "scopes": ["admin"]}, "invalid_input", "name"),
        (
            {"name": "x", "scopes": ["admin"], "expires_at": "2000-01-01T00:00:00Z"},
            "invalid_expiry",
            "expires_at",
        ),
        (
            {"name": "x", "scopes": ["admin"], "expires_at": "2099-01-01T00:00:00"},
            "invalid_expiry",
            "expires_at",
        ),
        ({"name": "x", "scopes": ["admin"], "expires_at": "next tuesday"}, "invalid_input", "expires_at"),
    ],
    ids=[
        "no-scopes",
        "unknown-scope",
        "missing-scopes",
        "unknown-field",
        "long-name",
        "blank-name",
        "past-expiry",
        "naive-expiry",
        "bad-date",
    ],
)
async def test_invalid_input_is_refused_and_writes_nothing(
    client: AsyncClient, db: AsyncSession, body: dict[str, Any], code: str | None, field: str
):
    _, owner = await make_account(db)
    admin_token = await make_token(db, owner)
    tokens_before, audit_before = await count(db, ApiToken), await count(db, AuditEntry)

    response = await create(client, admin_token, body)

    assert response.status_code == 422
    err = error(response)
    assert err["code"] == code
    assert err["message"]
    assert any(f == field or f.startswith(field + ".") for f in fields(response)), fields(response)
    assert await count(db, ApiToken) == tokens_before
    assert await count(db, AuditEntry) == audit_before


async def test_an_unknown_field_is_named_in_the_error(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    admin_token = await make_token(db, owner)

    response = await create(client, admin_token, {"name": "x", "scopes": ["admin"], "owner": "someone"})

    assert response.status_code == 422
    assert error(response)["code"] == "invalid_input"
    assert {"field": "owner", "message": "unknown field"} in error(response)["details"]


async def test_malformed_json_is_refused(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    admin_token = await make_token(db, owner)
    tokens_before = await count(db, ApiToken)

    response = await client.post(
        "/api/v1/tokens",
        content=b'{"name": "x", "scopes": ["admin"',
        headers={**auth(admin_token), "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert error(response)["code"] == "malformed_json"
    assert await count(db, ApiToken) == tokens_before


# ---- authentication ----


async def test_a_missing_token_gets_401_with_a_bearer_challenge(client: AsyncClient, db: AsyncSession):
    for path in ("/api/v1/me", "/api/v1/tokens"):
        response = await client.get(path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert error(response)["code"] == "missing_token"


@pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer ck_" + "a" * 43, "Basic dXNlcjpwYXNz"])
async def test_an_unknown_token_gets_401(client: AsyncClient, db: AsyncSession, header: str):
    response = await client.get("/api/v1/me", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert error(response)["code"] in ("invalid_token", "missing_token")


async def test_an_expired_token_gets_401(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    raw = await make_token(db, owner, expires_at=utcnow() + timedelta(days=1))
    other = await make_token(db, owner)
    assert (await client.get("/api/v1/me", headers=bearer(raw))).status_code == 200
    row = await token_row(db, raw)

    await write(
        db, update(ApiToken).where(ApiToken.id == row.id).values(expires_at=utcnow() - timedelta(seconds=1))
    )

    response = await client.get("/api/v1/me", headers=bearer(raw))
    assert response.status_code == 401
    assert error(response)["code"] == "invalid_token"
    assert response.headers["www-authenticate"] == "Bearer"
    shown = await client.get(f"/api/v1/tokens/{row.id}", headers=bearer(other))
    assert shown.json()["status"] == "expired"


async def test_a_gateway_only_token_cannot_use_the_management_api(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    raw = await make_token(db, owner, scopes=("gateway",))

    for response in (
        await client.get("/api/v1/me", headers=bearer(raw)),
        await create(client, raw, {"name": "escalate", "scopes": ["admin"]}),
    ):
        assert response.status_code == 403
        assert error(response)["code"] == "token_scope_missing"
    assert await count(db, ApiToken) == 1


async def test_a_deactivated_users_token_gets_401(client: AsyncClient, db: AsyncSession):
    account, _ = await make_account(db)
    member = await make_user(db, account)
    raw = await make_token(db, member)
    assert (await client.get("/api/v1/me", headers=bearer(raw))).status_code == 200

    await write(db, update(User).where(User.id == member.id).values(status=UserStatus.deactivated))

    response = await client.get("/api/v1/me", headers=bearer(raw))
    assert response.status_code == 401
    assert error(response)["code"] == "invalid_token"


# ---- revoking ----


async def test_a_revoked_token_is_refused_and_cannot_be_revoked_twice(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    admin_token = await make_token(db, owner)
    victim = await make_token(db, owner, name="old laptop")
    victim_id = (await token_row(db, victim)).id
    assert (await client.get("/api/v1/me", headers=bearer(victim))).status_code == 200

    revoked = await client.delete(f"/api/v1/tokens/{victim_id}", headers=auth(admin_token))

    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revoked_at"] is not None
    refused = await client.get("/api/v1/me", headers=bearer(victim))
    assert refused.status_code == 401
    assert error(refused)["code"] == "invalid_token"
    again = await client.delete(f"/api/v1/tokens/{victim_id}", headers=auth(admin_token))
    assert again.status_code == 409
    assert error(again)["code"] == "token_already_revoked"
    assert (await client.get("/api/v1/me", headers=bearer(admin_token))).status_code == 200


async def test_a_token_can_revoke_itself(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    raw = await make_token(db, owner)
    token_id = (await token_row(db, raw)).id

    assert (await client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(raw))).status_code == 200

    assert (await client.get("/api/v1/me", headers=bearer(raw))).status_code == 401


async def test_an_unknown_token_id_is_404(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    raw = await make_token(db, owner)

    for response in (
        await client.get(f"/api/v1/tokens/{uuid.uuid4()}", headers=bearer(raw)),
        await client.delete(f"/api/v1/tokens/{uuid.uuid4()}", headers=bearer(raw)),
    ):
        assert response.status_code == 404
        assert error(response)["code"] == "token_not_found"


# ---- who may see and revoke which token ----


async def test_another_accounts_token_is_invisible(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    _, stranger = await make_account(db, name="Other Corp")
    mine = await make_token(db, owner)
    theirs = await make_token(db, stranger)
    their_id = (await token_row(db, theirs)).id

    shown = await client.get(f"/api/v1/tokens/{their_id}", headers=bearer(mine))
    revoked = await client.delete(f"/api/v1/tokens/{their_id}", headers=bearer(mine))
    listed = await client.get("/api/v1/tokens", params={"user_id": str(stranger.id)}, headers=bearer(mine))

    assert shown.status_code == 404
    assert revoked.status_code == 404
    assert error(shown)["code"] == error(revoked)["code"] == "token_not_found"
    assert listed.status_code == 404
    assert str(their_id) not in listed.text
    assert (await token_row(db, theirs)).revoked_at is None
    assert (await client.get("/api/v1/me", headers=bearer(theirs))).status_code == 200


async def test_a_member_cannot_see_or_revoke_an_admins_token(client: AsyncClient, db: AsyncSession):
    account, _ = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, role=UserRole.member)
    admin_raw = await make_token(db, admin)
    member_raw = await make_token(db, member)
    admin_token_id = (await token_row(db, admin_raw)).id

    shown = await client.get(f"/api/v1/tokens/{admin_token_id}", headers=bearer(member_raw))
    revoked = await client.delete(f"/api/v1/tokens/{admin_token_id}", headers=bearer(member_raw))
    listed = await client.get("/api/v1/tokens", params={"user_id": str(admin.id)}, headers=bearer(member_raw))
    own = await client.get("/api/v1/tokens", headers=bearer(member_raw))

    assert shown.status_code == 404
    assert revoked.status_code == 404
    assert listed.status_code == 403
    assert str(admin_token_id) not in listed.text
    assert str(admin_token_id) not in own.text
    assert (await token_row(db, admin_raw)).revoked_at is None
    assert (await client.get("/api/v1/me", headers=bearer(admin_raw))).status_code == 200


async def test_an_admin_can_list_and_revoke_a_members_token(client: AsyncClient, db: AsyncSession):
    account, _ = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, role=UserRole.member)
    admin_raw = await make_token(db, admin)
    member_raw = await make_token(db, member, name="member script")
    member_token_id = str((await token_row(db, member_raw)).id)

    listed = await client.get("/api/v1/tokens", params={"user_id": str(member.id)}, headers=bearer(admin_raw))
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()["items"]] == [member_token_id]
    assert listed.json()["items"][0]["user_id"] == str(member.id)
    assert member_raw not in listed.text
    own = await client.get("/api/v1/tokens", headers=bearer(admin_raw))
    assert member_token_id not in [t["id"] for t in own.json()["items"]]

    revoked = await client.delete(f"/api/v1/tokens/{member_token_id}", headers=auth(admin_raw))

    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert (await client.get("/api/v1/me", headers=bearer(member_raw))).status_code == 401
    [entry] = await rows(db, select(AuditEntry).where(AuditEntry.action == "api_token.revoked"))
    assert entry.actor_id == admin.id
    assert entry.target_id == member_token_id
    assert entry.after == {"revoked": True, "owner": member.email}


# ---- audit trail ----


async def test_creating_and_revoking_are_audited_with_actor_ip_and_user_agent(
    client: AsyncClient, db: AsyncSession
):
    account, owner = await make_account(db)
    admin_token = await make_token(db, owner)
    admin_token_id = (await token_row(db, admin_token)).id

    created = await create(client, admin_token, {"name": "exporter", "scopes": ["gateway"]})
    assert created.status_code == 201
    new_id = created.json()["id"]
    assert (await client.delete(f"/api/v1/tokens/{new_id}", headers=auth(admin_token))).status_code == 200

    entries = await rows(
        db,
        select(AuditEntry)
        .where(AuditEntry.account_id == account.id, AuditEntry.action.like("api_token.%"))
        .where(AuditEntry.target_id == new_id)
        .order_by(AuditEntry.seq),
    )
    assert [e.action for e in entries] == ["api_token.created", "api_token.revoked"]
    for entry in entries:
        assert entry.actor_id == owner.id
        assert entry.actor_label == owner.email
        assert entry.actor_kind == "token"
        assert entry.ip == CLIENT_IP
        assert entry.user_agent == AGENT
        assert entry.target_type == "api_token"
        assert entry.target_label == "exporter"
    created_entry, revoked_entry = entries
    assert created_entry.after is not None
    assert created_entry.after["name"] == "exporter"
    assert created_entry.after["scopes"] == ["gateway"]
    assert created_entry.after["owner"] == owner.email
    assert created_entry.after["prefix"] == created.json()["prefix"]
    assert revoked_entry.before == {"revoked": False}
    assert revoked_entry.after == {"revoked": True, "owner": owner.email}
    assert str(admin_token_id) != new_id


async def test_refused_requests_write_no_audit_entry(client: AsyncClient, db: AsyncSession):
    _, owner = await make_account(db)
    admin_token = await make_token(db, owner)
    token_id = (await token_row(db, admin_token)).id
    gateway = await make_token(db, owner, scopes=("gateway",))
    audit_before = await count(db, AuditEntry)

    responses = [
        await client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(gateway)),
        await client.delete(f"/api/v1/tokens/{uuid.uuid4()}", headers=bearer(admin_token)),
        await create(client, "ck_not-a-real-token", {"name": "x", "scopes": ["admin"]}),
    ]

    assert [r.status_code for r in responses] == [403, 404, 401]
    assert await count(db, AuditEntry) == audit_before
    assert (await token_row(db, admin_token)).revoked_at is None
