"""The demo organisation `make demo` serves: idempotent, so a second run reuses it."""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.service import create_account
from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.auth.passwords import hash_password_async
from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.credits import allocations, ledger
from cockpit.credits import settings as credit_settings
from cockpit.credits.amounts import ZERO
from cockpit.credits.cycles import carry_allocations, cycles_of, period_start, start_cycle
from cockpit.credits.models import Cadence, CreditCycle, CycleStart, EntryKind, LedgerEntry
from cockpit.credits.usage import debit_usage
from cockpit.demo_activity import (
    DEMO_TOKEN_NAME,
    NEARLY_EXHAUSTED,
    mark_tokens_used,
    renew_gateway_token,
    seed_policies,
    seed_requests,
)
from cockpit.demo_agents import point_cockpit_integration, seed_agents
from cockpit.demo_conversations import seed_conversations
from cockpit.gateway.service import credits_of
from cockpit.groups import service as groups
from cockpit.invitations import service as invitations
from cockpit.kit.time import utcnow
from cockpit.projects import service as projects
from cockpit.projects.models import Project, ProjectRole
from cockpit.providers import service as providers
from cockpit.providers.models import Capability, Model, ProviderKind
from cockpit.providers.pricing import lookup_prices
from cockpit.tenancy.models import Account
from cockpit.usage.models import CallStatus, Operation, UsageRecord
from cockpit.users import service as users_service
from cockpit.users.models import User, UserRole, UserStatus
from cockpit.users.seats import SeatProduct, set_user_seats

DEMO_ORG = "Acme Robotics (demo)"
DEMO_EMAIL = "owner@acme.example.com"
DEMO_PASSWORD = "cockpit-demo-2026"  # noqa: S105 - a published demo login, not a secret
DOMAIN = "acme.example.com"

GROUPS = {
    "Engineering": "Product and platform engineers",
    "Sales": "Account executives and sales engineering",
    "Support": "Customer support and success",
    "Finance": "Finance, legal and procurement",
}
FIRST = ["Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances",
         "Edsger", "Radia", "Donald", "Hedy", "John", "Shafi", "Tim", "Sophie", "Guido", "Anita",
         "Bjarne", "Lynn", "Niklaus", "Joan", "Leslie", "Mary", "Vint", "Adele", "Yukihiro", "Jean",
         "Brian", "Carol", "James", "Evelyn", "Robin", "Ivan", "Hal", "Marissa", "Larry"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson",
        "Allen", "Dijkstra", "Perlman", "Knuth", "Lamarr", "McCarthy", "Goldwasser", "Berners-Lee", "Wilson",
        "van Rossum", "Borg", "Stroustrup", "Conway", "Wirth", "Clarke", "Lamport", "Keller", "Cerf",
        "Goldberg", "Matsumoto", "Sammet", "Kernighan", "Shaw", "Gosling", "Berezin", "Milner", "Sutherland",
        "Abelson", "Mayer", "Page"]  # fmt: skip
INVITEES = [("nina.patel", "Nina Patel", "Engineering"), ("omar.haddad", "Omar Haddad", "Sales"),
            ("lea.martin", "Léa Martin", "Support")]  # fmt: skip


SIMULATED_PROVIDER = "Simulated (built in)"
SIMULATED_SETTINGS = {"latency_ms": 350, "tokens_per_second": 80, "output_tokens": 220}


@dataclass(frozen=True)
class DemoModel:
    name: str
    upstream_model: str
    # Whose list prices apply: genai-prices knows nothing of the simulated provider itself.
    priced_as: ProviderKind
    # USD per million tokens (input, output, cached input) when genai-prices does not know the model.
    fallback_prices: tuple[str, str, str]
    capabilities: tuple[Capability, ...]
    context_window: int
    tokens_per_second: int


