"""The demo organisation at work: its access policies, its credit requests and its gateway tokens
(a fresh one handed out at every `cockpit demo`, and the seeded calls' tokens marked as used)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import ApiToken
from cockpit.auth.tokens import issue_token, revoke_token
from cockpit.authz.actor import Actor
from cockpit.credits import allocations
from cockpit.credits import requests as credit_requests
from cockpit.credits.models import CreditCycle
from cockpit.kit.time import utcnow
from cockpit.policies import service as policies
from cockpit.policies.models import WILDCARD, Effect, ResourceType, Scope
from cockpit.providers.models import Model
from cockpit.users.models import User, UserRole

# The people whose allowance is nearly used up this cycle: the heaviest callers, with 5% left.
NEARLY_EXHAUSTED = 4
DEMO_TOKEN_NAME = "Demo gateway"  # noqa: S105 - a token's name, not a secret


async def renew_gateway_token(session: AsyncSession, owner: User) -> str:
    """A new gateway token for the demo owner, printed by `cockpit demo` (a token is shown only
    once: only its hash is kept). The one handed out before is revoked, with its audit entry."""
    actor = Actor.for_user(owner)
    previous = await session.scalars(
        select(ApiToken.id).where(
            ApiToken.user_id == owner.id, ApiToken.name == DEMO_TOKEN_NAME, ApiToken.revoked_at.is_(None)
        )
    )
    for token_id in list(previous):
        await revoke_token(session, actor, token_id)
    _, raw = await issue_token(session, actor, owner, name=DEMO_TOKEN_NAME, scopes=["gateway"])
    return raw


async def mark_tokens_used(session: AsyncSession, calls: Iterable[dict[str, Any]]) -> None:
    """Each seeded call's token was last used at its latest call (as the gateway records it)."""
    latest: dict[uuid.UUID, datetime] = {}
    for call in calls:
        token_id = call.get("api_token_id")
        if token_id is not None and (token_id not in latest or call["created_at"] > latest[token_id]):
            latest[token_id] = call["created_at"]
    for token_id, when in latest.items():
        token = await session.get(ApiToken, token_id)
        if token is not None:
            token.last_used_at = when


async def seed_policies(
    session: AsyncSession,
    actor: Actor,
    people: list[User],
    group_names: dict[uuid.UUID, str],
    models: list[Model],
) -> None:
    """Access rules at every level, with one exception that overrides its group's rule (the owner,
    whose gateway token the demo hands out, is not restricted)."""
    groups_by_name = {name: group_id for group_id, name in group_names.items()}
    model_ids = {model.name: str(model.id) for model in models}
    claude = model_ids["claude-sonnet-4"]
    support = [p for p in people if p.group_id == groups_by_name["Support"] and p.role is UserRole.member]
    rules: list[tuple[Scope, uuid.UUID | None, ResourceType, str, Effect, str]] = [
        (Scope.group, groups_by_name["Support"], ResourceType.feature, "conversations.share", Effect.deny,
         "Support's conversations hold customer data: they are not shared."),
        (Scope.account, None, ResourceType.integration, WILDCARD, Effect.deny,
         "No third-party integrations before the security review."),
        (Scope.account, None, ResourceType.integration, "cockpit", Effect.allow,
         "Cockpit's own read-only tools (credits, usage, models) are fine."),
        (Scope.group, groups_by_name["Support"], ResourceType.model, claude, Effect.deny,
         "Support works with the GPT models (cost)."),
        (Scope.group, groups_by_name["Sales"], ResourceType.feature, "api_tokens.create", Effect.deny,
         "Sales works in the console, not with the API."),
    ]  # fmt: skip
    if support:
        rules.append(
            (Scope.user, support[0].id, ResourceType.model, claude, Effect.allow,
             "Evaluating Claude for escalations.")
        )  # fmt: skip
    for scope, scope_id, kind, resource, effect, note in rules:
        await policies.create_policy(
            session, actor, scope=scope, scope_id=scope_id, resource_type=kind, resource=resource,
            effect=effect, note=note,
        )  # fmt: skip


@dataclass(frozen=True)
class _DemoRequest:
    group: str | None  # the requester's group (None: one of the nearly exhausted)
    amount: Decimal
    reason: str
    days_ago: float
    decision: str = ""  # "", "approve" or "deny"
    approved: Decimal | None = None
    note: str = ""


DEMO_REQUESTS = (
    _DemoRequest(
        "Engineering", Decimal(80), "Load-testing the new retrieval pipeline before Friday's release.", 9.2
    ),
    _DemoRequest("Support", Decimal(60), "Backlog of ticket summaries after the holiday weekend.", 6.8),
    _DemoRequest(
        "Sales",
        Decimal(300),
        "Proposals for three enterprise renewals this month.",
        8.1,
        "approve",
    ),
    _DemoRequest(
        "Engineering",
        Decimal(400),
        "Evaluating claude-sonnet-4 against gpt-4o on our code-review benchmark.",
        5.3,
        "approve",
        approved=Decimal(250),
    ),
    _DemoRequest(
        "Finance",
        Decimal(1_500),
        "Summarise every supplier contract of the last five years.",
        4.6,
        "deny",
        note="Please start with this year's contracts and use gpt-4o-mini; ask again after.",
    ),
    _DemoRequest(
        "Engineering",
        Decimal(2_000),
        "A personal side project.",
        3.9,
        "deny",
        note="The gateway is for work; let's talk about a sandbox budget.",
    ),
    _DemoRequest(
        None, Decimal(500), "I have nearly used my allowance and the quarterly report is due next week.", 1.4
    ),
    _DemoRequest(
        None, Decimal(250), "Customer escalations need longer answers from the assistant this week.", 0.3
    ),
)


async def seed_requests(
    session: AsyncSession,
    actor: Actor,
    people: list[User],
    group_names: dict[uuid.UUID, str],
    current: CreditCycle,
) -> None:
    """Credit requests in every status, filed by members over the last days of this cycle."""
    figures = {user.id: await allocations.member_allocation(session, actor, user.id) for user in people}
    # Pending requests come from the people closest to their limit; the others from anyone else.
    nearly = sorted(people, key=lambda user: (figures[user.id].remaining, user.email))[:NEARLY_EXHAUSTED]
    others = [user for user in sorted(people, key=lambda user: user.email) if user not in nearly]
    others = [user for user in others if user.role is UserRole.member]
    now = utcnow()
    for spec in DEMO_REQUESTS:
        if spec.group is None:
            requester = nearly.pop(0)
        else:
            requester = next(user for user in others if group_names[user.group_id] == spec.group)
            others.remove(requester)
        asked = max(now - timedelta(days=spec.days_ago), current.starts_at + timedelta(minutes=5))
        request = await credit_requests.file_request(
            session, Actor.for_user(requester), amount=spec.amount, reason=spec.reason
        )
        if spec.decision == "approve":
            await credit_requests.approve_request(session, actor, request.id, amount=spec.approved)
        elif spec.decision == "deny":
            await credit_requests.deny_request(session, actor, request.id, note=spec.note)
        # Demo history: filed (and decided) over the last days rather than all at once.
        request.created_at = asked
        if request.decided_at is not None:
            request.decided_at = asked + (timedelta(minutes=20) if spec.decision else timedelta())
    await session.flush()
