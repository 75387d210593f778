"""The front door of the REST API and the console: unstorable text and deep nesting are a 400 naming
the field, bodies are limited as they stream in, and a request without credentials is refused
before its body is read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.app import create_app
from cockpit.config import Settings
from cockpit.groups.models import Group
from cockpit.projects.models import Project
from tests.builders import bearer, console_login, csrf_for, make_account, make_token
from tests.conftest import make_settings


@pytest.fixture
async def owner_token(db: AsyncSession) -> str:
    _account, owner = await make_account(db, name="Guarded Co")
    return await make_token(db, owner, scopes=("admin", "gateway"))


def assert_invalid_text(response: Any, field: str | None = None) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_text"
    if field is not None:
        assert error["details"][0]["field"] == field


NUL = "\u0000"
SURROGATE = "\ud800"


def raw_json(value: dict[str, Any]) -> bytes:
    # json.dumps escapes both as \\u0000 and \\ud800: what a hostile client sends.
    return json.dumps(value).encode()


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/groups", {"name": "G{bad}"}, "name"),
        ("POST", "/api/v1/projects", {"name": "P{bad}", "description": ""}, "name"),
        ("PATCH", "/api/v1/account", {"name": "A{bad}"}, "name"),
        (
            "POST",
            "/api/v1/policies",
            {
                "scope": "account",
                "resource_type": "model",
                "resource": "*",
                "effect": "deny",
                "note": "n{bad}",
            },
            "note",
        ),
        ("POST", "/api/v1/credit-requests", {"amount": "1", "reason": "r{bad}"}, "reason"),
        ("POST", "/api/v1/invitations", {"email": "x@example.com", "name": "N{bad}"}, "name"),
    ],
)
async def test_unstorable_text_in_a_json_body_is_a_400_and_nothing_changes(
    client: AsyncClient,
    db: AsyncSession,
    owner_token: str,
    bad: str,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    payload = {k: v.replace("{bad}", bad) if isinstance(v, str) else v for k, v in body.items()}
    groups_before = await db.scalar(select(func.count()).select_from(Group))
    response = await client.request(
        method,
        path,
        content=raw_json(payload),
        headers={**bearer(owner_token), "content-type": "application/json"},
    )
    assert_invalid_text(response, field)
    assert await db.scalar(select(func.count()).select_from(Group)) == groups_before
    assert await db.scalar(select(func.count()).select_from(Project)) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users?q=a%00b",
        "/api/v1/audit?action=x%00",
        "/api/v1/usage/requests?model=m%00",
        "/api/v1/usage/requests?agent_id=%00",
        "/api/v1/groups/%00",
    ],
)
async def test_a_nul_in_a_filter_or_path_is_a_400(client: AsyncClient, owner_token: str, path: str) -> None:
    response = await client.get(path, headers=bearer(owner_token))
    assert_invalid_text(response)


@pytest.mark.parametrize("depth", [100, 5_000, 200_000])
async def test_deeply_nested_json_is_a_400_not_a_500(
    client: AsyncClient, owner_token: str, depth: int
) -> None:
    body = b'{"name": ' + b"[" * depth + b"]" * depth + b"}"
    response = await client.post(
        "/api/v1/groups", content=body, headers={**bearer(owner_token), "content-type": "application/json"}
    )
    assert_invalid_text(response)
    assert "nested" in response.json()["error"]["message"]


# --- body limits ----------------------------------------------------------------------------------


@pytest.fixture
async def small(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, db: AsyncSession
) -> AsyncIterator[AsyncClient]:
    settings: Settings = make_settings(
        database_url,
        tmp_path_factory.mktemp("guard"),
        max_body_bytes_api=8192,
        max_body_bytes_anonymous=2048,
        max_body_bytes_upload=16384,
    )
    application = create_app(settings)
    transport = ASGITransport(app=application, client=("203.0.113.9", 50000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await application.state.engine.dispose()


class Counting:
    """A request body of ``count`` chunks of 1 KiB that counts how many were taken."""

    def __init__(self, count: int, prefix: bytes = b"") -> None:
        self.count, self.taken, self.prefix = count, 0, prefix

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.prefix:
            yield self.prefix
        for _ in range(self.count):
            self.taken += 1
            yield b"x" * 1024


async def test_without_a_token_an_api_body_is_refused_unread(small: AsyncClient) -> None:
    body = Counting(400_000)  # 400 MB if it were read
    response = await small.post("/api/v1/groups", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_token"
    assert body.taken <= 1
    body = Counting(400_000)
    response = await small.post(
        "/api/v1/groups",
        content=body,
        headers={"authorization": "Bearer ck_nope", "content-type": "application/json"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
    assert body.taken <= 1


async def test_an_authenticated_body_stops_being_read_at_the_limit(
    small: AsyncClient, db: AsyncSession
) -> None:
    _account, owner = await make_account(db, name="Limits Co")
    token = await make_token(db, owner)
    body = Counting(100_000, prefix=b'{"name": "')
    response = await small.post(
        "/api/v1/groups", content=body, headers={**bearer(token), "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert body.taken <= 10  # 8 KiB allowed: reading stopped there
    declared = await small.post(
        "/api/v1/groups",
        content=b"{" + b" " * 9000 + b"}",
        headers={**bearer(token), "content-type": "application/json"},
    )
    assert declared.status_code == 413
    fits = await small.post("/api/v1/groups", json={"name": "Fits"}, headers=bearer(token))
    assert fits.status_code == 201


async def test_the_sign_in_form_gets_the_small_anonymous_allowance(small: AsyncClient) -> None:
    body = Counting(100_000, prefix=b"email=a%40example.com&password=")
    response = await small.post(
        "/login", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert body.taken <= 4


async def test_a_console_form_with_a_nul_is_a_400_page(client: AsyncClient, db: AsyncSession) -> None:
    _account, owner = await make_account(db, name="Form Co")
    await console_login(client, owner.email)
    csrf = await csrf_for(client, "/groups")
    response = await client.post("/groups", data={"name": "bad\x00name", "csrf_token": csrf})
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"]
    assert "NUL" in response.text
    assert await db.scalar(select(func.count()).select_from(Group).where(Group.name.like("bad%"))) == 0
