"""Exports at scale: the cost report of a 90-day view as PDF and Excel, and every raw call as CSV and
Excel, with the time each takes and the peak memory of the process that makes it.

    python benchmarks/exports.py [--backend sqlite|postgresql|both] [--calls 1000000] [--days 90]

For each backend: a fresh database with ``--calls`` calls of one account generated as in
``benchmarks/analytics.py`` (5,000 users, 50 groups, 200 projects, 40 models, 100 agents), then each
export is made by the same code as the ``exports.make`` job (``cockpit.exports.build`` and
``cockpit.reports``), each in a process of its own so that its peak resident memory (``ru_maxrss``)
is its own. The report's time is split into the analytics queries and the file's making.
Numbers, not assertions: see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import analytics as generated
from cockpit.analytics import labels
from cockpit.analytics.filters import Filters, Scope
from cockpit.exports import build
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.reports.pdf import report_pdf
from cockpit.reports.xlsx import report_xlsx

END = datetime(2026, 12, 1, tzinfo=UTC)
KINDS = ("report-pdf", "report-xlsx", "calls-csv", "calls-xlsx")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def one(url: str, account_id: uuid.UUID, kind: str, days: int, out: Path) -> dict[str, object]:
    """Make one export in this process; its figures as a dict."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    zone, scope = ZoneInfo("Europe/Paris"), Scope(account_id)
    f = Filters(END - timedelta(days=days), END)
    before = peak_mib()
    started = time.perf_counter()
    figures: dict[str, object] = {"kind": kind}
    async with sessions() as session:
        if kind.startswith("report"):
            report = await build.cost_report(
                session, scope, f, labels.names, title="Cost tracking", account="Bench", zone=zone,
                filters_text=[], now=END,
            )  # fmt: skip
            queried = time.perf_counter()
            data = report_pdf(report) if kind == "report-pdf" else report_xlsx(report)
            await asyncio.to_thread(out.write_bytes, data)
            figures["queries_s"] = round(queried - started, 2)
            figures["file_s"] = round(time.perf_counter() - queried, 2)
        else:

            async def progress(done: int, total: int) -> None:
                return None

            figures["rows"] = await build.write_calls(
                session, scope, f, labels.names, path=out, xlsx=kind == "calls-xlsx", zone=zone,
                progress=progress,
            )  # fmt: skip
    await engine.dispose()
    figures["total_s"] = round(time.perf_counter() - started, 2)
    figures["bytes"] = (await asyncio.to_thread(out.stat)).st_size
    figures["peak_rss_mib_before"] = round(before, 1)
    figures["peak_rss_mib"] = round(peak_mib(), 1)
    return figures


async def prepare(backend: str, calls: int, days: int, folder: Path) -> tuple[str, uuid.UUID]:
    if backend == "sqlite":
        path: Path | None = folder / "exports.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        import asyncpg

        path, name = None, f"cockpit_bench_exports_{os.getpid()}"
        admin = await asyncpg.connect(generated.PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        server = generated.PG_ADMIN.rsplit("/", 1)[0]
        url = server.replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    await asyncio.to_thread(upgrade, url)
    account_id = await generated._account(url, 0)
    rng = random.Random(13)
    world = generated.World(rng, 5000, 50, 200, 40, 100)
    await generated._load(url, path, generated._calls(rng, world, account_id, calls, days, END))
    await generated._roll(url, "rollups built from")  # as the usage.rollup job keeps them
    return url, account_id


async def drop(url: str) -> None:
    if "asyncpg" not in url:
        return
    await generated.drop_database(url.rsplit("/", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"some of {','.join(KINDS)}")
    parser.add_argument("--one", nargs=3, metavar=("URL", "ACCOUNT", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        url, account, kind = args.one
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / f"export.{kind.split('-')[1]}"
            print(json.dumps(asyncio.run(one(url, uuid.UUID(account), kind, args.days, out))))
        return
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            url, account_id = asyncio.run(prepare(backend, args.calls, args.days, Path(folder)))
            print(f"\n=== {backend}: {args.calls:,} calls over {args.days} days, loaded in "
                  f"{time.perf_counter() - started:.0f} s ===")  # fmt: skip
            try:
                for kind in args.kinds.split(","):
                    done = subprocess.run(
                        [sys.executable, __file__, "--days", str(args.days),
                         "--one", url, str(account_id), kind],
                        capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    print(done.stdout.strip().splitlines()[-1])
            finally:
                asyncio.run(drop(url))


if __name__ == "__main__":
    main()
