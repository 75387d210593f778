"""Generated calls with known attribution, costs and moments (around the end of summer time in
Europe and North America), and their figures computed directly from the rows."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cockpit.analytics.figures import Totals
from cockpit.analytics.filters import Dimension, Filters, Scope

# Around the end of summer time in Europe (25 Oct 2026, 01:00 UTC) and in North America (1 Nov).
START = datetime(2026, 10, 23, 18, 0, tzinfo=UTC)
END = datetime(2026, 11, 3, 6, 0, tzinfo=UTC)
ZONES = ["UTC", "Europe/Paris", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe"]
DIMENSION_OF: dict[Dimension, str] = {
    Dimension.model: "model", Dimension.group: "group_id", Dimension.user: "user_id",
    Dimension.project: "project_id", Dimension.agent: "agent_id", Dimension.operation: "operation",
    Dimension.provider: "provider_id", Dimension.token: "api_token_id", Dimension.status: "status",
}  # fmt: skip


@dataclass
class Calls:
    account_id: uuid.UUID
    rows: list[dict[str, Any]]
    users: list[uuid.UUID]
    groups: list[uuid.UUID]

    def scope(self, **kwargs: Any) -> Scope:
        return Scope(self.account_id, **kwargs)


def make_calls(account_id: uuid.UUID, n: int = 700) -> Calls:
    rng = random.Random(20261206)
    users = [uuid.uuid4() for _ in range(12)]
    groups = [uuid.uuid4() for _ in range(3)]
    projects = [uuid.uuid4(), uuid.uuid4(), None]
    tokens = [uuid.uuid4() for _ in range(4)]
    providers = [uuid.uuid4(), uuid.uuid4()]
    span = int((END - START).total_seconds())
    rows = []
    # Some calls exactly on the edges and on local midnights/the changes of the clocks.
    edges = [START, END - timedelta(microseconds=1), datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
             datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 11, 1, 3, 30, tzinfo=UTC)]  # fmt: skip
    for k in range(n):
        user = rng.choice([*users, None])
        status = rng.choices(["success", "error", "client_disconnected"], [0.85, 0.1, 0.05])[0]
        stream = rng.random() < 0.5
        moment = edges[k] if k < len(edges) else START + timedelta(seconds=rng.randrange(span))
        rows.append(
            {
                "id": uuid.uuid4(), "account_id": account_id,
                "created_at": moment,
                "user_id": user, "group_id": groups[users.index(user) % 3] if user else rng.choice(groups),
                "project_id": rng.choice(projects), "agent_id": rng.choice(["helper", "research", None]),
                "api_token_id": rng.choice(tokens), "model_id": None,
                "model": rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet", "text-embedding-3-small"]),
                "provider_id": rng.choice(providers), "provider_kind": "openai",
                "operation": rng.choice(["chat", "chat", "embedding"]), "stream": stream,
                "status": status, "http_status": 200 if status == "success" else 502,
                "latency_ms": rng.randrange(5, 30_000),
                "ttft_ms": rng.randrange(1, 2_000) if stream and status == "success" else None,
                "input_tokens": rng.randrange(0, 50_000), "output_tokens": rng.randrange(0, 8_000),
                "cached_tokens": rng.randrange(0, 1_000),
                "cost_usd": Decimal(rng.randrange(0, 10**11)) / Decimal(10**12),
                "credits": Decimal(rng.randrange(0, 10**8)) / Decimal(10**6),
            }
        )  # fmt: skip
    return Calls(account_id, rows, users, groups)


def expected(rows: Iterable[dict[str, Any]]) -> Totals:
    rows = list(rows)
    return Totals(
        requests=len(rows),
        errors=sum(r["status"] == "error" for r in rows),
        successes=sum(r["status"] == "success" for r in rows),
        cost_usd=sum((r["cost_usd"] for r in rows), Decimal(0)),
        credits=sum((r["credits"] for r in rows), Decimal(0)),
        input_tokens=sum(r["input_tokens"] for r in rows),
        output_tokens=sum(r["output_tokens"] for r in rows),
        cached_tokens=sum(r["cached_tokens"] for r in rows),
        latency_ms=sum(r["latency_ms"] for r in rows),
        ttft_ms=sum(r["ttft_ms"] or 0 for r in rows),
        ttft_calls=sum(r["ttft_ms"] is not None for r in rows),
        active_users=len({r["user_id"] for r in rows if r["user_id"] is not None}),
    )


def selected(
    c: Calls, f: Filters, keep: Callable[[dict[str, Any]], bool] = lambda r: True
) -> list[dict[str, Any]]:
    return [r for r in c.rows if f.start <= r["created_at"] < f.end and keep(r)]