DEMO_MODELS = (
    DemoModel("gpt-4o", "gpt-4o", ProviderKind.openai, ("2.50", "10", "1.25"),
              (Capability.chat, Capability.vision, Capability.tools), 128_000, 70),
    DemoModel("gpt-4o-mini", "gpt-4o-mini", ProviderKind.openai, ("0.15", "0.60", "0.075"),
              (Capability.chat, Capability.vision, Capability.tools), 128_000, 95),
    DemoModel("claude-sonnet-4", "claude-sonnet-4-20250514", ProviderKind.anthropic, ("3", "15", "0.30"),
              (Capability.chat, Capability.vision, Capability.tools), 200_000, 60),
    DemoModel("text-embedding-3-small", "text-embedding-3-small", ProviderKind.openai, ("0.02", "0", "0"),
              (Capability.embeddings,), 8_191, 0),
)  # fmt: skip

# Recorded gateway calls: about this many over the last USAGE_DAYS days, the same every time.
USAGE_CALLS = 3_000
USAGE_DAYS = 60
USAGE_SEED = 2026
INSERT_BATCH = 1_000
AGENTS = ("support-triage-bot", "release-notes-agent")
# Names callers get wrong: recorded as model_not_found with no model id.
UNKNOWN_MODELS = ("gpt-4", "gpt-5-turbo", "claude-3-opus", "mistral-large", "gpt4o")
MILLION = Decimal(1_000_000)


@dataclass
class DemoLogin:
    email: str
    password: str
    created: bool
    # The owner's gateway token, in clear: a new one at every run (the previous one is revoked).
    gateway_token: str | None = None


async def seed_demo(session: AsyncSession, settings: Settings) -> DemoLogin:
    existing = await users_service.user_by_email(session, DEMO_EMAIL)
    if existing is not None:
        token = await renew_gateway_token(session, existing)
        await point_cockpit_integration(session, settings)
        return DemoLogin(DEMO_EMAIL, DEMO_PASSWORD, created=False, gateway_token=token)
    account, owner = await create_account(
        session, name=DEMO_ORG, owner_email=DEMO_EMAIL, owner_password=DEMO_PASSWORD,
        owner_name="Olivia Owner", timezone="Europe/Paris", label="demo seed",
    )  # fmt: skip
    owner_actor = Actor.for_user(owner)
    account.seat_limit_copilot, account.seat_limit_console, account.seat_limit_compute = 50, 10, 20
    group_ids = [
        (await groups.create_group(session, owner_actor, name=name, description=description)).id
        for name, description in GROUPS.items()
    ]
    seed_actor = Actor.system(account.id, label="demo seed")
    password_hash = await hash_password_async(
        DEMO_PASSWORD
    )  # one hash for every demo person: seeding stays fast
    people: list[User] = []
    for i, (first, last) in enumerate(zip(FIRST, LAST, strict=True)):
        role = UserRole.admin if i in (0, 5) else UserRole.member
        seats = [SeatProduct.copilot] + ([SeatProduct.console] if role is UserRole.admin else [])
        if i % 4 == 0:
            seats.append(SeatProduct.compute)
        email = f"{first.lower()}.{last.lower().replace(' ', '').replace('-', '')}@{DOMAIN}"
        group_id = group_ids[i % len(group_ids)] if i % 7 else owner.group_id
        user = User(id=uuid.uuid4(), account_id=account.id, email=email, name=f"{first} {last}", role=role,
                    status=UserStatus.deactivated if i in (11, 23) else UserStatus.active,
                    password_hash=password_hash, group_id=group_id)  # fmt: skip
        set_user_seats(user, seats)
        session.add(user)
        people.append(user)
        await session.flush()
        await audit.record(session, seed_actor, "user.created", target=Target("user", user.id, email),
                           after={"email": email, "role": role, "seats": seats})  # fmt: skip
    for local, name, group in INVITEES:
        await invitations.invite(
            session, owner_actor, settings, email=f"{local}@{DOMAIN}", name=name,
            group_id=group_ids[list(GROUPS).index(group)], seats=["copilot"], send=False,
        )  # fmt: skip
    assistant = await projects.create_project(
        session,
        owner_actor,
        name="Customer Assistant",
        description="The support chatbot and its knowledge base",
    )
    research = await projects.create_project(
        session, owner_actor, name="Research Lab", description="Prototypes and model evaluations"
    )
    active = [person for person in people if person.status is UserStatus.active]
    for project, members in ((assistant, active[:6]), (research, active[6:12])):
        for j, user in enumerate(members):
            project_role = ProjectRole.project_admin if j == 0 else ProjectRole.project_member
            await projects.set_member(
                session, owner_actor, project.id, user.id, role=project_role, all_assistants=j < 3
            )
    models = await _seed_catalogue(session, owner_actor, settings)
    owner_token, owner_raw = await issue_token(
        session, owner_actor, owner, name=DEMO_TOKEN_NAME, scopes=["gateway"]
    )
    # The credit settings and cycles first: each call's credits follow the factor, and its debit
    # goes to the cycle that contains it.
    current = await _seed_credit_settings(session, owner_actor, account)
    agent_ids = await seed_agents(session, owner_actor, settings, models, assistant, research)
    calls = await _seed_usage(
        session, owner_actor, owner, active, [(assistant, active[:6]), (research, active[6:12])], models,
        owner_token_id=owner_token.id, credit_factor=account.credit_factor, agent_ids=agent_ids,
    )  # fmt: skip
    await debit_usage(session, calls)
    group_names = {owner.group_id: "Default", **dict(zip(group_ids, GROUPS, strict=True))}
    await _seed_allocations(session, owner_actor, [owner, *active], group_names, calls, current)
    # Demo history: last month's cycle had the same monthly budgets and allocations.
    previous = next(cycle for cycle in await cycles_of(session, account.id) if cycle.id != current.id)
    await carry_allocations(session, account.id, previous)
    await _cover_history(session, owner_actor, account.id, previous)
    await mark_tokens_used(session, calls)
    await seed_requests(session, owner_actor, [owner, *active], group_names, current)
    await seed_policies(session, owner_actor, active, group_names, models)
    await seed_conversations(session, owner_actor)
    return DemoLogin(DEMO_EMAIL, DEMO_PASSWORD, created=True, gateway_token=owner_raw)


