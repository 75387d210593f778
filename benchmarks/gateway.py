"""The gateway against a local OpenAI-protocol upstream, called directly and through Cockpit, in one run.

    python benchmarks/gateway.py [--backend sqlite|postgresql|both] [--calls 2000] [--load-calls 100000]
                                 [--baseline-ref GIT_REF] [--baseline-sql SQL]

For each backend: a fresh database, an account with a gateway token, a provider pointing at a local
upstream (``tests/upstream/`` in its own process: an instant JSON answer and a 20-chunk stream),
and one gateway process started with ``cockpit serve`` (recording on, as in production). Measures:

1. added latency of sequential calls (JSON and streaming): direct and gateway calls are interleaved
   one by one so that both see the same machine; reports p50/p99 of each and their difference;
2. time to first chunk of a stream, direct vs gateway;
3. throughput of the gateway at 32 concurrent callers (keep-alive connections), counting errors,
   and the gateway process's CPU time per call (user + system, all threads, with its usage writer
   process: less sensitive than calls/s to what else the machine runs), then the rows in the
   database once the recorder has flushed (every call must be there);
4. resident memory (VmRSS) of the gateway process after that many calls.

With ``--baseline-ref REF`` the same run also measures the code of another commit: a temporary
``git worktree`` of REF serves its own fresh database (set up like the current one, by the current
code: REF must share its schema) from a second ``cockpit serve`` with ``PYTHONPATH`` pointing at that
worktree's ``src``, against the same upstream. Sequential calls go round-robin (direct, current,
baseline); each load is cut into 6 rounds run back to back in alternating order (current and
baseline, then baseline and current, ...); both are reported side by side.

The load generator (``_gateway_load.py``) is a minimal HTTP/1.1 client on raw asyncio streams so
that the client's own overhead is small next to what is measured; the reports are in
``_gateway_report.py``. Numbers, not assertions; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

from sqlalchemy import BigInteger, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _gateway_load import (
    JSON_BODY,  # noqa: F401 (re-exported: benchmarks/logins_under_load.py uses bench.JSON_BODY)
    LOAD_ROUNDS,
    UPSTREAM_KEY,
    Conn,  # noqa: F401 (re-exported, as bench.Conn)
    Served,
    alternating_loads,
    load,
    pct,  # noqa: F401 (re-exported, as bench.pct)
    sequential,
)
from _gateway_report import report

from cockpit.accounts.service import create_account
from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.credits import balances, ledger
from cockpit.credits.models import CreditCycle, EntryKind, GroupBudget, LedgerEntry, MemberAllocation
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from cockpit.providers import service as providers
from cockpit.providers.models import Model, ProviderKind
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User, UserRole, UserStatus

SECRET = "benchmark-secret-key-0123456789abcdef"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


# ---- set-up ----


async def prepare(
    url: str, upstream_url: str, *, credits: bool = False, members: int = 1, policies: int = 0
) -> list[str]:
    """The account, provider and models; gateway tokens for ``members`` users of one group (the
    owner first). With ``credits``, credits are tracked and enforced on all three levels: a credit
    factor, credits per cycle, the group's budget and every member's allocation. With ``policies``,
    every caller has that many access rules in scope (at the user, group and account level; the
    ones that decide allow the benchmark's models)."""
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    async with factory() as session:
        account, owner = await create_account(
            session,
            name="Bench",
            owner_email=f"bench-{uuid.uuid4().hex[:6]}@example.com",
            owner_password="benchmark-password-1",
        )
        actor = Actor.system(account.id)
        provider = await providers.create_provider(
            session,
            actor,
            name="Local upstream",
            kind=ProviderKind.openai,
            secret_key=SECRET,
            allow_private=True,
            base_url=upstream_url + "/v1",
            api_key=UPSTREAM_KEY,
        )
        for name, upstream_model in (("bench-json", "gpt-bench"), ("bench-stream", "gpt-bench-chunks-20")):
            await providers.create_model(
                session,
                actor,
                name=name,
                provider_id=provider.id,
                upstream_model=upstream_model,
                input_price_per_million=Decimal("2.5"),
                output_price_per_million=Decimal("10"),
            )
        users = [owner]
        for index in range(1, members):
            user = User(
                account_id=account.id, email=f"member-{index}@example.com", name=f"Member {index}",
                role=UserRole.member, status=UserStatus.active, password_hash="-", group_id=owner.group_id,
            )  # fmt: skip
            session.add(user)
            users.append(user)
        await session.flush()
        tokens = []
        for user in users:
            _, token = await issue_token(session, actor, user, name="bench", scopes=["gateway"])
            tokens.append(token)
        if policies:
            bench_models = [
                m.id for m in await session.scalars(select(Model).where(Model.account_id == account.id))
            ]
            for index in range(policies):  # a third at each level, for other (unknown) models
                scope, scope_id = (
                    (Scope.account, account.id),
                    (Scope.group, owner.group_id),
                    (Scope.user, users[index % len(users)].id),
                )[index % 3]
                session.add(
                    AccessPolicy(
                        account_id=account.id, scope=scope, scope_id=scope_id,
                        resource_type=ResourceType.model, resource=str(uuid.uuid4()),
                        effect=Effect.deny if index % 2 else Effect.allow,
                    )
                )  # fmt: skip
            for model_id in bench_models:  # what decides: allowed for the group, denied elsewhere
                session.add(
                    AccessPolicy(
                        account_id=account.id, scope=Scope.group, scope_id=owner.group_id,
                        resource_type=ResourceType.model, resource=str(model_id), effect=Effect.allow,
                    )
                )  # fmt: skip
            session.add(
                AccessPolicy(
                    account_id=account.id, scope=Scope.account, scope_id=account.id,
                    resource_type=ResourceType.model, resource="*", effect=Effect.deny,
                )
            )  # fmt: skip
        if credits:
            account.credit_factor = Decimal(1000)  # a call of the benchmark: about 0.07 credits
            account.credits_per_cycle = Decimal(10**9)
            session.add(GroupBudget(group_id=owner.group_id, account_id=account.id, monthly=Decimal(10**8)))
            for user in users:
                session.add(MemberAllocation(user_id=user.id, account_id=account.id, monthly=Decimal(10**6)))
        await session.commit()
    await engine.dispose()
    return tokens


async def credit_figures(url: str) -> dict[str, object]:
    """After the gateway stopped: used and held credits of the cycle, the recorded calls' credits, how
    many leases were taken, and whether the running totals reconcile with the ledger."""
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        [cycle_id] = (await session.scalars(select(CreditCycle.id))).all()
        recorded_micro = func.sum(UsageRecord.__table__.c.credits, type_=BigInteger)
        figures: dict[str, object] = {
            "used": await ledger.used(session, cycle_id),
            "held": await ledger.held(session, cycle_id),
            "recorded": Decimal(int(await session.scalar(select(recorded_micro)) or 0)) / 1_000_000,
            "leases": await session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == EntryKind.hold)
            ),
            "reconcile": await balances.reconcile(session, cycle_id),
        }
    await engine.dispose()
    return figures


