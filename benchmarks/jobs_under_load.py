"""Gateway latency while the server's job worker makes exports: its jobs on the server's event loop
(``COCKPIT_SERVER_JOBS=loop``) against in a process of its own (``process``, the default), in one run.

    python benchmarks/jobs_under_load.py [--backend sqlite|postgresql|both] [--calls 1000]
                                         [--recorded 100000] [--format xlsx] [--max-seconds 120]

For each backend and each way: a fresh database, the gateway benchmark's account (a provider on a
local upstream, ``tests/upstream/`` in its own process, instant JSON answers) with ``--recorded``
recorded calls over 30 days (benchmarks/analytics.py's generator), an admin API token, and one
``cockpit serve`` process that runs the job queue. Measures, on one keep-alive connection, the
latency of sequential JSON gateway calls (p50, p99, max):

1. alone;
2. while exports of those calls (``POST /api/v1/exports``, view ``calls``, ``--format``) are made one
   after the other by the server's job worker, until the calls are done.

Prints how many exports were finished meanwhile and how long each took. Numbers, not assertions;
see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from logins_under_load import calls, summary

import analytics  # benchmarks/analytics.py: the recorded calls' generator
import gateway as bench  # benchmarks/gateway.py: set-up, client, upstream
from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.tenancy.models import Account
from cockpit.users.models import User

DAYS = 30


async def admin_token_and_calls(url: str, path: Path | None, recorded: int, end: datetime) -> str:
    """An admin API token of the benchmark's account, whose calls table gets ``recorded`` calls."""
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        account = (await session.scalars(select(Account))).one()
        owner = (await session.scalars(select(User).where(User.account_id == account.id))).first()
        assert owner is not None
        _, token = await issue_token(session, Actor.system(account.id), owner, name="admin", scopes=["admin"])
        await session.commit()
    await engine.dispose()
    rng = random.Random(7)
    world = analytics.World(rng, 500, 10, 20, 10, 10)
    await analytics._load(url, path, analytics._calls(rng, world, account.id, recorded, DAYS, end))
    return token


async def export_again_and_again(
    base: str, token: str, body: dict[str, str], stop: asyncio.Event, going: asyncio.Event, took: list[float]
) -> Counter[str]:
    """Ask for an export, wait until it is done, again, until ``stop``: the statuses they ended in."""
    ended: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as api:
        while not stop.is_set():
            started = time.perf_counter()
            asked = await api.post("/api/v1/exports", json=body)
            assert asked.status_code == 202, asked.text
            export = asked.json()
            going.set()
            while export["status"] in ("queued", "running"):
                await asyncio.sleep(0.2)
                export = (await api.get(f"/api/v1/exports/{export['id']}")).json()
            ended[export["status"]] += 1
            took.append(time.perf_counter() - started)
    return ended


async def run_way(backend: str, way: str, args: argparse.Namespace, up_port: int, workdir: Path) -> str:
    label = f"{backend}-{way}"
    if backend == "sqlite":
        path: Path | None = workdir / f"{label}.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        import asyncpg

        path = None
        name = f"cockpit_bench_jobs_{os.getpid()}_{way}"
        admin = await asyncpg.connect(bench.PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(upgrade, url)
    [token] = await bench.prepare(url, f"http://127.0.0.1:{up_port}")
    end = datetime.now(UTC)
    admin_token = await admin_token_and_calls(url, path, args.recorded, end)
    port = bench.free_port()
    env = {
        **os.environ,
        "COCKPIT_DATABASE_URL": url,
        "COCKPIT_DATA_DIR": str(workdir / f"data-{label}"),
        "COCKPIT_SECRET_KEY": bench.SECRET,
        "COCKPIT_ALLOW_PRIVATE_UPSTREAMS": "true",
        "COCKPIT_ENV": "production",
        "COCKPIT_BASE_URL": f"http://127.0.0.1:{port}",
        "COCKPIT_SERVER_JOBS": way,
        "COCKPIT_JOBS_POLL_SECONDS": "0.1",
    }
    server, _ = bench.start(
        [sys.executable, "-m", "cockpit", "serve", "--port", str(port)], env, "Uvicorn running on"
    )
    body = {
        "format": args.format, "view": "calls",
        "from": (end - timedelta(days=DAYS)).isoformat(), "to": end.isoformat(),
    }  # fmt: skip
    try:
        failures: dict[str, Counter[str]] = {"alone": Counter(), "during": Counter()}
        await calls(port, token, 200, Counter(), args.max_seconds)  # warm-up
        alone = await calls(port, token, args.calls, failures["alone"], args.max_seconds)
        stop, going = asyncio.Event(), asyncio.Event()
        took: list[float] = []
        exporting = asyncio.ensure_future(
            export_again_and_again(f"http://127.0.0.1:{port}", admin_token, body, stop, going, took)
        )
        await going.wait()
        await asyncio.sleep(1)  # the worker has claimed the first export
        during = await calls(port, token, args.calls, failures["during"], args.max_seconds)
        stop.set()
        ended = await exporting
    finally:
        server.terminate()
        server.wait(timeout=120)
        if path is None:
            import asyncpg

            admin = await asyncpg.connect(bench.PG_ADMIN)
            await admin.execute(
                f'DROP DATABASE IF EXISTS "cockpit_bench_jobs_{os.getpid()}_{way}" WITH (FORCE)'
            )
            await admin.close()
    median = statistics.median(took) if took else 0.0
    return (
        f"\n=== {backend}, the server's jobs: {way} ===\n"
        f"gateway calls alone: {summary(alone)}; not 200: {dict(failures['alone'])}\n"
        f"gateway calls during exports: {summary(during)}; not 200: {dict(failures['during'])}\n"
        f"exports of {args.recorded:,} calls ({args.format}) meanwhile: {dict(ended)}, "
        f"median {median:.1f} s each"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--calls", type=int, default=1000, help="sequential gateway calls per measurement")
    parser.add_argument("--recorded", type=int, default=100_000, help="recorded calls to export")
    parser.add_argument("--format", choices=["csv", "xlsx"], default="xlsx")
    parser.add_argument(
        "--max-seconds", type=float, default=120, help="stop a measurement after this long (fewer calls)"
    )
    args = parser.parse_args()
    upstream, up_port = bench.start_upstream()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for backend in backends:
                for way in ("loop", "process"):
                    print(await run_way(backend, way, args, up_port, Path(tmp)), flush=True)
    finally:
        upstream.terminate()


if __name__ == "__main__":
    asyncio.run(main())