async def _seed_catalogue(session: AsyncSession, actor: Actor, settings: Settings) -> list[Model]:
    """The simulated provider and a few well-known models on it, priced like the real ones."""
    provider = await providers.create_provider(
        session, actor, name=SIMULATED_PROVIDER, kind=ProviderKind.simulated,
        secret_key=settings.resolved_secret_key(), allow_private=False, settings=dict(SIMULATED_SETTINGS),
    )  # fmt: skip
    models = []
    for spec in DEMO_MODELS:
        known = lookup_prices(spec.upstream_model, spec.priced_as, None)
        prices = (
            (known.input, known.output, known.cached_input)
            if known is not None
            else tuple(Decimal(p) for p in spec.fallback_prices)
        )
        models.append(
            await providers.create_model(
                session, actor, name=spec.name, provider_id=provider.id, upstream_model=spec.upstream_model,
                input_price_per_million=prices[0], output_price_per_million=prices[1],
                cached_input_price_per_million=prices[2], context_window=spec.context_window,
                capabilities=list(spec.capabilities),
            )
        )  # fmt: skip
    return models


def cost_usd(model: Model, input_tokens: int, output_tokens: int, cached_tokens: int) -> Decimal:
    """Exact USD cost, the gateway's rule: cached input tokens are part of the input tokens and cost
    the cached-input price, or the input price when the model has none."""
    cached_price = model.cached_input_price_per_million or model.input_price_per_million
    micro = (
        (input_tokens - cached_tokens) * model.input_price_per_million
        + cached_tokens * cached_price
        + output_tokens * model.output_price_per_million
    )
    return micro / MILLION


@dataclass(frozen=True)
class _Cast:
    """Who calls which models in the demo's recorded usage."""

    account_id: uuid.UUID
    provider_id: uuid.UUID
    callers: list[User]
    weights: list[float]
    tokens: dict[uuid.UUID, uuid.UUID]  # user id -> their gateway token's id
    projects_of: dict[uuid.UUID, list[uuid.UUID]]
    agents: dict[str, tuple[User, uuid.UUID, Model]]  # agent -> (whose token, project, model)
    chat_models: list[Model]  # the small one, the large one, Claude
    embedding_model: Model
    agent_ids: dict[str, str]  # agent slug -> the agent's id, as an agent run records it