async def count_rows(url: str) -> int:
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        value = await session.scalar(select(func.count()).select_from(UsageRecord))
    await engine.dispose()
    return int(value or 0)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(cmd: list[str], env: dict[str, str], ready: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if ready in line:
            # Keep reading its output so that the process never blocks on a full pipe.
            threading.Thread(target=_drain, args=(proc,), daemon=True).start()
            return proc, line
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"{cmd[0]} did not start")


def start_upstream() -> tuple[subprocess.Popen[str], int]:
    """The local upstream (``tests/upstream/``, instant answers, nothing recorded) in a process of its
    own: the process and its port."""
    upstream, ready = start(
        [sys.executable, "-m", "tests.upstream", "--port", "0", "--no-record", "--api-key", UPSTREAM_KEY],
        {**os.environ, "PYTHONPATH": str(ROOT)},
        "READY",
    )
    return upstream, int(ready.split()[1])


def _drain(proc: subprocess.Popen[str]) -> None:
    """Print the server's warnings and errors, each traceback whole (up to its exception line)."""
    assert proc.stdout is not None
    in_traceback = False
    for line in proc.stdout:
        if "Traceback" in line:
            in_traceback = True
        if in_traceback or "ERROR" in line or "WARNING" in line:
            print("  [server]", line.rstrip(), flush=True)
        if in_traceback and line.strip() and not line.startswith((" ", "Traceback", "\t")):
            in_traceback = False  # the exception's own line ends the traceback


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_rows(url: str, expected: int, patience: float = 60) -> int:
    deadline = time.time() + patience
    rows = await count_rows(url)
    while rows < expected and time.time() < deadline:
        await asyncio.sleep(0.5)
        rows = await count_rows(url)
    return rows


