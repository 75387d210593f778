"""Access policies through the REST API (/api/v1/policies): creating rules, validation, isolation
between accounts, permissions and listing. Defaults, the audit trail, deletion and effective access
are in test_defaults_access_api.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.policies import service as policies
from cockpit.providers import service as providers
from tests.policies.conftest import (
    API,
    DEFAULTS,
    POLICIES,
    add_agent,
    add_integration,
    add_rule,
    error_of,
    make_group,
    make_team,
    policy_audit,
    post_rule,
    rule_count,
)

# ---- creating ----


async def test_a_rule_at_each_level_and_of_each_kind(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    await add_agent(db, t.account.id, "helper-bot", "Helper Bot")
    await add_integration(db, t.account.id, "slack", "Slack")
    group_id = await make_group(client, t.owner_headers, "Engineering", t.member.id)
    cases: list[tuple[dict[str, Any], str, str, str]] = [
        # body, its scope id, applies_to, resource_name
        (
            {"scope": "account", "resource_type": "model", "resource": "gpt-4o", "effect": "deny"},
            str(t.account.id), "Everyone", "gpt-4o",
        ),
        (
            {"scope": "group", "scope_id": group_id, "resource_type": "agent", "resource": "helper-bot",
             "effect": "allow", "note": "  the team's bot  "},
            group_id, "Group Engineering", "Helper Bot",
        ),
        (
            {"scope": "user", "scope_id": str(t.member.id), "resource_type": "integration",
             "resource": "slack", "effect": "deny"},
            str(t.member.id), t.member.email, "Slack",
        ),
        (
            {"scope": "user", "scope_id": str(t.member.id), "resource_type": "feature",
             "resource": "export.reports", "effect": "deny"},
            str(t.member.id), t.member.email, "export.reports",
        ),
        (
            {"scope": "account", "scope_id": str(t.account.id), "resource_type": "model", "resource": "*",
             "effect": "allow"},
            str(t.account.id), "Everyone", "All models",
        ),
    ]  # fmt: skip
    created = []
    for body, scope_id, applies_to, resource_name in cases:
        response = await post_rule(client, t.owner_headers, **body)
        assert response.status_code == 201, response.text
        rule = response.json()
        assert (rule["scope"], rule["scope_id"], rule["applies_to"]) == (body["scope"], scope_id, applies_to)
        assert (rule["resource_type"], rule["resource_name"], rule["effect"]) == (
            body["resource_type"], resource_name, body["effect"],
        )  # fmt: skip
        assert rule["note"] == body.get("note", "").strip()
        assert (rule["created_by"], rule["created_by_label"]) == (str(t.owner.id), t.owner.email)
        assert datetime.fromisoformat(rule["created_at"]).tzinfo is not None
        fetched = await client.get(f"{POLICIES}/{rule['id']}", headers=t.owner_headers)
        assert fetched.status_code == 200
        assert fetched.json() == rule
        created.append(rule)
    assert created[0]["resource"] == str(t.models["gpt-4o"])  # a model is stored by its id
    assert [r["resource"] for r in created[1:]] == ["helper-bot", "slack", "export.reports", "*"]
    assert await rule_count(db, t.account.id) == len(cases)


async def test_a_model_named_by_name_or_by_id_is_stored_by_id_and_survives_a_rename(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    model_id = str(t.models["claude"])
    by_name = await add_rule(
        client, t.owner_headers, scope="account", resource_type="model", resource="claude", effect="deny"
    )
    by_id = await add_rule(
        client, t.owner_headers, scope="user", scope_id=str(t.member.id), resource_type="model",
        resource=model_id, effect="allow",
    )  # fmt: skip
    assert by_name["resource"] == by_id["resource"] == model_id
    assert by_name["resource_name"] == by_id["resource_name"] == "claude"
    # The same rule again, by id this time: the same stored rule.
    again = await post_rule(
        client, t.owner_headers, scope="account", resource_type="model", resource=model_id, effect="deny"
    )
    assert again.status_code == 409

    await providers.edit_model(
        db, Actor.system(t.account.id), t.models["claude"], changes={"name": "claude-2"}
    )
    await db.commit()
    fetched = (await client.get(f"{POLICIES}/{by_name['id']}", headers=t.owner_headers)).json()
    assert (fetched["resource"], fetched["resource_name"]) == (model_id, "claude-2")
    # The old name no longer names a model.
    stale = await post_rule(
        client, t.owner_headers, scope="account", resource_type="model", resource="claude", effect="allow"
    )
    assert stale.status_code == 422
    assert error_of(stale)["code"] == "unknown_model"


_OK = {"scope": "account", "resource_type": "model", "resource": "gpt-4o", "effect": "deny"}
INVALID: list[tuple[dict[str, Any], str, str]] = [
    # body, error code, the field named in the details
    ({**_OK, "resource": "gpt-9"}, "unknown_model", "resource"),
    ({**_OK, "resource": str(uuid.uuid4())}, "unknown_model", "resource"),
    ({**_OK, "resource_type": "feature", "resource": "teleport"}, "unknown_feature", "resource"),
    ({**_OK, "scope": "group"}, "invalid_input", "scope_id"),
    ({**_OK, "scope": "user"}, "invalid_input", "scope_id"),
    ({**_OK, "effect": "maybe"}, "invalid_input", "effect"),
    ({**_OK, "effect": None}, "invalid_input", "effect"),
    ({k: v for k, v in _OK.items() if k != "effect"}, "invalid_input", "effect"),
    ({**_OK, "scope": "planet"}, "invalid_input", "scope"),
    ({**_OK, "resource_type": "tool"}, "invalid_input", "resource_type"),
    ({**_OK, "resource": ""}, "invalid_input", "resource"),
    ({**_OK, "resource": "   "}, "invalid_input", "resource"),
    ({**_OK, "resource": "x" * 201}, "invalid_input", "resource"),
    ({**_OK, "resource_type": "agent", "resource": "my agent"}, "unknown_agent", "resource"),
    ({**_OK, "resource_type": "agent", "resource": str(uuid.uuid4())}, "unknown_agent", "resource"),
    ({**_OK, "resource_type": "integration", "resource": "slack"}, "unknown_integration", "resource"),
    ({**_OK, "note": "n" * 501}, "invalid_input", "note"),
    ({**_OK, "colour": "red"}, "invalid_input", "colour"),
    ({**_OK, "scope": "user", "scope_id": "not-a-uuid"}, "invalid_input", "scope_id"),
]


async def test_an_invalid_rule_is_refused_with_a_clear_error_and_nothing_is_created(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    wrong = []
    for body, code, field in INVALID:
        response = await post_rule(client, t.owner_headers, **body)
        error = error_of(response)
        fields = [d["field"] for d in error.get("details", [])]
        if response.status_code not in (400, 422) or error["code"] != code or field not in fields:
            wrong.append(f"{body}: {response.status_code} {error}, expected {code} naming {field}")
        elif not error["message"]:
            wrong.append(f"{body}: no message")
    assert wrong == [], "\n".join(wrong)
    assert await rule_count(db, t.account.id) == 0
    assert await policy_audit(db, t.account.id) == []
    # The valid body itself is accepted (the cases above differ from it by one thing each).
    assert (await post_rule(client, t.owner_headers, **_OK)).status_code == 201


async def test_the_same_rule_twice_is_a_conflict_but_allow_and_deny_may_coexist(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    body = {"scope": "user", "scope_id": str(t.member.id), "resource_type": "feature",
            "resource": "files.upload", "effect": "deny"}  # fmt: skip
    first = await add_rule(client, t.owner_headers, **body)
    twice = await post_rule(client, t.owner_headers, **{**body, "note": "another note"})
    assert twice.status_code == 409
    error = error_of(twice)
    assert error["code"] == "policy_exists"
    assert first["id"] in error["message"]
    assert await rule_count(db, t.account.id) == 1
    allow = await post_rule(client, t.owner_headers, **{**body, "effect": "allow"})
    assert allow.status_code == 201
    assert await rule_count(db, t.account.id) == 2
    assert [e.action for e in await policy_audit(db, t.account.id)] == ["policy.created"] * 2


async def test_the_same_rule_created_twice_at_once_is_a_conflict_not_an_error(
    client: AsyncClient, db: AsyncSession, database_url: str
) -> None:
    """Two administrators add the same rule at the same moment: one gets 201, the other 409, as when
    they do it one after the other. On PostgreSQL the second request's check runs while the first
    one's insert is not committed yet, so only the unique constraint can tell."""
    t = await make_team(db)
    body = {"scope": "account", "resource_type": "model", "resource": "*", "effect": "deny"}
    engine = make_engine(database_url, sqlite_immediate=False)
    try:
        async with make_sessionmaker(engine)() as first:
            row = await policies.create_policy(
                first, Actor.system(t.account.id), scope="account", scope_id=None, resource_type="model",
                resource="*", effect="deny",
            )  # fmt: skip
            if database_url.startswith("postgresql"):
                second = asyncio.create_task(post_rule(client, t.owner_headers, **body))
                await _until_an_insert_waits(db)  # the second request waits for the first
                await first.commit()
                response = await second
            else:  # SQLite lets one writer in at a time: the second request starts after the commit
                await first.commit()
                response = await post_rule(client, t.owner_headers, **body)
    finally:
        await engine.dispose()
    assert response.status_code == 409, response.text
    error = error_of(response)
    assert error["code"] == "policy_exists"
    assert await rule_count(db, t.account.id) == 1
    assert str(row.policy.id) in error["message"]


