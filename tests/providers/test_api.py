"""Providers (/api/v1/providers) and the model catalogue (/api/v1/models) over the REST API."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.app import create_app
from cockpit.audit.models import AuditEntry
from cockpit.kit.secrets import decrypt
from cockpit.providers.models import Provider
from cockpit.users.models import UserRole
from tests.builders import bearer, make_account, make_token, make_user
from tests.conftest import TEST_SECRET, make_settings

API = "/api/v1"
RAW_KEY = "sk-test-" + "Zq7" * 10 + "WXYZ"
GOOD_KEY = "sk-upstream-good-key-0123456789"


class Org:
    def __init__(self, account_id: uuid.UUID, admin: dict[str, str], member: dict[str, str]) -> None:
        self.id, self.admin, self.member = account_id, admin, member


async def org(db: AsyncSession, *, name: str = "Acme") -> Org:
    account, _owner = await make_account(db, name=name)
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, role=UserRole.member)
    return Org(account.id, bearer(await make_token(db, admin)), bearer(await make_token(db, member)))


def code(response: Response) -> str:
    return str(response.json()["error"]["code"])


async def audit_rows(db: AsyncSession, account_id: uuid.UUID) -> list[AuditEntry]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id)
        .order_by(AuditEntry.seq)
        .execution_options(populate_existing=True)
    )
    result = list(rows)
    await db.commit()
    return result


async def simulated(client: AsyncClient, headers: dict[str, str], name: str = "Sim") -> dict[str, Any]:
    response = await client.post(
        f"{API}/providers", json={"name": name, "kind": "simulated"}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def add_model(
    client: AsyncClient, headers: dict[str, str], provider_id: str, name: str, **extra: Any
) -> Response:
    body = {"name": name, "provider_id": provider_id, "upstream_model": extra.pop("upstream_model", name)}
    return await client.post(f"{API}/models", json=body | extra, headers=headers)


# ---- a tiny OpenAI/Anthropic-like upstream on 127.0.0.1 ----


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        openai_ok = self.path == "/v1/models" and self.headers.get("Authorization") == f"Bearer {GOOD_KEY}"
        anthropic_ok = (
            self.path == "/anthropic/v1/models"
            and self.headers.get("x-api-key") == GOOD_KEY
            and self.headers.get("anthropic-version") == "2023-06-01"
        )
        if openai_ok or anthropic_ok:
            status, body = 200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}
        else:
            status, body = (
                401,
                {"error": {"message": "Incorrect API key provided.", "type": "invalid_request"}},
            )
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def private_client(database_url: str, tmp_path: Path, db: AsyncSession) -> AsyncIterator[AsyncClient]:
    """A client of an app built with COCKPIT_ALLOW_PRIVATE_UPSTREAMS=true."""
    app = create_app(make_settings(database_url, tmp_path, allow_private_upstreams=True))
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await app.state.gateway.aclose()
    await app.state.engine.dispose()


# ---- providers ----


async def test_provider_crud_and_audit(client: AsyncClient, db: AsyncSession) -> None:
    acme = await org(db)
    sim = await simulated(client, acme.admin)
    assert sim["kind"] == "simulated"
    assert sim["base_url"] is None
    assert sim["has_api_key"] is False

    listed = await client.get(f"{API}/providers", headers=acme.admin)
    assert [p["name"] for p in listed.json()["items"]] == ["Sim"]

    dup = await client.post(f"{API}/providers", json={"name": "sim", "kind": "simulated"}, headers=acme.admin)
    assert dup.status_code == 409
    assert code(dup) == "provider_name_taken"

    renamed = await client.patch(
        f"{API}/providers/{sim['id']}",
        json={"name": "Offline", "settings": {"latency_ms": 50}},
        headers=acme.admin,
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Offline"
    assert renamed.json()["settings"] == {"latency_ms": 50}
    assert (await client.get(f"{API}/providers/{sim['id']}", headers=acme.admin)).json()["name"] == "Offline"

    tested = await client.post(f"{API}/providers/{sim['id']}/test", headers=acme.admin)
    assert tested.status_code == 200
    assert tested.json()["ok"] is True

    assert (await add_model(client, acme.admin, sim["id"], "sim-small")).status_code == 201
    deleted = await client.delete(f"{API}/providers/{sim['id']}", headers=acme.admin)
    assert deleted.status_code == 200
    assert deleted.json()["models_deleted"] == 1
    assert (await client.get(f"{API}/providers/{sim['id']}", headers=acme.admin)).status_code == 404
    assert (await client.get(f"{API}/models", headers=acme.admin)).json()["items"] == []

    actions = [e.action for e in await audit_rows(db, acme.id)]
    assert actions[-4:] == ["provider.created", "provider.updated", "model.created", "provider.deleted"]


async def test_api_key_is_encrypted_and_never_returned(private_client: AsyncClient, db: AsyncSession) -> None:
    acme = await org(db)
    created = await private_client.post(
        f"{API}/providers",
        json={"name": "OpenAI", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": RAW_KEY},
        headers=acme.admin,
    )
    assert created.status_code == 201, created.text
    provider = created.json()
    assert provider["has_api_key"] is True
    assert provider["api_key_last4"] == "WXYZ"
    assert "api_key" not in provider
    assert "api_key_encrypted" not in provider

    responses = [
        created,
        await private_client.get(f"{API}/providers", headers=acme.admin),
        await private_client.get(f"{API}/providers/{provider['id']}", headers=acme.admin),
        await private_client.patch(
            f"{API}/providers/{provider['id']}", json={"api_key": RAW_KEY + "2"}, headers=acme.admin
        ),
        await private_client.post(f"{API}/providers/{provider['id']}/test", headers=acme.admin),
        await private_client.get(f"{API}/audit", headers=acme.admin),
    ]
    for response in responses:
        assert RAW_KEY not in response.text
    assert responses[3].json()["api_key_last4"] == "XYZ2"

    await db.commit()
    stored = await db.scalar(
        select(Provider.api_key_encrypted).where(Provider.id == uuid.UUID(provider["id"]))
    )
    assert stored is not None
    assert RAW_KEY not in stored
    assert decrypt(stored, TEST_SECRET) == RAW_KEY + "2"

    entries = await audit_rows(db, acme.id)
    assert [e.action for e in entries][-2:] == ["provider.created", "provider.updated"]
    for entry in entries:
        assert RAW_KEY not in json.dumps([entry.before, entry.after])
    assert entries[-1].after == {"api_key": "changed"}

    removed = await private_client.patch(
        f"{API}/providers/{provider['id']}", json={"api_key": None}, headers=acme.admin
    )
    assert removed.json()["has_api_key"] is False
    assert removed.json()["api_key_last4"] is None


@pytest.mark.parametrize(
    "base_url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://169.254.1.1/v1",
        "http://[::ffff:169.254.169.254]/v1",
        "http://[fe80::1]/v1",
        "http://[fd00::1]/v1",
        "http://0.0.0.0:8000/v1",
        "file:///etc/passwd",
        "http://user:pass@127.0.0.1/v1",
    ],
)
async def test_forbidden_upstream_urls(private_client: AsyncClient, db: AsyncSession, base_url: str) -> None:
    acme = await org(db)
    response = await private_client.post(
        f"{API}/providers", json={"name": "Bad", "kind": "openai", "base_url": base_url}, headers=acme.admin
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "base_url"
    assert (await private_client.get(f"{API}/providers", headers=acme.admin)).json()["items"] == []


async def test_private_upstreams_only_when_allowed(
    client: AsyncClient, private_client: AsyncClient, db: AsyncSession
) -> None:
    acme = await org(db)
    body = {"name": "vLLM", "kind": "openai", "base_url": "http://127.0.0.1:8000/v1/"}
    refused = await client.post(f"{API}/providers", json=body, headers=acme.admin)
    assert refused.status_code == 422
    assert "COCKPIT_ALLOW_PRIVATE_UPSTREAMS" in refused.json()["error"]["message"]

    accepted = await private_client.post(f"{API}/providers", json=body, headers=acme.admin)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["base_url"] == "http://127.0.0.1:8000/v1"

    # An existing provider cannot be pointed at a private address by a deployment that forbids it.
    moved = await client.patch(
        f"{API}/providers/{accepted.json()['id']}",
        json={"base_url": "http://10.1.2.3/v1"},
        headers=acme.admin,
    )
    assert moved.status_code == 422


async def test_connection_test_against_local_upstream(
    private_client: AsyncClient, db: AsyncSession, upstream: str
) -> None:
    acme = await org(db)

    async def provider(name: str, kind: str, base_url: str, key: str) -> str:
        response = await private_client.post(
            f"{API}/providers",
            json={"name": name, "kind": kind, "base_url": base_url, "api_key": key},
            headers=acme.admin,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    good = await provider("Good", "openai", f"{upstream}/v1", GOOD_KEY)
    result = (await private_client.post(f"{API}/providers/{good}/test", headers=acme.admin)).json()
    assert result["ok"] is True
    assert result["status"] == 200

    wrong_key = "sk-upstream-wrong-key-9876543210"
    bad = await provider("Bad", "openai", f"{upstream}/v1", wrong_key)
    response = await private_client.post(f"{API}/providers/{bad}/test", headers=acme.admin)
    result = response.json()
    assert result["ok"] is False
    assert result["status"] == 401
    assert "Incorrect API key" in result["message"]
    assert wrong_key not in response.text

    claude = await provider("Claude", "anthropic", f"{upstream}/anthropic", GOOD_KEY)
    result = (await private_client.post(f"{API}/providers/{claude}/test", headers=acme.admin)).json()
    assert result["ok"] is True
    assert result["status"] == 200


async def test_connection_test_checks_the_address_it_connects_to(
    client: AsyncClient, private_client: AsyncClient, db: AsyncSession, upstream: str
) -> None:
    """Test connection goes through the gateway's upstream client: the address a host name resolves
    to is checked when connecting (no separate look-up that a rebinding name could answer
    differently)."""
    acme = await org(db)
    created = await private_client.post(
        f"{API}/providers",
        json={
            "name": "By name",
            "kind": "openai",
            "base_url": upstream.replace("127.0.0.1", "localhost") + "/v1",
            "api_key": GOOD_KEY,
        },
        headers=acme.admin,
    )
    assert created.status_code == 201, created.text
    test_url = f"{API}/providers/{created.json()['id']}/test"
    allowed = (await private_client.post(test_url, headers=acme.admin)).json()
    assert (allowed["ok"], allowed["status"]) == (True, 200)
    # A deployment that does not allow private upstreams refuses the same name when connecting.
    refused = await client.post(test_url, headers=acme.admin)
    assert refused.status_code == 200
    result = refused.json()
    assert (result["ok"], result["status"]) == (False, None)
    assert "127.0.0.1 is private or loopback" in result["message"]
    assert GOOD_KEY not in refused.text


# ---- models ----


async def test_model_crud_and_exact_prices(client: AsyncClient, db: AsyncSession) -> None:
    acme = await org(db)
    sim = await simulated(client, acme.admin)
    created = await add_model(
        client,
        acme.admin,
        sim["id"],
        "house-small",
        upstream_model="sim-small",
        input_price_per_million="0.15",
        output_price_per_million="0.600000",
        cached_input_price_per_million=2.5,
        context_window=128_000,
        max_output_tokens=16_384,
        capabilities=["tools", "chat"],
    )
    assert created.status_code == 201, created.text
    model = created.json()
    assert model["input_price_per_million"] == "0.150000"
    assert model["output_price_per_million"] == "0.600000"
    assert model["cached_input_price_per_million"] == "2.500000"
    assert model["prices_source"] == "manual"
    assert model["capabilities"] == ["chat", "tools"]
    assert model["context_window"] == 128_000

    fetched = (await client.get(f"{API}/models/{model['id']}", headers=acme.admin)).json()
    assert Decimal(fetched["input_price_per_million"]) == Decimal("0.15")
    assert Decimal(fetched["output_price_per_million"]) == Decimal("0.6")

    changed = await client.patch(
        f"{API}/models/{model['id']}",
        json={"input_price_per_million": "1234567.123456", "enabled": False, "context_window": None},
        headers=acme.admin,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["input_price_per_million"] == "1234567.123456"
    assert changed.json()["enabled"] is False
    assert changed.json()["context_window"] is None

    too_precise = await client.patch(
        f"{API}/models/{model['id']}", json={"output_price_per_million": "0.1234567"}, headers=acme.admin
    )
    negative = await client.patch(
        f"{API}/models/{model['id']}", json={"output_price_per_million": -1}, headers=acme.admin
    )
    bad_capability = await client.patch(
        f"{API}/models/{model['id']}", json={"capabilities": ["telepathy"]}, headers=acme.admin
    )
    assert (too_precise.status_code, negative.status_code, bad_capability.status_code) == (422, 422, 422)

    dup = await add_model(client, acme.admin, sim["id"], "house-small")
    assert dup.status_code == 409
    assert code(dup) == "model_name_taken"

    deleted = await client.delete(f"{API}/models/{model['id']}", headers=acme.admin)
    assert deleted.status_code == 200
    assert (await client.get(f"{API}/models/{model['id']}", headers=acme.admin)).status_code == 404

    actions = [e.action for e in await audit_rows(db, acme.id)]
    assert actions[-3:] == ["model.created", "model.updated", "model.deleted"]


async def test_prices_prefilled_from_genai_prices(private_client: AsyncClient, db: AsyncSession) -> None:
    acme = await org(db)
    openai = await private_client.post(
        f"{API}/providers",
        json={"name": "OpenAI", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
        headers=acme.admin,
    )
    provider_id = openai.json()["id"]
    known = (
        await add_model(private_client, acme.admin, provider_id, "mini", upstream_model="gpt-4o-mini")
    ).json()
    assert known["prices_source"] == "genai-prices"
    assert Decimal(known["input_price_per_million"]) == Decimal("0.15")
    assert Decimal(known["output_price_per_million"]) == Decimal("0.6")
    assert Decimal(known["cached_input_price_per_million"]) == Decimal("0.075")

    unknown = (
        await add_model(private_client, acme.admin, provider_id, "llama", upstream_model="house-llama-7")
    ).json()
    assert unknown["prices_source"] == "unknown"
    assert unknown["input_price_per_million"] == "0.000000"

    overridden = await private_client.patch(
        f"{API}/models/{known['id']}", json={"input_price_per_million": "0.2"}, headers=acme.admin
    )
    assert overridden.json()["prices_source"] == "manual"
    assert overridden.json()["input_price_per_million"] == "0.200000"


async def test_other_accounts_and_members(client: AsyncClient, db: AsyncSession) -> None:
    acme, globex = await org(db), await org(db, name="Globex")
    sim = await simulated(client, acme.admin)
    on = (await add_model(client, acme.admin, sim["id"], "on")).json()
    off = (await add_model(client, acme.admin, sim["id"], "off", enabled=False)).json()
    other_sim = await simulated(client, globex.admin, name="Theirs")

    # Another account's objects do not exist for us.
    for method, path in [
        ("GET", f"/providers/{sim['id']}"),
        ("PATCH", f"/providers/{sim['id']}"),
        ("DELETE", f"/providers/{sim['id']}"),
        ("POST", f"/providers/{sim['id']}/test"),
        ("GET", f"/models/{on['id']}"),
        ("PATCH", f"/models/{on['id']}"),
        ("DELETE", f"/models/{on['id']}"),
    ]:
        body = {} if method == "PATCH" else None
        response = await client.request(method, API + path, json=body, headers=globex.admin)
        assert response.status_code == 404, (method, path, response.text)
    assert (await client.get(f"{API}/models", headers=globex.admin)).json()["items"] == []

    # A model's provider must be in the same account.
    foreign = await add_model(client, acme.admin, other_sim["id"], "foreign")
    assert foreign.status_code == 422
    assert code(foreign) == "unknown_provider"

    # Members read the enabled catalogue and change nothing.
    listed = await client.get(f"{API}/models", headers=acme.member)
    assert listed.status_code == 200
    assert [m["name"] for m in listed.json()["items"]] == ["on"]
    assert (await client.get(f"{API}/models/{off['id']}", headers=acme.member)).status_code == 404
    admin_list = (await client.get(f"{API}/models", headers=acme.admin)).json()["items"]
    assert sorted(m["name"] for m in admin_list) == ["off", "on"]
    for method, path, body in [
        ("GET", "/providers", None),
        ("POST", "/providers", {"name": "Mine", "kind": "simulated"}),
        ("PATCH", f"/providers/{sim['id']}", {"name": "Mine"}),
        ("DELETE", f"/providers/{sim['id']}", None),
        ("POST", f"/providers/{sim['id']}/test", None),
        ("POST", "/models", {"name": "x", "provider_id": sim["id"], "upstream_model": "x"}),
        ("PATCH", f"/models/{on['id']}", {"enabled": False}),
        ("DELETE", f"/models/{on['id']}", None),
    ]:
        response = await client.request(method, API + path, json=body, headers=acme.member)
        assert response.status_code == 403, (method, path, response.text)
    assert (await client.get(f"{API}/models/{on['id']}", headers=acme.admin)).json()["enabled"] is True


@pytest.mark.parametrize("key", ["sk-caf\u00e9-0123456789", "sk-line\nbreak-0123", "sk with space 0123456"])
async def test_a_key_that_cannot_go_into_a_header_is_refused(
    private_client: AsyncClient, db: AsyncSession, key: str
) -> None:
    acme = await org(db)
    body = {"name": "Keyed", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": key}
    created = await private_client.post(f"{API}/providers", json=body, headers=acme.admin)
    assert created.status_code == 400, created.text
    assert code(created) == "invalid_text"
    assert created.json()["error"]["details"][0]["field"] == "api_key"
    assert (await private_client.get(f"{API}/providers", headers=acme.admin)).json()["items"] == []


@pytest.mark.parametrize(
    "provider_settings",
    [
        {"api_key_header": "Api Key"},
        {"api_key_header": "x\u00e9"},
        {"output_limit_param": "tokens"},
        {"query_params": []},
    ],
)
async def test_provider_settings_that_cannot_be_sent_are_refused(
    private_client: AsyncClient, db: AsyncSession, provider_settings: dict[str, Any]
) -> None:
    acme = await org(db)
    body = {
        "name": "Set",
        "kind": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "settings": provider_settings,
    }
    created = await private_client.post(f"{API}/providers", json=body, headers=acme.admin)
    assert created.status_code == 422, created.text
    assert created.json()["error"]["details"][0]["field"].startswith("settings")
