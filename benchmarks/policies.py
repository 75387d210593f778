"""Access decisions per second: a user with 1,000 rules in scope (a third at each level).

    python benchmarks/policies.py [--rules 1000] [--decisions 200000]

The gateway decides from the account's ``PolicySet`` in memory (no database round-trip once its
directory is warm), so this measures exactly the work a gateway call adds: one decision for its
model (and one for the ``gateway.api_access`` feature). It also measures building the set from
rows (what a directory reload costs) and ``/v1/models`` filtering for a catalogue of 50 models.
Numbers, not assertions; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cockpit.policies.engine import Defaults, PolicySet, Rule
from cockpit.policies.models import Effect, ResourceType, Scope
from cockpit.users.models import UserRole


def rules_in_scope(n: int, account: uuid.UUID, group: uuid.UUID, user: uuid.UUID) -> list[Rule]:
    rules = []
    for index in range(n):
        scope, scope_id = ((Scope.account, account), (Scope.group, group), (Scope.user, user))[index % 3]
        kind = (ResourceType.model, ResourceType.agent, ResourceType.integration, ResourceType.feature)[
            index % 4
        ]
        effect = Effect.deny if index % 2 else Effect.allow
        rules.append(Rule(uuid.uuid4(), scope, scope_id, kind, f"resource-{index}", effect))
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=200_000)
    args = parser.parse_args()
    account, group, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rules = rules_in_scope(args.rules, account, group, user)
    # Some more for other groups and users of the account (not in this user's scope).
    others = [
        Rule(uuid.uuid4(), Scope.user, uuid.uuid4(), ResourceType.model, "x", Effect.deny)
        for _ in range(1000)
    ]

    builds = []
    for _ in range(20):
        started = time.perf_counter()
        policies = PolicySet.of([*rules, *others], Defaults())
        builds.append(time.perf_counter() - started)

    # The resources asked about: a mix of ones with a user-, group- or account-level rule, a
    # wildcard-decided one, and ones decided by the default.
    asked = [(r.resource_type, r.resource) for r in rules[:: max(1, len(rules) // 50)]] + [
        (ResourceType.model, "no-rule-model"),
        (ResourceType.feature, "gateway.api_access"),
    ]
    decide = policies.decide
    n = args.decisions
    started = time.perf_counter()
    for i in range(n):
        kind, resource = asked[i % len(asked)]
        decide(account_id=account, user_id=user, group_id=group, role=UserRole.member, resource_type=kind,
               resource=resource)  # fmt: skip
    elapsed = time.perf_counter() - started

    models = [str(uuid.uuid4()) for _ in range(50)]
    listing = []
    for _ in range(200):
        started = time.perf_counter()
        [m for m in models if decide(account_id=account, user_id=user, group_id=group, role=UserRole.member,
                                     resource_type=ResourceType.model, resource=m).allowed]  # fmt: skip
        listing.append(time.perf_counter() - started)

    print(f"rules in the user's scope: {len(rules)} (+{len(others)} of other users in the account)")
    print(f"decisions: {n / elapsed:,.0f} per second ({elapsed / n * 1e6:.2f} µs each)")
    print(
        f"building the set from {len(rules) + len(others)} rules: "
        f"{statistics.median(builds) * 1e3:.2f} ms (median)"
    )
    print(f"/v1/models filtering of 50 models: {statistics.median(listing) * 1e6:.1f} µs (median)")


if __name__ == "__main__":
    main()