async def _until_an_insert_waits(db: AsyncSession) -> None:
    """Wait (polling PostgreSQL, at most ~30 s) until the second request waits on a lock held by the
    first: on the account's lock (its audit chain head: rule changes are serialised) or, without that,
    on its insert."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() "
        "AND (query LIKE 'INSERT INTO access_policies%' OR query LIKE '%FROM audit_chain_heads%FOR UPDATE%')"
    )
    for _ in range(3000):
        if await db.scalar(query):
            await db.commit()
            return
        await db.commit()
        await asyncio.sleep(0.01)
    raise AssertionError("the second request never reached its insert")


# ---- isolation and permissions ----


async def test_another_accounts_group_user_model_and_rules_are_not_found(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    them = await make_team(db, name="Elsewhere")
    their_group = await make_group(client, them.owner_headers, "Theirs", them.member.id)
    their_rule = await add_rule(
        client, them.owner_headers, scope="group", scope_id=their_group, resource_type="model",
        resource="gpt-4o", effect="deny",
    )  # fmt: skip
    base = {"resource_type": "feature", "resource": "files.upload", "effect": "deny"}
    refused = [
        (await post_rule(client, t.owner_headers, scope="group", scope_id=their_group, **base), 404,
         "group_not_found"),
        (await post_rule(client, t.owner_headers, scope="user", scope_id=str(them.member.id), **base), 404,
         "user_not_found"),
        (await post_rule(client, t.owner_headers, scope="account", scope_id=str(them.account.id), **base),
         404, "account_not_found"),
        # A user's id where a group's is expected (and the other way round).
        (await post_rule(client, t.owner_headers, scope="group", scope_id=str(t.member.id), **base), 404,
         "group_not_found"),
        (await post_rule(client, t.owner_headers, scope="user", scope_id=str(t.default_group_id), **base),
         404, "user_not_found"),
        (await post_rule(client, t.owner_headers, scope="account", resource_type="model",
                         resource=str(them.models["gpt-4o"]), effect="deny"), 422, "unknown_model"),
        (await client.get(f"{POLICIES}/{their_rule['id']}", headers=t.owner_headers), 404,
         "policy_not_found"),
        (await client.delete(f"{POLICIES}/{their_rule['id']}", headers=t.owner_headers), 404,
         "policy_not_found"),
        (await client.delete(f"{POLICIES}/{uuid.uuid4()}", headers=t.owner_headers), 404, "policy_not_found"),
        (await client.get(f"{API}/users/{them.member.id}/effective-access", headers=t.owner_headers), 404,
         "user_not_found"),
    ]  # fmt: skip
    for response, status, code in refused:
        assert (response.status_code, error_of(response)["code"]) == (status, code), response.text
    assert await rule_count(db, t.account.id) == 0
    assert await rule_count(db, them.account.id) == 1  # theirs is still there
    listed = await client.get(POLICIES, headers=t.owner_headers)
    assert listed.json()["items"] == []
    assert (await client.get(f"{POLICIES}/{their_rule['id']}", headers=them.owner_headers)).status_code == 200


async def test_a_member_cannot_manage_policies(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    rule = await add_rule(
        client, t.owner_headers, scope="account", resource_type="model", resource="mini", effect="deny"
    )
    body = {"scope": "account", "resource_type": "model", "resource": "gpt-4o", "effect": "deny"}
    h = t.member_headers
    for response in [
        await client.get(POLICIES, headers=h),
        await client.post(POLICIES, json=body, headers=h),
        await client.get(f"{POLICIES}/{rule['id']}", headers=h),
        await client.delete(f"{POLICIES}/{rule['id']}", headers=h),
        await client.get(DEFAULTS, headers=h),
        await client.patch(DEFAULTS, json={"model": "deny"}, headers=h),
        await client.get(f"{API}/users/{t.owner.id}/effective-access", headers=h),
    ]:
        assert response.status_code == 403, (response.request.url, response.text)
        assert error_of(response)["code"] == "not_permitted"
    assert await rule_count(db, t.account.id) == 1
    assert [e.action for e in await policy_audit(db, t.account.id)] == ["policy.created"]
    defaults = await client.get(DEFAULTS, headers=t.owner_headers)
    assert defaults.json()["model"] == "allow"
    # Their own effective access they may see.
    own = await client.get(f"{API}/users/{t.member.id}/effective-access", headers=h)
    assert own.status_code == 200
    mini = next(i for i in own.json()["items"] if i["name"] == "mini")
    assert (mini["allowed"], mini["rule"]["id"]) == (False, rule["id"])
    # An admin manages them like the owner.
    assert (await client.get(POLICIES, headers=t.admin_headers)).json()["meta"]["total"] == 1
    # Without a token: 401.
    assert (await client.get(POLICIES)).status_code == 401


# ---- listing ----


async def test_list_filters_and_pages(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    await add_agent(db, t.account.id, "helper", "Helper")
    group_id = await make_group(client, t.owner_headers, "Engineering", t.member.id)
    other_group = await make_group(client, t.owner_headers, "Sales")
    made = {
        "user-model": await add_rule(client, t.owner_headers, scope="user", scope_id=str(t.member.id),
                                     resource_type="model", resource="gpt-4o", effect="allow"),
        "account-model": await add_rule(client, t.owner_headers, scope="account", resource_type="model",
                                        resource="*", effect="deny"),
        "group-feature": await add_rule(client, t.owner_headers, scope="group", scope_id=group_id,
                                        resource_type="feature", resource="files.upload", effect="deny"),
        "other-group-model": await add_rule(client, t.owner_headers, scope="group", scope_id=other_group,
                                            resource_type="model", resource="claude", effect="allow"),
        "account-agent": await add_rule(client, t.owner_headers, scope="account", resource_type="agent",
                                        resource="helper", effect="deny"),
    }  # fmt: skip
    ids = {name: rule["id"] for name, rule in made.items()}

    async def listed(**params: Any) -> list[str]:
        response = await client.get(POLICIES, params=params, headers=t.owner_headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    everything = await listed()
    assert sorted(everything) == sorted(ids.values())
    # Account level first, then groups, then users.
    levels = [next(r["scope"] for r in made.values() if r["id"] == i) for i in everything]
    assert levels == ["account", "account", "group", "group", "user"]
    assert sorted(await listed(scope="account")) == sorted([ids["account-model"], ids["account-agent"]])
    assert await listed(scope="group", scope_id=group_id) == [ids["group-feature"]]
    assert await listed(scope_id=str(t.member.id)) == [ids["user-model"]]
    assert sorted(await listed(resource_type="model")) == sorted(
        [ids["user-model"], ids["account-model"], ids["other-group-model"]]
    )
    assert await listed(scope="group", resource_type="model") == [ids["other-group-model"]]
    assert await listed(resource_type="integration") == []

    pages = []
    for page in (1, 2, 3):
        response = await client.get(POLICIES, params={"per_page": 2, "page": page}, headers=t.owner_headers)
        body = response.json()
        assert body["meta"] == {"page": page, "per_page": 2, "total": 5, "pages": 3}
        pages.append([item["id"] for item in body["items"]])
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == everything
    for bad in ({"scope": "planet"}, {"resource_type": "tool"}, {"per_page": 0}, {"scope_id": "x"}):
        response = await client.get(POLICIES, params=bad, headers=t.owner_headers)
        assert response.status_code == 422, bad
        assert error_of(response)["code"] == "invalid_input"
