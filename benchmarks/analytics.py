"""Cost tracking at scale: millions of recorded calls, and how long each analytics view takes.

    python benchmarks/analytics.py [--backend sqlite|postgresql|both] [--calls 10000000] [--accounts 1]
                                   [--users 5000] [--days 90] [--repeat 5] [--keep] [--dir D]
    python benchmarks/analytics.py --existing URL [--repeat 5]   # the views again over a kept database

Rollups are built as the job builds them: an account keeps its person rollups once it has
COCKPIT_ROLLUP_PEOPLE_FROM calls (200,000 by default; set it to 0 for every account).

For each backend: a fresh database migrated to head, one measured account (5,000 users in 50 groups,
200 projects, 40 models, 100 agents) and, with ``--accounts N``, N-1 other accounts sharing the calls;
the calls are generated straight into ``usage_requests`` (PostgreSQL: COPY; SQLite: executemany in
one transaction) in time order, as a gateway records them, spread evenly over ``--days`` days. Each
view is then run warm ``--repeat`` times for the last 7, 30 and 90 days, without and with filters;
the median and the slowest run are printed (milliseconds). Numbers, not assertions: see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.service import create_account
from cockpit.analytics import rollups, service
from cockpit.analytics.filters import Dimension, Filters, Scope
from cockpit.analytics.rollup_models import UsageRollup
from cockpit.analytics.service import Metric
from cockpit.config import Settings
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.usage.models import UsageRecord

PG_ADMIN = os.environ.get("COCKPIT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
COLUMNS = [
    "id", "account_id", "created_at", "user_id", "group_id", "project_id", "agent_id", "api_token_id",
    "model_id", "model", "provider_id", "provider_kind", "operation", "stream", "status", "error_type",
    "error_message", "http_status", "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cached_tokens",
    "tokens_estimated", "cost_usd", "credits", "credit_lease_id", "upstream_id", "request_content",
    "response_content", "content_expires_at",
]  # fmt: skip


class World:
    """The measured account's people and things, with the habits the calls follow."""

    def __init__(self, rng: random.Random, users: int, groups: int, projects: int, models: int, agents: int):
        self.groups = [uuid.uuid4() for _ in range(groups)]
        self.projects = [uuid.uuid4() for _ in range(projects)]
        self.models = [f"model-{n:02d}" for n in range(models)]
        self.providers = [uuid.uuid4() for _ in range(4)]
        self.agents = [f"agent-{n:03d}" for n in range(agents)]
        self.people = []
        for _ in range(users):
            group = rng.choice(self.groups)
            self.people.append(
                (
                    uuid.uuid4(), group, rng.sample(self.projects, 2), [uuid.uuid4(), uuid.uuid4()],
                    [*rng.sample(self.models[:12], 3), rng.choice(self.models)], rng.sample(self.agents, 3),
                )
            )  # fmt: skip


