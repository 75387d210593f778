"""Gateway latency while people sign in: sequential gateway calls, alone and during 20 concurrent logins.

    python benchmarks/logins_under_load.py [--backend sqlite|postgresql|both] [--calls 1000] [--logins 20]
                                           [--max-seconds 60]

For each backend: a fresh database, an account with a gateway token and ``--logins`` users with
real (production-cost) argon2 password hashes, a provider on a local upstream (``tests/upstream/``
in its own process, instant JSON answers) and one ``cockpit serve`` process. Measures, on one
keep-alive connection, the latency of sequential JSON gateway calls (p50, p99, max):

1. alone;
2. while ``--logins`` console sign-ins of that same account run at once, again and again (each: the
   login page for its CSRF token, then the form), until the calls are done.

Prints the sign-ins' statuses and their p50 too. Numbers, not assertions; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway as bench  # benchmarks/gateway.py: set-up, client, upstream
from cockpit.auth.passwords import hash_password
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole, UserStatus

PASSWORD = "benchmark-password-1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def add_people(url: str, count: int) -> list[str]:
    """``count`` members of the benchmark's account who can sign in (a real argon2 hash each)."""
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        from sqlalchemy import select

        account = (await session.scalars(select(Account))).one()
        owner = (await session.scalars(select(User).where(User.account_id == account.id))).first()
        assert owner is not None
        emails = [f"signer-{index}-{uuid.uuid4().hex[:6]}@example.com" for index in range(count)]
        for email in emails:
            session.add(
                User(
                    account_id=account.id, email=email, name="Signer", role=UserRole.member,
                    status=UserStatus.active, password_hash=hash_password(PASSWORD), group_id=owner.group_id,
                )
            )  # fmt: skip
        await session.commit()
    await engine.dispose()
    return emails


async def calls(port: int, token: str, count: int, failures: Counter[str], seconds: float) -> list[float]:
    """Latencies (ms) of ``count`` sequential calls, or of those made within ``seconds``; what was not a
    200 is counted in ``failures``."""
    conn = await bench.Conn.open(port)
    body = json.dumps(bench.JSON_BODY).encode()
    timings: list[float] = []
    deadline = time.monotonic() + seconds
    for _ in range(count):
        if time.monotonic() > deadline:
            failures["not made: time is up"] = count - len(timings) - sum(failures.values())
            break
        started = time.perf_counter()
        try:
            status, _, _ = await asyncio.wait_for(conn.post("/v1/chat/completions", body, token), 60)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            failures[type(exc).__name__] += 1
            conn.close()
            conn = await bench.Conn.open(port)
            continue
        timings.append((time.perf_counter() - started) * 1000)
        if status != 200:
            failures[str(status)] += 1
    conn.close()
    return timings


async def sign_in_again_and_again(
    base: str,
    email: str,
    stop: asyncio.Event,
    statuses: Counter[str],
    seconds: list[float],
    going: asyncio.Event,
) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as browser:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                page = await browser.get("/login")
                match = CSRF.search(page.text)
                assert match, page.text[:200]
                going.set()
                started = time.perf_counter()
                response = await browser.post(
                    "/login",
                    data={"email": email, "password": PASSWORD, "csrf_token": match.group(1), "next": "/"},
                )
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                going.set()
                continue
            seconds.append(time.perf_counter() - started)
            statuses[str(response.status_code)] += 1
            browser.cookies.clear()


def summary(timings: list[float]) -> str:
    if not timings:
        return "no call answered"
    return (
        f"p50 {bench.pct(timings, 0.5):.3f} ms, p99 {bench.pct(timings, 0.99):.3f} ms, "
        f"max {max(timings):.1f} ms ({len(timings)} calls)"
    )


async def run_backend(backend: str, args: argparse.Namespace, up_port: int, workdir: Path) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'logins.db'}"
    else:
        import asyncpg

        name = f"cockpit_bench_logins_{os.getpid()}"
        admin = await asyncpg.connect(bench.PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(upgrade, url)
    [token] = await bench.prepare(url, f"http://127.0.0.1:{up_port}")
    emails = await add_people(url, args.logins)
    port = bench.free_port()
    env = {
        **os.environ,
        "COCKPIT_DATABASE_URL": url,
        "COCKPIT_DATA_DIR": str(workdir / f"data-{backend}"),
        "COCKPIT_SECRET_KEY": bench.SECRET,
        "COCKPIT_ALLOW_PRIVATE_UPSTREAMS": "true",
        "COCKPIT_ENV": "production",
        "COCKPIT_BASE_URL": f"http://127.0.0.1:{port}",
    }
    server, _ = bench.start(
        [sys.executable, "-m", "cockpit", "serve", "--port", str(port)], env, "Uvicorn running on"
    )
    try:
        failures: dict[str, Counter[str]] = {"alone": Counter(), "during": Counter()}
        await calls(port, token, 200, Counter(), args.max_seconds)  # warm-up
        alone = await calls(port, token, args.calls, failures["alone"], args.max_seconds)
        stop, going = asyncio.Event(), asyncio.Event()
        statuses: Counter[str] = Counter()
        seconds: list[float] = []
        signers = [
            asyncio.ensure_future(
                sign_in_again_and_again(f"http://127.0.0.1:{port}", email, stop, statuses, seconds, going)
            )
            for email in emails
        ]
        await going.wait()  # the first sign-ins are under way
        during = await calls(port, token, args.calls, failures["during"], args.max_seconds)
        stop.set()
        await asyncio.gather(*signers)
    finally:
        server.terminate()
        server.wait(timeout=60)
        if backend == "postgresql":
            import asyncpg

            admin = await asyncpg.connect(bench.PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "cockpit_bench_logins_{os.getpid()}" WITH (FORCE)')
            await admin.close()
    print(f"\n=== {backend} ===")
    print(f"gateway calls alone: {summary(alone)}; not 200: {dict(failures['alone'])}")
    print(
        f"gateway calls during {args.logins} sign-ins: {summary(during)}; not 200: {dict(failures['during'])}"
    )
    print(
        f"sign-ins meanwhile: {sum(statuses.values())}, statuses {dict(sorted(statuses.items()))}, "
        f"p50 {bench.pct(seconds, 0.5) * 1000 if seconds else 0:.0f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--calls", type=int, default=1000, help="sequential gateway calls per measurement")
    parser.add_argument("--logins", type=int, default=20, help="concurrent sign-ins")
    parser.add_argument(
        "--max-seconds", type=float, default=60, help="stop a measurement after this long (fewer calls)"
    )
    args = parser.parse_args()
    upstream, up_port = bench.start_upstream()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for backend in backends:
                await run_backend(backend, args, up_port, Path(tmp))
    finally:
        upstream.terminate()


if __name__ == "__main__":
    asyncio.run(main())