# Calls per local hour of the day (Europe/Paris): office hours with a lunch dip.
HOUR_WEIGHTS = (0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 1, 3, 6, 8, 8, 5, 6, 8, 8, 7, 5, 3, 2, 1.5, 1, 0.6, 0.3)
TOKENS_PER_SECOND = {spec.name: spec.tokens_per_second for spec in DEMO_MODELS}


async def _seed_usage(
    session: AsyncSession,
    actor: Actor,
    owner: User,
    active: list[User],
    project_members: list[tuple[Project, list[User]]],
    models: list[Model],
    *,
    owner_token_id: uuid.UUID,
    credit_factor: Decimal,
    agent_ids: dict[str, str],
) -> list[dict[str, Any]]:
    """About USAGE_CALLS recorded gateway calls over the last USAGE_DAYS days, inserted in bulk.

    Deterministic (a seeded generator) so the demo's numbers are the same from one run to the next
    on the same day. Each call's credits are its cost x ``credit_factor``, as the gateway records
    them. Returns the inserted rows.
    """
    rng = random.Random(USAGE_SEED)  # noqa: S311 - demo data, not secrets
    by_name = {model.name: model for model in models}
    # Who calls: the owner and twenty people, each with a gateway token; a few of them call a lot.
    callers = [owner, *active[:20]]
    tokens = {owner.id: owner_token_id}
    for user in callers[1:]:
        token, _ = await issue_token(session, actor, user, name="Gateway (demo)", scopes=["gateway"])
        tokens[user.id] = token.id
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(callers))]
    rng.shuffle(weights)
    projects_of: dict[uuid.UUID, list[uuid.UUID]] = {}
    for project, members in project_members:
        for member in members:
            projects_of.setdefault(member.id, []).append(project.id)
    # The agents run under their project admin's token, attributed to their project.
    (assistant, assistant_members), (research, research_members) = project_members
    cast = _Cast(
        account_id=owner.account_id,
        provider_id=models[0].provider_id,
        callers=callers,
        weights=weights,
        tokens=tokens,
        projects_of=projects_of,
        agents={
            AGENTS[0]: (assistant_members[0], assistant.id, by_name["gpt-4o-mini"]),
            AGENTS[1]: (research_members[0], research.id, by_name["claude-sonnet-4"]),
        },
        chat_models=[by_name["gpt-4o-mini"], by_name["gpt-4o"], by_name["claude-sonnet-4"]],
        embedding_model=by_name["text-embedding-3-small"],
        agent_ids=agent_ids,
    )

    tz = ZoneInfo("Europe/Paris")  # the demo organisation's time zone: its working hours
    now = utcnow()
    oldest = now - timedelta(days=USAGE_DAYS) + timedelta(hours=1)  # a margin: "within the last 60 days"
    today = now.astimezone(tz).date()
    days = [today - timedelta(days=USAGE_DAYS - 1 - n) for n in range(USAGE_DAYS)]
    # Usage grows over the period (x3) and is much lighter at weekends.
    day_weights = [
        (0.5 + n / (USAGE_DAYS - 1)) * (1.0 if d.weekday() < 5 else 0.2) for n, d in enumerate(days)
    ]
    total_weight = sum(day_weights)
    rows: list[dict[str, Any]] = []
    for n, (day, day_weight) in enumerate(zip(days, day_weights, strict=True)):
        count = round(USAGE_CALLS * day_weight / total_weight * rng.uniform(0.85, 1.15))
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        for _ in range(count):
            hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
            created_at = (midnight + timedelta(hours=hour, seconds=rng.randrange(3600))).astimezone(UTC)
            if not oldest <= created_at <= now - timedelta(minutes=1):
                continue  # later today, or just beyond the period
            row = _call(rng, cast, created_at, progress=n / (USAGE_DAYS - 1))
            row["credits"] = credits_of(row["cost_usd"], credit_factor)
            rows.append(row)
    rows.sort(key=lambda row: row["created_at"])
    for start in range(0, len(rows), INSERT_BATCH):
        await session.execute(insert(UsageRecord), rows[start : start + INSERT_BATCH])
    return rows