def _calls(
    rng: random.Random, world: World, account_id: uuid.UUID, n: int, days: int, end: datetime
) -> Iterator[tuple[Any, ...]]:
    span = days * 86400
    weights = [rng.paretovariate(1.2) for _ in world.people]  # a few heavy users, many light ones
    people = rng.choices(world.people, weights, k=min(n, 200_000))
    start, elapsed = end - timedelta(seconds=span), 0.0
    for k in range(n):
        user, group, projects, tokens, models, agents = people[k % len(people)]
        # In time order, as a gateway records them (random gaps averaging span / n): the table's
        # rows then follow created_at, as they do in production.
        elapsed = min(elapsed + rng.expovariate(1.0) * span / n, span - 1e-6)
        moment = start + timedelta(seconds=elapsed)
        model = rng.choice(models)
        status = (
            "success" if rng.random() < 0.96 else ("error" if rng.random() < 0.8 else "client_disconnected")
        )
        stream = rng.random() < 0.6
        tokens_in, tokens_out = rng.randrange(50, 20_000), rng.randrange(0, 3_000)
        cost = tokens_in * 2_500_000 + tokens_out * 10_000_000  # pico-USD: $2.50 / $10 per million
        yield (
            uuid.uuid4(), account_id, moment, user, group, rng.choice([*projects, None]),
            rng.choice([*agents, None, None]), rng.choice(tokens), None, model,
            world.providers[world.models.index(model) % 4], "openai",
            "embedding" if rng.random() < 0.08 else "chat", stream, status, None, None,
            200 if status == "success" else 502, rng.randrange(80, 9_000),
            rng.randrange(50, 900) if stream and status == "success" else None,
            tokens_in, tokens_out, rng.randrange(0, tokens_in // 4 + 1), False, cost, cost // 1_000_000_000,
            None, None, None, None, None,
        )  # fmt: skip


async def _account(url: str, n: int) -> uuid.UUID:
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        account, _ = await create_account(
            session, name=f"Bench {n}", owner_email=f"owner-{uuid.uuid4().hex[:8]}@bench.example.com",
            owner_password="bench-password-123", timezone="Europe/Paris",
        )  # fmt: skip
        await session.commit()
    await engine.dispose()
    return account.id


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


PEOPLE_FROM = Settings().rollup_people_from  # as the job rolls (COCKPIT_ROLLUP_PEOPLE_FROM)


async def _roll(url: str, label: str, *, once: bool = False) -> None:
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        started = time.perf_counter()
        count = await (
            rollups.roll(session, people_from=PEOPLE_FROM)
            if once
            else rollups.roll_all(session, people_from=PEOPLE_FROM)
        )
        elapsed = time.perf_counter() - started
        rows = await session.scalar(select(func.count()).select_from(UsageRollup))
        if engine.dialect.name == "postgresql":
            await session.execute(text("ANALYZE usage_rollups"))
            await session.commit()
    await engine.dispose()
    print(f"{label} {count:,} calls in {elapsed:.2f} s ({rows:,} rollup rows)")


async def _load(url: str, path: Path | None, rows: Iterator[tuple[Any, ...]], *, analyze: bool = True) -> int:
    count = 0
    if path is not None:
        connection = sqlite3.connect(path)
        marks = ", ".join("?" for _ in COLUMNS)
        statement = f"INSERT INTO usage_requests ({', '.join(COLUMNS)}) VALUES ({marks})"  # noqa: S608
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(tuple(_sqlite_value(v) for v in row))
            if len(batch) == 50_000:
                connection.executemany(statement, batch)
                count += len(batch)
                batch = []
        connection.executemany(statement, batch)
        count += len(batch)
        connection.commit()
        if analyze:
            connection.execute("ANALYZE")
        connection.close()
        return count
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == 100_000:
                await connection.copy_records_to_table("usage_requests", records=chunk, columns=COLUMNS)
                count += len(chunk)
                chunk = []
        await connection.copy_records_to_table("usage_requests", records=chunk, columns=COLUMNS)
        count += len(chunk)
        if analyze:
            await connection.execute("ANALYZE usage_requests")
    finally:
        await connection.close()
    return count


Probe = Callable[[AsyncSession, Filters], Awaitable[object]]


async def _labels(*_: object) -> dict[Any, str]:
    return {}


def _probes(scope: Scope, zone: ZoneInfo) -> list[tuple[str, Probe]]:
    return [
        ("summary", lambda s, f: service.summary(s, scope, f)),
        ("timeseries by day, stacked by model", lambda s, f: service.timeline(
            s, scope, f, zone, _labels, granularity="day", stack_by=Dimension.model)),
        ("breakdown by model", lambda s, f: service.breakdown(s, scope, f, Dimension.model, _labels)),
        ("breakdown by user", lambda s, f: service.breakdown(s, scope, f, Dimension.user, _labels)),
        ("breakdown by group", lambda s, f: service.breakdown(s, scope, f, Dimension.group, _labels)),
        ("breakdown by agent", lambda s, f: service.breakdown(s, scope, f, Dimension.agent, _labels)),
        ("top users by cost", lambda s, f: service.top_users(s, scope, f, _labels, metric=Metric.cost)),
        ("pivot users x models", lambda s, f: service.pivot(s, scope, f, _labels)),
    ]  # fmt: skip


async def _measure(url: str, account_id: uuid.UUID, group: uuid.UUID, end: datetime, repeat: int) -> None:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    # As the server does once started (cockpit.app): what is loaded stays out of the collector's
    # generations, so that its full collections do not pause the views for ~100 ms.
    gc.collect()
    gc.freeze()
    zone, scope = ZoneInfo("Europe/Paris"), Scope(account_id)
    filters = {
        "none": {},
        "model": {"model": "model-00"},
        "group": {"group_id": group},
    }
    print(f"{'view':40} {'days':>4} {'filter':>6} {'median ms':>10} {'max ms':>9}")
    for days in (7, 30, 90):
        for name, values in filters.items():
            f = Filters(end - timedelta(days=days), end, **values)  # type: ignore[arg-type]
            for label, probe in _probes(scope, zone):
                times = []
                for _ in range(repeat + 1):  # the first run warms the caches
                    async with sessions() as session:
                        started = time.perf_counter()
                        await probe(session, f)
                        times.append((time.perf_counter() - started) * 1000)
                warm = times[1:]
                print(f"{label:40} {days:>4} {name:>6} {statistics.median(warm):>10.1f} {max(warm):>9.1f}")
    await engine.dispose()


async def drop_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def measure_existing(url: str, repeat: int, *, build: bool = False) -> None:
    """The views again over a database an earlier run kept (``--keep``, ``--dir`` or
    ``--load-only``); ``build``: roll its calls first (the rollups of a ``--load-only`` database)."""
    if build:
        await _roll(url, "rollups built from")
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        busiest = text(
            "SELECT account_id FROM usage_requests GROUP BY account_id ORDER BY count(*) DESC LIMIT 1"
        )
        account_id = uuid.UUID(str(await session.scalar(busiest)))
        first_group = (
            select(UsageRecord.group_id)
            .where(UsageRecord.account_id == account_id, UsageRecord.group_id.is_not(None))
            .order_by(UsageRecord.created_at)
            .limit(1)
        )
        group = uuid.UUID(str(await session.scalar(first_group)))
    await engine.dispose()
    print(f"\n=== {url.split('://')[0]}: the views over the kept database ===")
    await _measure(url, account_id, group, datetime(2026, 12, 1, tzinfo=UTC), repeat)


async def run(backend: str, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    end = datetime(2026, 12, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as folder:
        if backend == "sqlite":
            kept = Path(args.dir or folder) / "analytics.db"
            kept.unlink(missing_ok=True)
            path: Path | None = kept
            url = f"sqlite+aiosqlite:///{path}"
        else:
            import asyncpg

            path, name = None, f"cockpit_bench_analytics_{os.getpid()}"
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.execute(f'CREATE DATABASE "{name}"')
            await admin.close()
            url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
        await asyncio.to_thread(upgrade, url)
        accounts = [await _account(url, n) for n in range(args.accounts)]
        world = World(rng, args.users, 50, 200, 40, 100)
        share = args.calls // args.accounts
        started = time.perf_counter()
        loaded = 0
        for n, account_id in enumerate(accounts):
            count = share if n else args.calls - share * (args.accounts - 1)
            loaded += await _load(url, path, _calls(rng, world, account_id, count, args.days, end))
        print(f"\n=== {backend}: {loaded:,} calls in {args.accounts} account(s), {args.days} days; "
              f"loaded in {time.perf_counter() - started:.0f} s ===")  # fmt: skip
        if path is not None:
            print(f"database file: {path.stat().st_size / 2**30:.2f} GiB")
        if args.load_only:
            print(f"kept: {url}")
            return
        if not args.no_rollups:
            await _roll(url, "rollups built from")
        await _measure(url, accounts[0], world.groups[0], end, args.repeat)
        if not args.no_rollups:
            # The lag: a batch of new calls (a few seconds of a busy gateway) taken in by one roll.
            fresh = await _load(url, path, _calls(rng, world, accounts[0], args.batch, 1, end), analyze=False)
            await _roll(url, f"one roll of {fresh:,} new calls took", once=True)
        if backend == "postgresql" and not args.keep:
            await drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--dir", help="keep the SQLite database in this folder (analytics.db)")
    parser.add_argument("--no-rollups", action="store_true", help="read every view from the calls")
    parser.add_argument("--batch", type=int, default=10_000, help="new calls for the lag measurement")
    parser.add_argument("--existing", metavar="URL", help="only measure the views over a kept database")
    parser.add_argument("--load-only", action="store_true", help="load the calls, keep the database, stop")
    parser.add_argument("--build", action="store_true", help="with --existing: build the rollups first")
    args = parser.parse_args()
    if args.load_only:
        args.keep = True
    if args.existing:
        asyncio.run(measure_existing(args.existing, args.repeat, build=args.build))
        return
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        asyncio.run(run(backend, args))


if __name__ == "__main__":
    main()