# ---- one backend ----


async def fresh_database(backend: str, workdir: Path, label: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'bench-{label}.db'}"
    import asyncpg

    name = f"cockpit_bench_{os.getpid()}_{label}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


async def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        import asyncpg

        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()


async def run_sql(url: str, statement: str) -> None:
    """A statement on a benchmark database (e.g. the baseline's schema as its own commit had it)."""
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.executescript(statement)
        return
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def serve(
    label: str, backend: str, args: argparse.Namespace, up_port: int, workdir: Path, source: Path | None
) -> Served:
    url = await fresh_database(backend, workdir, label)
    await asyncio.to_thread(upgrade, url)
    tokens = await prepare(
        url, f"http://127.0.0.1:{up_port}", credits=args.credits, members=args.members, policies=args.policies
    )
    if source is not None and args.baseline_sql:
        await run_sql(url, args.baseline_sql)
    port = free_port()
    env = {
        **os.environ,
        "COCKPIT_DATABASE_URL": url,
        "COCKPIT_DATA_DIR": str(workdir / f"data-{backend}-{label}"),
        "COCKPIT_SECRET_KEY": SECRET,
        "COCKPIT_ALLOW_PRIVATE_UPSTREAMS": "true",
        "COCKPIT_ENV": "production",
    }
    if source is not None:  # another commit's code: its src first on the path
        env["PYTHONPATH"] = str(source / "src")
    command = [sys.executable, "-m", "cockpit", "serve", "--port", str(port)]
    if args.profile and source is None:  # sample the gateway with py-spy (collapsed stacks)
        command = ["py-spy", "record", "--format", "raw", "-r", "500", "-o", args.profile, "--", *command]
    process, _ = start(command, env, "Uvicorn running on")
    return Served(label, url, tokens, process, port)