def _call(rng: random.Random, cast: _Cast, created_at: datetime, *, progress: float) -> dict[str, Any]:
    """One plausible gateway call, as the gateway would have recorded it."""
    agent_id: str | None = None
    project_id: uuid.UUID | None = None
    if rng.random() < 0.08:
        agent_id = rng.choice(AGENTS)
        user, project_id, model = cast.agents[agent_id]
        operation = Operation.chat
    else:
        user = rng.choices(cast.callers, cast.weights)[0]
        memberships = cast.projects_of.get(user.id)
        if memberships and rng.random() < 0.4:
            project_id = rng.choice(memberships)
        if rng.random() < 0.11:
            operation, model = Operation.embedding, cast.embedding_model
        else:
            # Claude gains share over the period; the small model stays the workhorse.
            operation = Operation.chat
            model = rng.choices(cast.chat_models, [0.5, 0.35 - 0.15 * progress, 0.15 + 0.15 * progress])[0]
    chat = operation is Operation.chat
    stream = chat and rng.random() < 0.6
    roll = rng.random()
    status = CallStatus.success
    if roll >= 0.97:
        # Only a streamed answer can be cut short by its caller.
        status, stream = (CallStatus.client_disconnected, True) if chat else (CallStatus.success, False)
    elif roll >= 0.93:
        status = CallStatus.error
    row: dict[str, Any] = {
        "id": uuid.UUID(int=rng.getrandbits(128), version=4),
        "account_id": cast.account_id,
        "created_at": created_at,
        "user_id": user.id,
        "group_id": user.group_id,
        "project_id": project_id,
        "agent_id": cast.agent_ids.get(agent_id, agent_id) if agent_id else None,
        "api_token_id": cast.tokens[user.id],
        "model_id": model.id,
        "model": model.name,
        "provider_id": cast.provider_id,
        "provider_kind": ProviderKind.simulated.value,
        "operation": operation.value,
        "stream": stream,
        "status": status.value,
        "error_type": None,
        "error_message": None,
        "http_status": 200,
        "ttft_ms": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_tokens": 0,
        "tokens_estimated": False,
        "cost_usd": Decimal(0),
        "upstream_id": None,
    }
    if status is CallStatus.error:
        return row | _failure(rng, chat)
    input_tokens = _tokens(rng, 50, 4_000, 600)
    output_tokens = _tokens(rng, 20, 1_200, 250) if chat else 0
    cached = 0
    if chat and input_tokens >= 1_024 and rng.random() < 0.3:
        cached = rng.randint(1, input_tokens // 128) * 128  # prompt caching works in blocks of 128
    ttft = rng.randint(250, 900) if chat else None
    if status is CallStatus.client_disconnected:
        # The caller left mid-stream: Cockpit counted what was sent and received so far.
        cached, output_tokens = 0, rng.randint(0, output_tokens)
        row |= {"http_status": 499, "tokens_estimated": True}
    generation_ms = (
        round(output_tokens / TOKENS_PER_SECOND[model.name] * 1000 * rng.uniform(0.8, 1.3)) if chat else 0
    )
    row |= {
        "latency_ms": (ttft or rng.randint(40, 180)) + generation_ms,
        "ttft_ms": ttft if stream else None,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_tokens": cached,
        "cost_usd": cost_usd(model, input_tokens, output_tokens, cached),
        "upstream_id": f"chatcmpl-sim-{rng.getrandbits(64):016x}" if chat else None,
    }
    return row


def _tokens(rng: random.Random, low: int, high: int, median: int) -> int:
    """A long-tailed token count: most calls are short, a few are long."""
    return min(high, max(low, round(rng.lognormvariate(math.log(median), 0.8))))


def _failure(rng: random.Random, chat: bool) -> dict[str, Any]:
    """What a failed call records: no tokens, no cost."""
    kind = rng.choices(["rate_limited", "upstream", "timeout", "not_found"], [4, 2.5, 1.5, 2])[0]
    if kind == "not_found":
        name = rng.choice(UNKNOWN_MODELS) if chat else "text-embedding-ada-002"
        return {
            "model_id": None, "model": name, "provider_id": None, "provider_kind": None,
            "error_type": "model_not_found", "http_status": 404, "latency_ms": rng.randint(1, 6),
            "error_message": f"The model '{name}' does not exist or you do not have access to it.",
        }  # fmt: skip
    if kind == "rate_limited":
        return {
            "error_type": "upstream_rate_limited", "http_status": 429, "latency_ms": rng.randint(80, 400),
            "error_message": "The upstream provider is rate limiting requests: Rate limit reached.",
        }  # fmt: skip
    if kind == "upstream":
        return {
            "error_type": "upstream_error", "http_status": 502, "latency_ms": rng.randint(300, 2_500),
            "error_message": "The upstream provider failed (HTTP 500): The server had an error.",
        }  # fmt: skip
    return {
        "error_type": "upstream_timeout", "http_status": 504, "latency_ms": rng.randint(60_000, 61_500),
        "error_message": "The upstream provider did not answer in time.",
    }  # fmt: skip


# ---- credits ----

CREDIT_FACTOR = Decimal(1000)  # credits per $1
CREDITS_PER_CYCLE = Decimal(20_000)
SIGNUP_CREDITS = Decimal(50)
# How generous the others' allowances are, from the most to the least generous, the first whose group
# budgets fit in the account's credits per cycle (usage this cycle grows with the day of the month):
# (monthly = this x their usage so far, at least this minimum, group budget = distributed + this
# headroom for requests and new people's signup credits, rounded up to a multiple of this).
ALLOWANCE_PLANS = (
    (Decimal(2), Decimal(300), Decimal(500), 500),
    (Decimal("1.5"), Decimal(250), Decimal(400), 500),
    (Decimal("1.25"), Decimal(200), Decimal(400), 100),
    (Decimal("1.06"), Decimal(150), Decimal(400), 100),
)
GROUP_EXTRA = ("Engineering", Decimal(500))  # a one-off top-up this cycle: a hackathon
AUTO_APPROVE = {"Engineering": Decimal(100), "Support": Decimal(100)}


async def _seed_credit_settings(session: AsyncSession, actor: Actor, account: Account) -> CreditCycle:
    """The credit settings, last month's (closed) cycle and this month's; returns the current cycle."""
    zone = ZoneInfo(account.timezone)
    this_month = period_start(Cadence.month, utcnow(), zone)
    last_month = period_start(Cadence.month, this_month - timedelta(days=1), zone)
    # Demo history: the account has had this limit and a monthly cadence since last month.
    account.credits_per_cycle, account.cycle_cadence = CREDITS_PER_CYCLE, Cadence.month.value
    previous = await start_cycle(
        session, account, started_by=CycleStart.initial, at=last_month, previous=None, actor_label=actor.label
    )
    await start_cycle(session, account, started_by=CycleStart.scheduled, at=this_month, previous=previous)
    _, current = await credit_settings.change_settings(
        session, actor, credits_per_cycle=CREDITS_PER_CYCLE, cycle_cadence=Cadence.month,
        credit_factor=CREDIT_FACTOR, signup_credits=SIGNUP_CREDITS,
    )  # fmt: skip
    return current


async def _cover_history(
    session: AsyncSession, actor: Actor, account_id: uuid.UUID, cycle: CreditCycle
) -> None:
    """Last month's heaviest callers spent more than this month's allocations: in the demo's history
    they got extra credits for it (enforcement would have stopped them otherwise), and so did their
    groups, so that no statement of that cycle ends below zero."""
    await session.flush()
    scopes = (
        (LedgerEntry.user_id, LedgerEntry.user_id.is_not(None)),
        (
            LedgerEntry.group_id,
            (LedgerEntry.user_id.is_(None)) | (LedgerEntry.kind == EntryKind.usage_debit),
        ),
    )
    for column, belongs in scopes:
        rows = await session.execute(
            select(column, LedgerEntry.group_id, func.sum(LedgerEntry.__table__.c.amount, type_=BigInteger))
            .where(
                LedgerEntry.cycle_id == cycle.id,
                column.is_not(None),
                LedgerEntry.kind.not_in([EntryKind.hold, EntryKind.release]),
                belongs,
            )
            .group_by(column, LedgerEntry.group_id)
        )
        short: dict[uuid.UUID, tuple[uuid.UUID | None, Decimal]] = {}
        for scope_id, group_id, total in rows:
            before = short.get(scope_id, (group_id, ZERO))[1]
            short[scope_id] = (group_id, before + Decimal(int(total)) / 1_000_000)
        for scope_id, (group_id, total) in short.items():
            if total < 0:
                entry = ledger.append(
                    session, account_id=account_id, cycle=cycle, kind=EntryKind.extra_granted,
                    amount=_whole(-total * Decimal("1.1"), 50), group_id=group_id,
                    user_id=scope_id if column is LedgerEntry.user_id else None,
                    description="Extra credits for the quarter's launch", actor_label=actor.label,
                )  # fmt: skip
                entry.created_at = cycle.starts_at + timedelta(days=9)


def _whole(value: Decimal, step: int = 1) -> Decimal:
    """``value`` rounded up to a multiple of ``step`` credits."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


async def _seed_allocations(
    session: AsyncSession,
    actor: Actor,
    people: list[User],
    group_names: dict[uuid.UUID, str],
    calls: list[dict[str, Any]],
    current: CreditCycle,
) -> None:
    """Group budgets and member allowances: the heaviest callers of this cycle nearly exhausted.
    ``people`` starts with the owner."""
    used: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    for call in calls:
        if call["created_at"] >= current.starts_at and call["user_id"] is not None:
            used[call["user_id"]] += call["credits"]
    ranked = sorted(people, key=lambda user: (-used[user.id], user.email))
    # Not the owner: the demo's gateway token is theirs, and its first calls must not be refused.
    others = [user for user in ranked if user.id != people[0].id]
    nearly = {user.id for user in others[:NEARLY_EXHAUSTED] if used[user.id] > 0}
    for factor, minimum, headroom, step in ALLOWANCE_PLANS:
        allowances: dict[uuid.UUID, tuple[Decimal, Decimal]] = {}  # user id -> (monthly, extra)
        for n, user in enumerate(ranked):
            if user.id in nearly:
                # 5% left (to the cent: whole credits would leave much more early in the cycle).
                allowance = (used[user.id] * Decimal("1.05")).quantize(Decimal("0.01"), ROUND_CEILING)
                # One of them got extra credits this cycle on top of a smaller monthly allocation.
                monthly = allowance
                if n == 1:
                    monthly = max(Decimal(1), (allowance * Decimal("0.8")).to_integral_value(ROUND_FLOOR))
                allowances[user.id] = (monthly, allowance - monthly)
            else:
                monthly = max(minimum, _whole(used[user.id] * factor, 100))
                allowances[user.id] = (monthly, Decimal(100) if n % 6 == 5 else ZERO)
        budgets = {
            group_id: _whole(
                sum((sum(allowances[u.id]) for u in people if u.group_id == group_id), ZERO) + headroom, step
            )
            for group_id in group_names
        }
        if sum(budgets.values()) <= CREDITS_PER_CYCLE:
            break
    for group_id, name in group_names.items():
        extra = min(GROUP_EXTRA[1], budgets[group_id] / 2) if name == GROUP_EXTRA[0] else ZERO
        await allocations.set_group_allocation(
            session, actor, group_id, monthly=budgets[group_id] - extra, extra=extra,
            auto_approve_limit=AUTO_APPROVE.get(name, ZERO),
        )  # fmt: skip
    for user in sorted(people, key=lambda user: user.email):
        monthly, extra = allowances[user.id]
        await allocations.set_member_allocation(session, actor, user.id, monthly=monthly, extra=extra)
