"""The resolution order, decided in memory (``policies.engine``): level, then specificity, then deny
over allow, then the default of the kind; the admins' exemption."""

from __future__ import annotations

import uuid

import pytest

from cockpit.policies.engine import Defaults, PolicySet, Rule
from cockpit.policies.models import Effect, ResourceType, Scope
from cockpit.users.models import UserRole

ACCOUNT, GROUP, USER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
SCOPE_IDS = {Scope.account: ACCOUNT, Scope.group: GROUP, Scope.user: USER}
MODEL = ResourceType.model


def rule(scope: Scope, resource: str, effect: Effect, kind: ResourceType = MODEL) -> Rule:
    return Rule(uuid.uuid4(), scope, SCOPE_IDS[scope], kind, resource, effect)


def decide(
    policies: PolicySet, resource: str = "m1", role: UserRole = UserRole.member, kind: ResourceType = MODEL
):  # type: ignore[no-untyped-def]
    return policies.decide(
        account_id=ACCOUNT, user_id=USER, group_id=GROUP, role=role, resource_type=kind, resource=resource
    )


A, D = Effect.allow, Effect.deny


@pytest.mark.parametrize(
    ("rules", "allowed", "deciding"),
    [
        ([], True, None),  # the default (allow)
        ([(Scope.account, "m1", D)], False, 0),
        ([(Scope.account, "m1", D), (Scope.group, "m1", A)], True, 1),  # group over account
        ([(Scope.group, "m1", A), (Scope.user, "m1", D)], False, 1),  # user over group
        ([(Scope.user, "*", D), (Scope.group, "m1", A)], False, 0),  # level first, then specificity
        ([(Scope.group, "*", D), (Scope.group, "m1", A)], True, 1),  # specific over wildcard, same level
        ([(Scope.group, "*", A), (Scope.group, "m1", D)], False, 1),
        ([(Scope.account, "m1", A), (Scope.account, "m1", D)], False, 1),  # deny over allow
        ([(Scope.account, "m1", D), (Scope.account, "m1", A)], False, 0),  # in either order
        ([(Scope.user, "*", A), (Scope.user, "*", D)], False, 1),
        ([(Scope.account, "m2", D)], True, None),  # a rule for another model does not apply
    ],
)
def test_resolution_order(
    rules: list[tuple[Scope, str, Effect]], allowed: bool, deciding: int | None
) -> None:
    made = [rule(*r) for r in rules]
    decision = decide(PolicySet.of(made))
    assert decision.allowed is allowed
    assert decision.rule == (made[deciding] if deciding is not None else None)
    assert decision.basis == ("rule" if deciding is not None else "default")


def test_rules_of_other_groups_and_users_do_not_apply() -> None:
    other = Rule(uuid.uuid4(), Scope.group, uuid.uuid4(), MODEL, "m1", D)
    someone = Rule(uuid.uuid4(), Scope.user, uuid.uuid4(), MODEL, "m1", D)
    assert decide(PolicySet.of([other, someone])).allowed


def test_the_default_of_the_kind_applies_when_no_rule_does() -> None:
    policies = PolicySet.of([], Defaults(model=D))
    decision = decide(policies)
    assert not decision.allowed
    assert decision.basis == "default"
    assert decide(policies, "gateway.api_access", kind=ResourceType.feature).allowed  # other kinds: allow
    assert "default" in decision.explain("gpt-4o")


def test_a_rule_of_another_kind_does_not_apply() -> None:
    policies = PolicySet.of([rule(Scope.account, "*", D, ResourceType.agent)])
    assert decide(policies).allowed
    assert not decide(policies, "helper", kind=ResourceType.agent).allowed


@pytest.mark.parametrize("role", [UserRole.owner, UserRole.admin])
def test_owners_and_admins_follow_the_rules_unless_exempt(role: UserRole) -> None:
    rules = [rule(Scope.account, "*", D)]
    assert not decide(PolicySet.of(rules), role=role).allowed
    exempt = decide(PolicySet.of(rules, Defaults(admins_exempt=True)), role=role)
    assert exempt.allowed
    assert exempt.basis == "exempt"
    assert not decide(PolicySet.of(rules, Defaults(admins_exempt=True)), role=UserRole.member).allowed


def test_the_explanation_names_the_deciding_rule() -> None:
    made = rule(Scope.group, "m1", D)
    text = decide(PolicySet.of([made])).explain("gpt-4o", "Group Engineering")
    assert "model 'gpt-4o' is denied by a group-level rule (Group Engineering)" in text
    assert str(made.id) in text


def test_a_thousand_rules_in_scope_decide_like_one() -> None:
    rules = [rule(Scope.user, f"m{i}", D if i % 2 else A) for i in range(1000)]
    policies = PolicySet.of([*rules, rule(Scope.account, "*", D)])
    assert decide(policies, "m2").allowed
    assert not decide(policies, "m3").allowed
    assert not decide(policies, "m-none").allowed  # the account's wildcard
