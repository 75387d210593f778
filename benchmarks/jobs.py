"""Jobs (issue 16): how many jobs per second one worker runs, on SQLite and on PostgreSQL, and two
workers sharing one PostgreSQL database.

    python benchmarks/jobs.py [--backend sqlite|postgresql|both] [--jobs 2000] [--concurrency 4]

Set-up per backend: a fresh database (the migrations); N no-op jobs (``bench.noop``, a handler that
returns at once) written in one transaction; then in-process ``Worker`` objects, each with its own
engine and connection pool (as separate processes have), drain the queue with ``run_until_idle``.
What is measured is the queue's own cost per job: the claim (``UPDATE ... RETURNING``, with its
execution rows), and the transaction that marks the job done and completes its execution row.
Numbers, not assertions; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import func, insert, select

from cockpit.config import Settings
from cockpit.jobs.models import Job, JobRun
from cockpit.jobs.registry import JobContext, Registry
from cockpit.jobs.worker import Worker
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.kit.time import utcnow

PG_ADMIN = os.environ.get("COCKPIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def noop(ctx: JobContext) -> None:
    return None


KINDS = Registry()
KINDS.register("bench.noop", noop)


async def fresh_database(backend: str, workdir: Path, label: str) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / f'bench-{label}.db'}"
    import asyncpg

    name = f"cockpit_bench_jobs_{os.getpid()}_{label}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"


async def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        import asyncpg

        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()


async def measure(url: str, n: int, workers: int, concurrency: int, workdir: Path) -> float:
    """Enqueue ``n`` no-op jobs, drain them with ``workers`` workers; jobs per second."""
    settings = Settings(
        env="test", database_url=url, data_dir=workdir, secret_key="bench-secret-key-not-for-production",
        base_url="http://bench",
    )  # type: ignore[arg-type]  # fmt: skip
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    now = utcnow()
    async with sessions() as session, session.begin():
        await session.execute(
            insert(Job),
            [
                {
                    "id": uuid.uuid4(),
                    "kind": "bench.noop",
                    "payload": {},
                    "status": "queued",
                    "attempts": 0,
                    "max_attempts": 5,
                    "run_at": now,
                    "created_at": now,
                }
                for _ in range(n)
            ],
        )
    engines = [make_engine(url) for _ in range(workers)]
    pool = [
        Worker(
            make_sessionmaker(e),
            settings,
            kinds=KINDS,
            concurrency=concurrency,
            name=f"bench{i}",
            schedules=False,
        )
        for i, e in enumerate(engines)
    ]
    started = time.perf_counter()
    counts = await asyncio.gather(*(w.run_until_idle(limit=n * 2) for w in pool))
    elapsed = time.perf_counter() - started
    async with sessions() as session:
        done = await session.scalar(select(func.count()).select_from(Job).where(Job.status == "done"))
        runs = await session.scalar(select(func.count()).select_from(JobRun).where(JobRun.status == "done"))
    for e in (*engines, engine):
        await e.dispose()
    assert sum(counts) == n == done == runs, (counts, done, runs)
    return n / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"{args.jobs:,} no-op jobs, concurrency {args.concurrency} per worker, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for backend in backends:
            for workers in (1, 2) if backend == "postgresql" else (1,):
                url = await fresh_database(backend, workdir, f"{backend}{workers}")
                try:
                    await asyncio.to_thread(upgrade, url)
                    rate = await measure(url, args.jobs, workers, args.concurrency, workdir)
                    per = rate / workers
                    print(f"{backend:10} {workers} worker(s): {rate:8,.0f} jobs/s ({per:,.0f} per worker)")
                finally:
                    await drop_database(url)


if __name__ == "__main__":
    asyncio.run(main())
