"""The independent suite: conflicting rules at every level, set through the API, decided three ways
(a gateway call with the official ``openai`` client, the ``/v1/models`` listing, and the
effective-access API), each compared with a small reference implementation of the documented order
written here from the issue, not from the engine:

1. the most specific level with a rule for the resource wins: the user, then their group, then the account;
2. within that level, a rule for the resource beats a wildcard (``*``);
3. at the same level and specificity, deny beats allow;
4. with no rule, the account's default for that kind applies;
5. owners and admins follow the rules unless the defaults say they are exempt.

The people: ``u`` and ``v`` (members of Engineering, with the admin), ``w`` (member of Sales),
``x`` (a member of Default, with the owner).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.policies.service import FEATURES
from cockpit.providers.models import Model
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.builders import bearer, make_token, make_user
from tests.gateway.conftest import Org, add_model, client_for
from tests.policies.conftest import add_agent, add_integration

API = "/api/v1"
CHAT_MODELS = ("claude-sonnet", "gpt-4o-mini", "sim-a", "sim-b", "sim-chat")
EMBEDDING_MODEL = "embed-small"
KINDS = ("model", "agent", "integration", "feature")
# The catalogues: the agents and integrations the rules name, and one of each that no rule names.
AGENTS = {"helper": "Helper", "scribe": "Scribe"}
INTEGRATIONS = {"slack": "Slack", "wiki": "Wiki"}

Spec = tuple[str, str, str, str]  # (who: account, a group or a person; kind; resource or "*"; effect)


@dataclass(frozen=True)
class World:
    name: str
    defaults: dict[str, Any]
    rules: list[Spec]


ADMIN_RULES: list[Spec] = [
    ("account", "model", "*", "deny"),
    ("account", "model", "gpt-4o-mini", "allow"),
    ("eng", "model", "sim-chat", "allow"),
    ("admin", "model", "sim-a", "deny"),
    ("owner", "feature", "gateway.api_access", "deny"),
    ("account", "feature", "api_tokens.create", "deny"),
    ("admin", "agent", "helper", "deny"),
]

WORLDS = [
    World("no-rules", {}, []),
    World(
        "levels-and-wildcards",
        {},
        [
            ("account", "model", "*", "deny"),
            ("account", "model", "gpt-4o-mini", "allow"),
            ("eng", "model", "*", "allow"),  # a group's wildcard beats the account's specific rule
            ("eng", "model", "sim-b", "deny"),
            ("u", "model", "sim-a", "deny"),
            ("u", "model", "*", "allow"),  # the user's wildcard beats the group's specific rule
            ("sales", "model", "sim-b", "allow"),
            ("w", "model", "gpt-4o-mini", "deny"),
            ("account", "feature", "export.reports", "deny"),
            ("eng", "feature", "export.reports", "allow"),
            ("u", "feature", "credit_requests.create", "deny"),
            ("account", "agent", "*", "deny"),
            ("eng", "agent", "helper", "allow"),
            ("sales", "integration", "slack", "deny"),
        ],
    ),
    World(
        "deny-beats-allow-at-the-same-level",
        {},
        [
            ("account", "model", "sim-a", "allow"),
            ("account", "model", "sim-a", "deny"),
            ("eng", "model", "*", "allow"),
            ("eng", "model", "*", "deny"),
            ("eng", "model", "sim-chat", "allow"),  # specific beats the wildcard, deny or not
            ("u", "model", "gpt-4o-mini", "allow"),
            ("u", "model", "gpt-4o-mini", "deny"),
            ("v", "model", "claude-sonnet", "allow"),
            ("w", "model", "sim-b", "deny"),
            ("x", "feature", "gateway.api_access", "allow"),
            ("x", "feature", "gateway.api_access", "deny"),
            ("sales", "feature", "gateway.api_access", "deny"),
            ("w", "feature", "gateway.api_access", "allow"),
            ("account", "integration", "*", "allow"),
            ("account", "integration", "slack", "deny"),
        ],
    ),
    World(
        "defaults-deny",
        {"model": "deny", "feature": "deny", "agent": "deny"},
        [
            ("account", "feature", "gateway.api_access", "allow"),
            ("sales", "feature", "gateway.api_access", "deny"),
            ("account", "model", "sim-chat", "allow"),
            ("eng", "model", "sim-a", "allow"),
            ("u", "model", "sim-chat", "deny"),
            ("w", "model", "*", "allow"),
            ("owner", "model", "claude-sonnet", "allow"),
            ("v", "agent", "helper", "allow"),
        ],
    ),
    World("admins-not-exempt", {"model": "deny", "admins_exempt": False}, ADMIN_RULES),
    World("admins-exempt", {"model": "deny", "admins_exempt": True}, ADMIN_RULES),
]


# ---- the reference implementation ----


@dataclass(frozen=True)
class Made:
    id: str
    scope: str
    scope_id: str
    kind: str
    resource: str  # as stored: a model's id, an identifier, a feature key or "*"
    effect: str


@dataclass(frozen=True)
class Person:
    key: str
    id: str
    role: str
    group_id: str
    token: str


@dataclass(frozen=True)
class Expected:
    allowed: bool
    basis: str  # rule, default or exempt
    rule: Made | None = None


def reference(rules: list[Made], defaults: dict[str, Any], account_id: str, who: Person, kind: str,
              resource: str) -> Expected:  # fmt: skip
    if defaults.get("admins_exempt") and who.role in ("owner", "admin"):
        return Expected(True, "exempt")
    for scope, scope_id in (("user", who.id), ("group", who.group_id), ("account", account_id)):
        here = [r for r in rules if (r.scope, r.scope_id, r.kind) == (scope, scope_id, kind)]
        for candidates in (
            [r for r in here if r.resource == resource],
            [r for r in here if r.resource == "*"],
        ):
            if candidates:
                denying = [r for r in candidates if r.effect == "deny"]
                chosen = denying[0] if denying else candidates[0]
                return Expected(chosen.effect == "allow", "rule", chosen)
    return Expected(defaults.get(kind, "allow") == "allow", "default")


# ---- the stage ----


@dataclass
class Stage:
    account_id: str
    people: dict[str, Person]
    groups: dict[str, str]  # eng, sales -> id
    models: dict[str, str]  # name -> id
    rest: httpx.AsyncClient
    rules: list[Made] = field(default_factory=list)


@pytest.fixture
async def stage(gateway_app: Any, db: AsyncSession, org: Org) -> AsyncIterator[Stage]:
    for name in ("sim-a", "sim-b"):
        await add_model(db, org, name, org.simulated_provider_id)
    for slug, name in AGENTS.items():
        await add_agent(db, org.account_id, slug, name)
    for slug, name in INTEGRATIONS.items():
        await add_integration(db, org.account_id, slug, name)
    owner = await db.scalar(
        select(User).where(User.account_id == org.account_id, User.role == UserRole.owner)
    )
    assert owner is not None
    account = await db.get(Account, org.account_id)
    assert account is not None
    users: dict[str, User] = {"x": org.member, "admin": org.admin, "owner": owner}
    for key in ("u", "v", "w"):
        users[key] = await make_user(db, account, role=UserRole.member)
    tokens = {key: await make_token(db, user, scopes=("admin", "gateway")) for key, user in users.items()}
    models = {name: str(i) for i, name in (await db.execute(select(Model.id, Model.name).where(
        Model.account_id == account.id))).all()}  # fmt: skip
    transport = httpx.ASGITransport(app=gateway_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=bearer(tokens["owner"])
    ) as rest:
        groups = {}
        for key, name, members in (("eng", "Engineering", ("u", "v", "admin")), ("sales", "Sales", ("w",))):
            created = await rest.post(f"{API}/groups", json={"name": name})
            assert created.status_code == 201, created.text
            groups[key] = created.json()["id"]
            moved = await rest.post(
                f"{API}/groups/{groups[key]}/members", json={"user_ids": [str(users[m].id) for m in members]}
            )
            assert moved.status_code == 200, moved.text
        default_group = str(owner.group_id)
        group_of = {"u": "eng", "v": "eng", "admin": "eng", "w": "sales"}
        people = {
            key: Person(
                key,
                str(user.id),
                user.role.value,
                groups[group_of[key]] if key in group_of else default_group,
                tokens[key],
            )
            for key, user in users.items()
        }
        yield Stage(str(account.id), people, groups, models, rest)


async def arrange(stage: Stage, world: World) -> None:
    if world.defaults:
        response = await stage.rest.patch(f"{API}/policies/defaults", json=world.defaults)
        assert response.status_code == 200, response.text
    for n, (who, kind, resource, effect) in enumerate(world.rules):
        if who == "account":
            scope, scope_id = "account", stage.account_id
        elif who in stage.groups:
            scope, scope_id = "group", stage.groups[who]
        else:
            scope, scope_id = "user", stage.people[who].id
        stored = stage.models[resource] if kind == "model" and resource != "*" else resource
        sent = stored if n % 2 else resource  # models by id and by name, alternately
        body = {"scope": scope, "resource_type": kind, "resource": sent, "effect": effect}
        if scope != "account" or n % 3 == 0:
            body["scope_id"] = scope_id
        response = await stage.rest.post(f"{API}/policies", json=body)
        assert response.status_code == 201, response.text
        made = response.json()
        assert (made["scope_id"], made["resource"]) == (scope_id, stored)
        stage.rules.append(Made(made["id"], scope, scope_id, kind, stored, effect))


def reason(expected: Expected) -> str:
    """What the refusal's message must contain: the deciding rule's id, or the default."""
    return expected.rule.id if expected.rule is not None else "default"


# ---- the three ways of deciding ----


def error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    """The OpenAI-shaped error the gateway answered (the client hands over its inner object)."""
    return exc.body if isinstance(exc.body, dict) else {}


async def check_effective_access(stage: Stage, world: World, who: Person) -> list[str]:
    response = await stage.rest.get(f"{API}/users/{who.id}/effective-access")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    wrong = []
    seen: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for item in items:
        kind, resource = item["resource_type"], item["resource"]
        seen[kind].add(resource)
        exp = reference(stage.rules, world.defaults, stage.account_id, who, kind, resource)
        got = (
            item["allowed"],
            item["decided_by"],
            item["rule"]["id"] if item["rule"] else None,
            item["level"],
        )
        want = (
            exp.allowed,
            exp.basis,
            exp.rule.id if exp.rule else None,
            exp.rule.scope if exp.rule else None,
        )
        if got != want:
            wrong.append(f"effective access of {who.key} to {kind} {item['name']}: {got}, expected {want}")
        elif exp.rule is not None and exp.rule.id not in item["explanation"]:
            wrong.append(f"effective access of {who.key} to {item['name']}: explanation lacks the rule id")
    assert seen["model"] == set(stage.models.values())
    assert seen["feature"] == set(FEATURES)
    # Every agent and integration of the account, whether a rule names it or not; by name.
    assert (seen["agent"], seen["integration"]) == (set(AGENTS), set(INTEGRATIONS))
    catalogue = {**AGENTS, **INTEGRATIONS}
    assert all(
        i["name"] == catalogue[i["resource"]] for i in items if i["resource_type"] in ("agent", "integration")
    )
    return wrong


async def check_gateway(gateway_app: Any, stage: Stage, world: World, who: Person) -> list[str]:
    client = client_for(gateway_app, who.token)
    wrong = []

    def decided(kind: str, resource: str) -> Expected:
        return reference(stage.rules, world.defaults, stage.account_id, who, kind, resource)

    api = decided("feature", "gateway.api_access")
    # The listing.
    try:
        listed: list[str] | str = [m.id async for m in client.models.list()]
    except openai.APIStatusError as exc:
        body = error_body(exc)
        listed = f"{exc.status_code} {body.get('code')}"
        if reason(api) not in str(body.get("message")):
            wrong.append(f"{who.key}: the listing's refusal does not name {reason(api)}")
    allowed = sorted(name for name, mid in stage.models.items() if decided("model", mid).allowed)
    # Then the agents the caller may run (every agent is shared with the whole account), by slug.
    allowed += sorted(f"agent:{slug}" for slug in AGENTS if decided("agent", slug).allowed)
    want_listed = allowed if api.allowed else "403 feature_not_allowed"
    if isinstance(listed, list):  # the models in order, then the agents (in any order)
        listed = [m for m in listed if not m.startswith("agent:")] + sorted(
            m for m in listed if m.startswith("agent:")
        )
    if listed != want_listed:
        wrong.append(f"{who.key}: /v1/models gave {listed}, expected {want_listed}")
    # A call to each model.
    for name in (*CHAT_MODELS, EMBEDDING_MODEL):
        exp = decided("model", stage.models[name]) if api.allowed else api
        want = "200" if exp.allowed else "403 model_not_allowed" if api.allowed else "403 feature_not_allowed"
        try:
            if name == EMBEDDING_MODEL:
                result = await client.embeddings.create(model=name, input="hello")
                assert result.data
            else:
                completion = await client.chat.completions.create(
                    model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=5
                )
                assert completion.choices[0].message.content
            got, message = "200", ""
        except openai.APIStatusError as exc:
            body = error_body(exc)
            got, message = f"{exc.status_code} {body.get('code')}", str(body.get("message"))
        if got != want:
            wrong.append(f"{who.key} calling {name}: {got}, expected {want}")
        elif not exp.allowed and reason(exp) not in message:
            wrong.append(f"{who.key} calling {name}: the refusal does not name {reason(exp)}: {message}")
    return wrong


@pytest.mark.parametrize("world", WORLDS, ids=[w.name for w in WORLDS])
async def test_the_gateway_and_the_api_agree_with_the_documented_order(
    gateway_app: Any, stage: Stage, world: World
) -> None:
    await arrange(stage, world)
    wrong: list[str] = []
    for who in stage.people.values():
        wrong += await check_effective_access(stage, world, who)
        wrong += await check_gateway(gateway_app, stage, world, who)
    assert wrong == [], "\n".join(wrong)


def test_the_reference_reads_the_order_as_documented() -> None:
    """The reference itself, on the cases the issue spells out (so that a mistake here cannot hide
    the same mistake in the code)."""
    acc, grp = "acc", "grp"
    member = Person("m", "usr", "member", grp, "")
    admin = Person("a", "adm", "admin", grp, "")

    def made(i: int, scope: str, resource: str, effect: str, kind: str = "model") -> Made:
        return Made(
            str(i), scope, {"account": acc, "group": grp, "user": "usr"}[scope], kind, resource, effect
        )

    rules = [
        made(1, "account", "m1", "deny"),
        made(2, "group", "m1", "allow"),  # group over account
        made(3, "group", "*", "deny"),
        made(4, "user", "m2", "allow"),
        made(5, "user", "m2", "deny"),  # deny over allow
        made(6, "account", "m3", "allow"),
    ]
    assert reference(rules, {}, acc, member, "model", "m1") == Expected(True, "rule", rules[1])
    assert reference(rules, {}, acc, member, "model", "m2") == Expected(False, "rule", rules[4])
    assert reference(rules, {}, acc, member, "model", "m3") == Expected(
        False, "rule", rules[2]
    )  # level first
    assert reference(rules, {}, acc, member, "agent", "a1") == Expected(True, "default")
    assert reference(rules, {"agent": "deny"}, acc, member, "agent", "a1") == Expected(False, "default")
    assert reference(rules, {}, acc, admin, "model", "m3") == Expected(False, "rule", rules[2])
    assert reference(rules, {"admins_exempt": True}, acc, admin, "model", "m3") == Expected(True, "exempt")
    assert reference(rules, {"admins_exempt": True}, acc, member, "model", "m3").allowed is False
