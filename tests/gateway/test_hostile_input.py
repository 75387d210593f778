"""Hostile requests to the gateway: text that cannot be stored, deep nesting, oversized bodies,
output multiplied by ``n``, several output limits at once; and a usage record that cannot be written
never stops the others (nor start-up)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.app import create_app
from cockpit.config import Settings
from cockpit.credits.models import CreditLease
from cockpit.kit.time import utcnow
from cockpit.usage.models import UsageRecord
from cockpit.usage.recorder import Recorder, journal_line
from tests.builders import make_account, make_token, make_user
from tests.conftest import make_settings
from tests.gateway.conftest import Org, add_model, fund, records
from tests.gateway.test_enforcement import assert_reconciled, figures, settle_all
from tests.upstream import Upstream

HELLO = [{"role": "user", "content": "Say hello."}]


def raw_client(app: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gateway")


async def post(app: Any, token: str, body: str | bytes, **headers: str) -> httpx2.Response:
    async with raw_client(app) as http:
        return await http.post(
            "/v1/chat/completions",
            content=body if isinstance(body, bytes) else body.encode(),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json", **headers},
        )


def error_of(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "code", "param"}
    return error


# --- text that cannot be stored --------------------------------------------------------------------


async def test_a_lone_surrogate_in_the_model_is_refused_and_metering_goes_on_for_everyone(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    poisoned = await post(
        gateway_app,
        org.member_token,
        '{"model": "x\\ud800y", "messages": [{"role": "user", "content": "hi"}]}',
    )
    assert poisoned.status_code == 400
    assert error_of(poisoned)["code"] == "invalid_text"
    assert error_of(poisoned)["param"] == "model"
    # The refused call is recorded, with its model made storable, and so are the calls after it
    # (of this tenant and of another one).
    other, _owner = await make_account(db, name="Other tenant")
    other_user = await make_user(db, other)
    other_token = await make_token(db, other_user, scopes=("gateway",))
    await post(gateway_app, other_token, json.dumps({"model": "nope", "messages": HELLO}))
    ok = await post(gateway_app, org.member_token, json.dumps({"model": "gpt-4o-mini", "messages": HELLO}))
    assert ok.status_code == 200
    stats = gateway_app.state.recorder.stats
    failed_before = stats.failed_flushes
    assert await gateway_app.state.recorder.flush() == 3
    assert stats.failed_flushes == failed_before
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.model, r.http_status) for r in rows] == [("x\ufffdy", 400), ("gpt-4o-mini", 200)]
    assert [r.http_status for r in await records(gateway_app, db, other.id)] == [404]


async def test_a_nul_in_the_model_is_a_normal_404_and_its_record_is_written(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    response = await post(
        gateway_app,
        org.member_token,
        '{"model": "x\\u0000y", "messages": [{"role": "user", "content": "hi"}]}',
    )
    assert response.status_code == 404
    assert error_of(response)["code"] == "model_not_found"
    [row] = await records(gateway_app, db, org.account_id)
    assert row.model == "x\ufffdy"
    assert row.error_message is not None
    assert "\x00" not in row.error_message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a\\udc00b"}]}',
            "messages[0].content",
        ),
        (
            '{"model": "gpt-4o-mini", "messages": [{"role": "us\\ud800er", "content": "hi"}]}',
            "messages[0].role",
        ),
        (
            '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "text", '
            '"text": "\\ud83d"}]}]}',
            "messages[0].content[0].text",
        ),
    ],
)
async def test_a_lone_surrogate_anywhere_in_a_message_is_a_400_naming_it(
    gateway_app: Any, db: AsyncSession, org: Org, body: str, param: str
) -> None:
    response = await post(gateway_app, org.member_token, body)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["param"], error["type"]) == ("invalid_text", param, "invalid_request_error")
    assert "lone surrogate" in error["message"]


async def test_a_valid_surrogate_pair_and_a_nul_in_content_go_through(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    content = '"smile \\ud83d\\ude00 nul\\u0000"'
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ' + content + "}]}"
    response = await post(gateway_app, org.member_token, body)
    assert response.status_code == 200
    sent = json.loads(upstream.requests[-1].body)
    assert sent["messages"][0]["content"] == "smile \U0001f600 nul\x00"


async def test_stored_content_with_nul_and_an_answer_with_a_lone_surrogate_is_written(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    from tests.gateway.test_recording import store_content

    await store_content(db, org)
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a\\u0000b"}], '
    body += '"metadata": {"k\\u0000": 1}}'
    assert (await post(gateway_app, org.member_token, body)).status_code == 200
    [row] = await records(gateway_app, db, org.account_id)
    assert row.request_content is not None
    assert row.request_content["messages"][0]["content"] == "a\ufffdb"
    assert row.request_content["metadata"] == {"k\ufffd": 1}


@pytest.mark.parametrize("depth", [100, 2_000, 100_000])
async def test_deeply_nested_json_is_a_400(gateway_app: Any, db: AsyncSession, org: Org, depth: int) -> None:
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi", "x": ' + "[" * depth
    body += "]" * depth + "}]}"
    response = await post(gateway_app, org.member_token, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] in ("invalid_text", "invalid_json")
    assert "nested" in error["message"]


async def test_a_message_field_nested_600_levels_is_a_400(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    nested: Any = "deep"
    for _ in range(600):
        nested = {"a": nested}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi", "name": nested}]}
    response = await post(gateway_app, org.member_token, json.dumps(body))
    assert response.status_code == 400
    assert "nested more than" in error_of(response)["message"]


async def test_a_huge_model_name_is_not_echoed_in_full(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    name = "m" * 1_000_000
    response = await post(gateway_app, org.member_token, json.dumps({"model": name, "messages": HELLO}))
    assert response.status_code == 404
    assert len(response.content) < 1_000
    [row] = await records(gateway_app, db, org.account_id)
    assert len(row.model) == 200


# --- body limits -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def small_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    settings: Settings = make_settings(
        database_url,
        tmp_path_factory.mktemp("small-body"),
        allow_private_upstreams=True,
        usage_flush_seconds=3600.0,
        max_body_bytes_gateway=4096,
    )
    application = create_app(settings)
    yield application
    await application.state.recorder.stop()
    await application.state.gateway.aclose()
    await application.state.engine.dispose()


async def test_a_body_over_the_limit_is_413_before_it_is_read(
    small_app: Any, db: AsyncSession, org: Org
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(10_000):  # 10 MB in all, if it were read to the end
            sent += 1
            yield b"x" * 1024
        yield b'"}]}'

    async with raw_client(small_app) as http:
        response = await http.post(
            "/v1/chat/completions",
            content=chunks(),
            headers={"authorization": f"Bearer {org.member_token}", "content-type": "application/json"},
        )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert sent <= 8  # reading stopped at the limit (4 KiB), not at the end

    async with raw_client(small_app) as http:
        declared = await http.post(
            "/v1/chat/completions",
            content=b"x" * 5000,
            headers={"authorization": f"Bearer {org.member_token}", "content-type": "application/json"},
        )
    assert declared.status_code == 413


async def test_an_unauthenticated_body_is_not_read(small_app: Any, db: AsyncSession) -> None:
    read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(1000):
            read += 1
            yield b"x" * 1024

    async with raw_client(small_app) as http:
        response = await http.post(
            "/v1/chat/completions", content=chunks(), headers={"authorization": "Bearer nope"}
        )
    assert response.status_code == 401
    assert read <= 1


# --- output multiplied or limited twice ----------------------------------------------------------


async def test_n_choices_are_held_and_clamped_so_nothing_is_overspent(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-fill", org.openai_provider_id, "gpt-fill")
    # 0.1 credits: at 0.001 credits per output token, 100 output tokens in all.
    await fund(db, org, members={org.member.id: "0.1"})
    response = await post(
        gateway_app, org.member_token, json.dumps({"model": "gpt-fill", "messages": HELLO, "n": 10})
    )
    assert response.status_code == 200
    sent = json.loads(upstream.requests[-1].body)
    assert sent["n"] == 10
    assert 1 <= sent["max_tokens"] * 10 <= 100
    [row] = await records(gateway_app, db, org.account_id)
    assert row.credits <= Decimal("0.1")
    _cycle, _used, held = await figures(db, org)
    assert held >= 0
    await assert_reconciled(gateway_app, db, org)


@pytest.mark.parametrize("body", [{"n": 0}, {"n": 129}, {"n": "3"}, {"best_of": 1000}, {"n": True}])
async def test_out_of_range_choice_counts_are_refused(
    gateway_app: Any, db: AsyncSession, org: Org, body: dict[str, Any]
) -> None:
    response = await post(
        gateway_app, org.member_token, json.dumps({"model": "gpt-4o-mini", "messages": HELLO, **body})
    )
    assert response.status_code == 400
    assert error_of(response)["param"] == next(iter(body))


async def test_every_output_limit_field_sent_is_clamped(
    gateway_app: Any, db: AsyncSession, org: Org, upstream: Upstream
) -> None:
    await add_model(db, org, "gpt-fill", org.openai_provider_id, "gpt-fill")
    await fund(db, org, members={org.member.id: "0.1"})
    body = {"model": "gpt-fill", "messages": HELLO, "max_completion_tokens": 50, "max_tokens": 4000}
    response = await post(gateway_app, org.member_token, json.dumps(body))
    assert response.status_code == 200
    sent = json.loads(upstream.requests[-1].body)
    assert sent["max_tokens"] <= 100
    assert sent["max_completion_tokens"] <= 50
    [row] = await records(gateway_app, db, org.account_id)
    assert row.credits <= Decimal("0.1")
    await assert_reconciled(gateway_app, db, org)


async def test_held_never_goes_negative_when_an_upstream_spends_more_than_held(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    """An upstream that ignores the limit costs what it cost, but held credits stay >= 0."""
    await fund(db, org, members={org.member.id: "0.1"})
    keeper = gateway_app.state.gateway.keeper
    await keeper.return_idle(everything=True)
    # A call recorded with more credits than any lease holds.
    response = await post(
        gateway_app, org.member_token, json.dumps({"model": "gpt-4o-mini", "messages": HELLO})
    )
    assert response.status_code == 200
    recorder = gateway_app.state.recorder
    [pending] = recorder._pending
    lease_id = pending["credit_lease_id"]
    pending["credits"] = Decimal("5")  # as if the upstream had ignored the output limit
    await settle_all(gateway_app)
    _cycle, used, held = await figures(db, org)
    assert held == 0
    assert used == Decimal("5")
    amounts = (await db.scalars(select(CreditLease.amount).where(CreditLease.id == lease_id))).all()
    assert all(amount >= 0 for amount in amounts)


# --- records that cannot be written --------------------------------------------------------------


async def test_a_journal_with_unstorable_and_impossible_records_is_replayed_without_blocking(
    gateway_app: Any, db: AsyncSession, org: Org, tmp_path: Path
) -> None:
    """Journals written before text was made storable (and a record whose account is gone) are
    replayed at start-up: the good records are written, the impossible one is set aside."""

    def record(account_id: uuid.UUID, model: str, message: str | None = None) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(), "account_id": account_id, "created_at": utcnow(), "user_id": org.member.id,
            "group_id": None, "project_id": None, "agent_id": None, "api_token_id": None, "model_id": None,
            "model": model, "provider_id": None, "provider_kind": None, "operation": "chat", "stream": False,
            "status": "error", "error_type": "model_not_found", "error_message": message, "http_status": 404,
            "latency_ms": 1, "ttft_ms": None, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0,
            "tokens_estimated": False, "cost_usd": Decimal(0), "credits": Decimal(0), "upstream_id": "u\x00",
        }  # fmt: skip

    journal = tmp_path / "journal"
    journal.mkdir()
    good = [record(org.account_id, "x\ud800y", "bad \x00 text"), record(org.account_id, "fine")]
    orphan = record(uuid.uuid4(), "orphan")  # its account does not exist: can never be written
    (journal / "99999-dead0000-0.jsonl").write_bytes(
        b"".join(journal_line(r) for r in [good[0], orphan, good[1]])
    )
    recorder = Recorder(gateway_app.state.sessionmaker, journal, flush_seconds=3600)
    await recorder.start()  # must not raise
    await recorder.stop()
    await db.rollback()
    rows = (await db.scalars(select(UsageRecord).where(UsageRecord.account_id == org.account_id))).all()
    assert sorted(r.model for r in rows) == ["fine", "x\ufffdy"]
    assert not list(journal.glob("*-*-*.jsonl"))
    rejected = (journal / "rejected.jsonl").read_text().splitlines()
    assert [json.loads(line)["model"] for line in rejected] == ["orphan"]


async def test_a_stored_key_that_cannot_be_sent_is_a_502_not_a_500(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    """A provider saved before keys were checked, with a key no HTTP header can carry."""
    from cockpit.kit.secrets import encrypt
    from cockpit.providers.models import Provider
    from tests.conftest import TEST_SECRET

    provider = await db.get(Provider, org.openai_provider_id)
    assert provider is not None
    provider.api_key_encrypted = encrypt("sk-caf\u00e9\n-0123456789", TEST_SECRET)
    provider.settings = {"api_key_header": "Bad Header"}
    await db.commit()
    response = await post(
        gateway_app, org.member_token, json.dumps({"model": "gpt-4o-mini", "messages": HELLO})
    )
    assert response.status_code == 502
    assert error_of(response)["code"] == "upstream_auth_failed"


async def test_test_connection_with_a_stored_key_that_cannot_be_sent_says_so(
    gateway_app: Any, db: AsyncSession, org: Org
) -> None:
    from cockpit.kit.secrets import encrypt
    from cockpit.providers.models import Provider
    from tests.conftest import TEST_SECRET

    provider = await db.get(Provider, org.openai_provider_id)
    assert provider is not None
    provider.api_key_encrypted = encrypt("sk-caf\u00e9-0123456789", TEST_SECRET)
    await db.commit()
    async with raw_client(gateway_app) as http:
        response = await http.post(
            f"/api/v1/providers/{org.openai_provider_id}/test",
            headers={"authorization": f"Bearer {org.admin_token}"},
        )
    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert "cannot be sent" in response.json()["message"]
