"""The delay from a platform event to its webhook delivery at the receiver (docs/benchmarks.md,
"Webhooks").

One process holds the emitter, one job worker (``cockpit.jobs.worker.Worker``, as ``cockpit serve``
runs it, every subscriber of the platform events registered) and an aiohttp receiver on
127.0.0.1 that verifies each signature with the ``standardwebhooks`` package. For each of N
events, one after the other: the clock starts before ``events.emit`` and the commit, and stops when
the receiver has read and verified the POST (emit → commit → fan-out job → delivery row and job →
signed POST). Median, p90, p99 and max, on a fresh SQLite file and on PostgreSQL (skipped when it
cannot be reached).

    .venv/bin/python benchmarks/webhooks.py [--events 300] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from standardwebhooks import Webhook

import cockpit.tasks  # noqa: F401  (every job kind and subscriber registered, as in a worker)
from cockpit.accounts.service import create_account
from cockpit.authz.actor import Actor
from cockpit.config import Environment, Settings
from cockpit.events import service as events
from cockpit.jobs.worker import Worker
from cockpit.kit.db import make_engine, make_sessionmaker, run_after_commit
from cockpit.kit.migrate import upgrade
from cockpit.webhooks import service as webhooks

DATA = {"person_name": "Ada", "person_email": "ada@example.com", "amount": "500", "reason": "bench"}


class Receiver:
    def __init__(self) -> None:
        self.secret = ""
        self.waiting: dict[str, tuple[asyncio.Event, list[float]]] = {}
        self.failures = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:
            self.failures += 1
            return web.Response(status=400)
        arrived = time.perf_counter()
        found = self.waiting.get(str(payload["data"].get("event_id")))
        if found is not None:
            found[1].append(arrived)
            found[0].set()
        return web.Response(status=204)


def _in_thread(fn: Any, *args: Any) -> None:
    error: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as exc:  # re-raised below
            error.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if error:
        raise error[0]


async def measure(url: str, data_dir: Path, count: int) -> list[float]:
    _in_thread(upgrade, url)
    settings = Settings(
        env=Environment.test, database_url=url, data_dir=data_dir, secret_key="bench-secret-key",
        webhooks_allow_private=True,
    )  # fmt: skip
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async with sessions() as session:
        account, owner = await create_account(
            session, name="Bench", owner_email=f"owner-{uuid.uuid4().hex[:6]}@example.com",
            owner_password="correct-horse-battery-9",
        )  # fmt: skip
        _endpoint, receiver.secret = await webhooks.create_endpoint(
            session, Actor.for_user(owner), settings=settings, url=f"http://127.0.0.1:{port}/hook",
            events=["credit_request.created"],
        )  # fmt: skip
        account_id = account.id
        await session.commit()

    worker = Worker(sessions, settings, schedules=False)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    delays: list[float] = []
    try:
        for index in range(count + 10):  # the first 10 warm up (connections, caches)
            started = time.perf_counter()
            async with sessions() as session:
                event = await events.emit(session, account_id, "credit_request.created", DATA)
                assert event is not None
                signal: tuple[asyncio.Event, list[float]] = (asyncio.Event(), [])
                receiver.waiting[str(event.id)] = signal
                await session.commit()
                await run_after_commit(session)  # wakes the worker, as a request's commit does
            await asyncio.wait_for(signal[0].wait(), timeout=60)
            if index >= 10:
                delays.append(signal[1][0] - started)
    finally:
        stop.set()
        await running
        await runner.cleanup()
        await engine.dispose()
    assert receiver.failures == 0, "a signature did not verify"
    return delays


def report(name: str, delays: list[float]) -> None:
    ordered = sorted(delays)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    print(
        f"{name:<11} n={len(ordered)}  median {statistics.median(ordered) * 1000:6.1f} ms  "
        f"p90 {pct(90):6.1f} ms  p99 {pct(99):6.1f} ms  max {ordered[-1] * 1000:6.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("COCKPIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    print(f"events to webhook deliveries, one in-process worker, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        report("SQLite", await measure(url, Path(tmp), args.events))
    name = f"cockpit_bench_webhooks_{os.getpid()}"
    try:
        admin = await asyncpg.connect(args.postgres)
    except OSError:
        print("PostgreSQL  not reachable: skipped")
        return
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        with tempfile.TemporaryDirectory() as tmp:
            report("PostgreSQL", await measure(f"{base}/{name}", Path(tmp), args.events))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
