"""Access policies through the REST API: /policies/defaults, the audit trail of rules, a deleted
group's rules going with it, and users/{id}/effective-access."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.users.models import UserRole
from tests.builders import bearer, make_token, make_user
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
    rule_count,
)

# ---- defaults ----


async def test_defaults_are_read_changed_and_audited(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    initial = await client.get(DEFAULTS, headers=t.owner_headers)
    assert initial.status_code == 200
    assert initial.json() == {
        "model": "allow", "agent": "allow", "integration": "allow", "feature": "allow",
        "admins_exempt": False,
    }  # fmt: skip

    changed = await client.patch(
        DEFAULTS, json={"model": "deny", "admins_exempt": True}, headers=t.owner_headers
    )
    assert changed.status_code == 200, changed.text
    expected = {**initial.json(), "model": "deny", "admins_exempt": True}
    assert changed.json() == expected
    assert (await client.get(DEFAULTS, headers=t.admin_headers)).json() == expected
    [entry] = await policy_audit(db, t.account.id)
    assert entry.action == "policy.defaults_updated"
    assert entry.before == {"model": "allow", "admins_exempt": False}
    assert entry.after == {"model": "deny", "admins_exempt": True}
    assert entry.actor_id == t.owner.id

    again = await client.patch(DEFAULTS, json={"feature": "deny", "model": "deny"}, headers=t.admin_headers)
    assert again.json() == {**expected, "feature": "deny"}
    entries = await policy_audit(db, t.account.id)
    assert len(entries) == 2
    assert (entries[1].before, entries[1].after, entries[1].actor_id) == (
        {"feature": "allow"}, {"feature": "deny"}, t.admin.id,
    )  # fmt: skip

    # Nothing changed: nothing recorded.
    for body in ({}, {"model": "deny"}):
        same = await client.patch(DEFAULTS, json=body, headers=t.owner_headers)
        assert same.status_code == 200
    assert len(await policy_audit(db, t.account.id)) == 2

    for bad in ({"model": "maybe"}, {"admins_exempt": "sometimes"}, {"colour": "red"}):
        response = await client.patch(DEFAULTS, json=bad, headers=t.owner_headers)
        assert response.status_code == 422, bad
        assert error_of(response)["code"] == "invalid_input"
    assert (await client.get(DEFAULTS, headers=t.owner_headers)).json() == {**expected, "feature": "deny"}
    assert len(await policy_audit(db, t.account.id)) == 2


async def test_defaults_are_per_account(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    them = await make_team(db, name="Elsewhere")
    await client.patch(DEFAULTS, json={"agent": "deny"}, headers=t.owner_headers)
    assert (await client.get(DEFAULTS, headers=them.owner_headers)).json()["agent"] == "allow"
    assert await policy_audit(db, them.account.id) == []


# ---- audit and deletion ----


async def test_creating_and_deleting_a_rule_are_audited(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    rule = await add_rule(
        client, t.owner_headers, scope="user", scope_id=str(t.member.id), resource_type="model",
        resource="mini", effect="deny", note="Too expensive",
    )  # fmt: skip
    state = {
        "scope": "user",
        "scope_id": str(t.member.id),
        "applies_to": t.member.email,
        "resource_type": "model",
        "resource": str(t.models["mini"]),
        "resource_name": "mini",
        "effect": "deny",
        "note": "Too expensive",
    }
    [created] = await policy_audit(db, t.account.id)
    assert (created.action, created.target_type, created.target_id) == (
        "policy.created", "access_policy", rule["id"],
    )  # fmt: skip
    assert (created.before, created.after) == (None, state)
    assert (created.actor_id, created.actor_label) == (t.owner.id, t.owner.email)

    deleted = await client.delete(f"{POLICIES}/{rule['id']}", headers=t.admin_headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"id": rule["id"], "deleted": True}
    assert (await client.get(f"{POLICIES}/{rule['id']}", headers=t.owner_headers)).status_code == 404
    assert await rule_count(db, t.account.id) == 0
    entries = await policy_audit(db, t.account.id)
    assert [e.action for e in entries] == ["policy.created", "policy.deleted"]
    assert (entries[1].target_id, entries[1].before, entries[1].after) == (rule["id"], state, None)
    assert entries[1].actor_id == t.admin.id
    again = await client.delete(f"{POLICIES}/{rule['id']}", headers=t.owner_headers)
    assert (again.status_code, error_of(again)["code"]) == (404, "policy_not_found")
    assert len(await policy_audit(db, t.account.id)) == 2


async def test_deleting_a_group_deletes_its_rules(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    group_id = await make_group(client, t.owner_headers, "Contractors", t.member.id)
    kept_group = await make_group(client, t.owner_headers, "Staff")
    group_rules = [
        await add_rule(client, t.owner_headers, scope="group", scope_id=group_id, resource_type="model",
                       resource="*", effect="deny"),
        await add_rule(client, t.owner_headers, scope="group", scope_id=group_id, resource_type="feature",
                       resource="export.reports", effect="deny"),
    ]  # fmt: skip
    kept = [
        await add_rule(client, t.owner_headers, scope="group", scope_id=kept_group, resource_type="model",
                       resource="*", effect="deny"),
        await add_rule(client, t.owner_headers, scope="account", resource_type="model", resource="claude",
                       effect="allow"),
        await add_rule(client, t.owner_headers, scope="user", scope_id=str(t.member.id),
                       resource_type="model", resource="mini", effect="allow"),
    ]  # fmt: skip
    before = await client.get(
        f"{API}/users/{t.member.id}/effective-access",
        params={"resource_type": "model"},
        headers=t.owner_headers,
    )
    assert {i["name"]: i["allowed"] for i in before.json()["items"]} == {
        "claude": False, "gpt-4o": False, "mini": True,
    }  # fmt: skip

    response = await client.delete(f"{API}/groups/{group_id}", headers=t.owner_headers)
    assert response.status_code == 200, response.text

    listed = (await client.get(POLICIES, headers=t.owner_headers)).json()["items"]
    assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in kept)
    for rule in group_rules:
        assert (await client.get(f"{POLICIES}/{rule['id']}", headers=t.owner_headers)).status_code == 404
    deleted = [e for e in await policy_audit(db, t.account.id) if e.action == "policy.deleted"]
    assert sorted(e.target_id or "" for e in deleted) == sorted(r["id"] for r in group_rules)
    assert all(e.before and e.before["applies_to"] == "Group Contractors" for e in deleted)
    # The former member is now in Default: the account's rules and their own apply.
    after = await client.get(
        f"{API}/users/{t.member.id}/effective-access",
        params={"resource_type": "model"},
        headers=t.owner_headers,
    )
    assert {i["name"]: (i["allowed"], i["decided_by"]) for i in after.json()["items"]} == {
        "claude": (True, "rule"), "gpt-4o": (True, "default"), "mini": (True, "rule"),
    }  # fmt: skip


# ---- effective access ----


async def test_effective_access_names_the_deciding_rule(client: AsyncClient, db: AsyncSession) -> None:
    t = await make_team(db)
    group_id = await make_group(client, t.owner_headers, "Engineering", t.member.id)
    account_deny = await add_rule(
        client, t.owner_headers, scope="account", resource_type="model", resource="*", effect="deny",
        note="Closed by default",
    )  # fmt: skip
    group_allow = await add_rule(
        client, t.owner_headers, scope="group", scope_id=group_id, resource_type="model", resource="gpt-4o",
        effect="allow",
    )  # fmt: skip
    url = f"{API}/users/{t.member.id}/effective-access"

    response = await client.get(url, params={"resource_type": "model"}, headers=t.owner_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["user_id"], body["email"]) == (str(t.member.id), t.member.email)
    items = {i["name"]: i for i in body["items"]}
    assert sorted(items) == ["claude", "gpt-4o", "mini"]
    gpt = items["gpt-4o"]
    assert (gpt["resource_type"], gpt["resource"]) == ("model", str(t.models["gpt-4o"]))
    assert (gpt["allowed"], gpt["decided_by"], gpt["level"]) == (True, "rule", "group")
    rule = gpt["rule"]
    assert (rule["id"], rule["scope"], rule["scope_id"], rule["applies_to"], rule["effect"]) == (
        group_allow["id"], "group", group_id, "Group Engineering", "allow",
    )  # fmt: skip
    assert rule["created_by_label"] == t.owner.email
    assert rule["created_at"] is not None
    assert "group-level rule (Group Engineering)" in gpt["explanation"]
    assert group_allow["id"] in gpt["explanation"]
    claude = items["claude"]
    assert (claude["allowed"], claude["decided_by"], claude["level"]) == (False, "rule", "account")
    assert (claude["rule"]["id"], claude["rule"]["applies_to"]) == (account_deny["id"], "Everyone")
    assert (claude["rule"]["resource"], claude["rule"]["note"]) == ("*", "Closed by default")
    assert "denied" in claude["explanation"]
    assert account_deny["id"] in claude["explanation"]

    # One resource, by its name: the model's id comes back.
    one = await client.get(
        url, params={"resource_type": "model", "resource": "gpt-4o"}, headers=t.owner_headers
    )
    [item] = one.json()["items"]
    assert (item["resource"], item["rule"]["id"]) == (str(t.models["gpt-4o"]), group_allow["id"])

    # Everything: every model, every feature, every agent and every integration of the account.
    await add_agent(db, t.account.id, "helper", "Helper")
    await add_agent(db, t.account.id, "writer", "Writer")
    await add_integration(db, t.account.id, "slack", "Slack")
    await add_rule(client, t.owner_headers, scope="account", resource_type="agent", resource="helper",
                   effect="deny")  # fmt: skip
    await add_rule(client, t.owner_headers, scope="user", scope_id=str(t.owner.id),
                   resource_type="integration", resource="slack", effect="deny")  # fmt: skip
    everything = (await client.get(url, headers=t.owner_headers)).json()["items"]
    kinds: dict[str, set[str]] = {}
    for i in everything:
        kinds.setdefault(i["resource_type"], set()).add(i["name"])
    assert kinds["model"] == {"claude", "gpt-4o", "mini"}
    assert {"gateway.api_access", "api_tokens.create", "credit_requests.create", "export.reports"} <= kinds[
        "feature"
    ]
    assert kinds["agent"] == {"Helper", "Writer"}
    assert kinds["integration"] == {"Slack"}
    slack = next(i for i in everything if i["name"] == "Slack")  # another user's rule: not theirs
    assert (slack["allowed"], slack["decided_by"], slack["rule"]) == (True, "default", None)
    features = [i for i in everything if i["resource_type"] == "feature"]
    assert all((f["allowed"], f["decided_by"], f["level"]) == (True, "default", None) for f in features)
    assert all("default" in f["explanation"] for f in features)


async def test_effective_access_of_owners_and_admins_shows_the_exemption(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await make_team(db)
    deny = await add_rule(
        client, t.owner_headers, scope="account", resource_type="model", resource="*", effect="deny"
    )
    params = {"resource_type": "model", "resource": "mini"}
    for user in (t.owner, t.admin, t.member):
        [item] = (
            await client.get(
                f"{API}/users/{user.id}/effective-access", params=params, headers=t.owner_headers
            )
        ).json()["items"]
        assert (item["allowed"], item["decided_by"], item["rule"]["id"]) == (False, "rule", deny["id"])
    await client.patch(DEFAULTS, json={"admins_exempt": True}, headers=t.owner_headers)
    for user, exempt in ((t.owner, True), (t.admin, True), (t.member, False)):
        [item] = (
            await client.get(
                f"{API}/users/{user.id}/effective-access", params=params, headers=t.owner_headers
            )
        ).json()["items"]
        if exempt:
            assert (item["allowed"], item["decided_by"], item["level"], item["rule"]) == (
                True, "exempt", None, None,
            )  # fmt: skip
            assert "exempt" in item["explanation"]
        else:
            assert (item["allowed"], item["decided_by"], item["rule"]["id"]) == (False, "rule", deny["id"])


async def test_a_user_level_rule_applies_to_that_user_only(client: AsyncClient, db: AsyncSession) -> None:
    """A user-level rule applies to that user only, even to another user of the same group."""
    t = await make_team(db)
    neighbour = await make_user(db, t.account, role=UserRole.member)
    neighbour_headers = bearer(await make_token(db, neighbour))
    rule = await add_rule(
        client, t.owner_headers, scope="user", scope_id=str(t.member.id), resource_type="feature",
        resource="files.upload", effect="deny",
    )  # fmt: skip
    params = {"resource_type": "feature", "resource": "files.upload"}
    mine = (await client.get(f"{API}/users/{t.member.id}/effective-access", params=params,
                             headers=t.member_headers)).json()["items"]  # fmt: skip
    theirs = (await client.get(f"{API}/users/{neighbour.id}/effective-access", params=params,
                               headers=neighbour_headers)).json()["items"]  # fmt: skip
    assert [(i["allowed"], i["rule"]["id"]) for i in mine] == [(False, rule["id"])]
    assert [(i["allowed"], i["decided_by"]) for i in theirs] == [(True, "default")]
    unknown = await client.get(f"{API}/users/{uuid.uuid4()}/effective-access", headers=t.owner_headers)
    assert (unknown.status_code, error_of(unknown)["code"]) == (404, "user_not_found")