async def run_backend(
    backend: str, args: argparse.Namespace, up_port: int, workdir: Path, baseline: Path | None
) -> list[dict[str, object]]:
    """Measure the current code's gateway (and the baseline's, when given) on one backend."""
    served = [await serve("current", backend, args, up_port, workdir, None)]
    if baseline is not None:
        served.append(await serve("baseline", backend, args, up_port, workdir, baseline))
    results: list[dict[str, object]] = [
        {
            "backend": backend,
            "code": s.label,
            "members": args.members,
            "credits_on": args.credits,
            "policies": args.policies,
        }
        for s in served
    ]
    profiled = bool(args.profile)
    try:
        for kind, stream in (("json", False), ("stream", True)):
            rounds = await sequential([(s.port, s.tokens[0]) for s in served], up_port, args.calls, stream)
            for result, measured in zip(results, rounds, strict=True):
                result[kind] = measured
        sequential_calls = 2 * (args.calls + 200)
        direct_rate, _ = await load(up_port, None, min(args.load_calls, 20_000), 32, stream=False)
        rss_before = [
            rss_kib(s.process.pid) if not (profiled and s.label == "current") else 0 for s in served
        ]
        # With a baseline, each load is cut into rounds that alternate the order of the gateways
        # (ABBA...), so that both see the same background load on a shared machine.
        rounds = LOAD_ROUNDS if len(served) > 1 else 1
        rates = await alternating_loads(served, args.load_calls, rounds, stream=False)
        rows_right_after = [await count_rows(s.url) for s in served]
        stream_rates = await alternating_loads(served, args.stream_load_calls, rounds, stream=True)
        for index, (s, result) in enumerate(zip(served, results, strict=True)):
            expected = sequential_calls + args.load_calls + args.stream_load_calls
            rows = await wait_rows(s.url, expected)
            result.update(
                direct_rate=direct_rate,
                rate=rates[index][0],
                errors=rates[index][1],
                cpu_ms=rates[index][2],
                stream_rate=stream_rates[index][0],
                stream_errors=stream_rates[index][1],
                stream_cpu_ms=stream_rates[index][2],
                expected_rows=expected,
                rows=rows,
                backlog=sequential_calls + args.load_calls - rows_right_after[index],
                rss_before_mib=rss_before[index] / 1024,
                rss_after_mib=rss_kib(s.process.pid) / 1024 if rss_before[index] else 0,
                calls_total=expected,
            )
    finally:
        for s in served:
            if profiled and s.label == "current":
                s.process.send_signal(signal.SIGINT)  # py-spy writes its file and stops the gateway
            else:
                s.process.terminate()
        for s, result in zip(served, results, strict=True):
            s.process.wait(timeout=60)
            if args.credits and "rows" in result:
                result["credits"] = await credit_figures(s.url)
            await drop_database(s.url)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--calls", type=int, default=2000, help="sequential calls per kind (after 200 warm-up)"
    )
    parser.add_argument("--load-calls", type=int, default=100_000, help="JSON calls at 32 concurrent")
    parser.add_argument(
        "--stream-load-calls", type=int, default=10_000, help="streamed calls at 32 concurrent"
    )
    parser.add_argument("--profile", metavar="FILE", help="record the gateway with py-spy into FILE")
    parser.add_argument(
        "--credits", action="store_true", help="credits tracked and enforced on member, group and account"
    )
    parser.add_argument(
        "--members",
        type=int,
        default=1,
        help="callers are this many members of one group (own token each): the shared group and account "
        "rows are the hot rows",
    )
    parser.add_argument(
        "--policies",
        type=int,
        default=0,
        help="this many access rules in every caller's scope (user, group and account level)",
    )
    parser.add_argument(
        "--baseline-sql",
        metavar="SQL",
        help="run on the baseline's database once migrated, e.g. to drop a column its commit did not have",
    )
    parser.add_argument(
        "--baseline-ref",
        metavar="GIT_REF",
        help="also measure the gateway of this commit (a temporary git worktree), side by side",
    )
    args = parser.parse_args()
    names = {"current": f"current ({git('describe', '--always', '--dirty')})"}
    baseline: Path | None = None
    if args.baseline_ref:
        baseline = Path(tempfile.mkdtemp(prefix="cockpit-baseline-"))
        git("worktree", "add", "--detach", str(baseline), args.baseline_ref)
        names["baseline"] = (
            f"baseline ({args.baseline_ref} = {git('rev-parse', '--short', args.baseline_ref)})"
        )
    upstream, up_port = start_upstream()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for backend in backends:
                report(await run_backend(backend, args, up_port, Path(tmp), baseline), names)
    finally:
        upstream.terminate()
        if baseline is not None:
            git("worktree", "remove", "--force", str(baseline))


def git(*arguments: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *arguments], check=True, capture_output=True, text=True)
    return done.stdout.strip()


if __name__ == "__main__":
    asyncio.run(main())
