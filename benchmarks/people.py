"""People at scale: the users list with 50,000 users, and a 50,000-row CSV import.

    python benchmarks/people.py [DATABASE_URL] [--users 50000] [--import-rows 50000]

Without a URL a fresh SQLite file is used. Prints latencies of GET /api/v1/users (first page,
a deep page, search, filters, sorts) and the CSV import throughput. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from httpx import ASGITransport, AsyncClient
from sqlalchemy import insert

from cockpit.accounts.service import create_account
from cockpit.app import create_app
from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.groups.repository import default_group
from cockpit.groups.service import create_group
from cockpit.imports import service as imports
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.kit.time import utcnow
from cockpit.users.models import User, UserRole, UserStatus

QUERIES = [
    ("first page (50)", "/api/v1/users?per_page=50"),
    ("page 500 of 1000", "/api/v1/users?per_page=50&page=500"),
    ("search 'user-4242'", "/api/v1/users?q=user-4242"),
    ("search by name 'number 77'", "/api/v1/users?q=number%2077"),
    ("filter role=admin", "/api/v1/users?role=admin"),
    ("filter seat=compute", "/api/v1/users?seat=compute"),
    ("filter status=deactivated", "/api/v1/users?status=deactivated"),
    ("sort -last_login_at", "/api/v1/users?sort=-last_login_at"),
    ("sort name, page 200", "/api/v1/users?sort=name&page=200"),
]


async def seed(url: str, users: int) -> tuple[uuid.UUID, str]:
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    async with factory() as session:
        account, owner = await create_account(
            session, name="Bench", owner_email=f"owner-{uuid.uuid4().hex[:6]}@bench.example.com",
            owner_password="bench-password-123",
        )  # fmt: skip
        account.seat_limit_copilot = account.seat_limit_console = account.seat_limit_compute = 1_000_000
        group = await default_group(session, account.id)
        eng = await create_group(session, Actor.system(account.id), name="Engineering")
        _, token = await issue_token(session, Actor.system(account.id), owner, name="bench", scopes=["admin"])
        await session.commit()
        now = utcnow()
        batch = []
        for i in range(users):
            batch.append({
                "id": uuid.uuid4(), "account_id": account.id, "email": f"user-{i}@bench.example.com",
                "name": f"Person number {i}", "role": UserRole.admin if i % 100 == 0 else UserRole.member,
                "status": UserStatus.deactivated if i % 50 == 0 else UserStatus.active,
                "group_id": eng.id if i % 3 else group.id, "seat_copilot": True, "seat_compute": i % 7 == 0,
                "seat_console": False, "created_at": now, "last_login_at": now if i % 2 else None,
            })  # fmt: skip
            if len(batch) == 5000:
                await session.execute(insert(User), batch)
                batch = []
        if batch:
            await session.execute(insert(User), batch)
        await session.commit()
    await engine.dispose()
    return account.id, token


async def list_latencies(settings: Settings, token: str) -> None:
    app = create_app(settings)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as http:
        headers = {"Authorization": f"Bearer {token}"}
        print(f"{'GET /api/v1/users':32} {'median ms':>10} {'p95 ms':>8} {'total':>7}")
        for label, path in QUERIES:
            timings = []
            total = 0
            for _ in range(15):
                start = time.perf_counter()
                response = await http.get(path, headers=headers)
                timings.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, response.text
                total = response.json()["meta"]["total"]
            timings.sort()
            p95 = timings[int(len(timings) * 0.95) - 1]
            print(f"{label:32} {statistics.median(timings):10.1f} {p95:8.1f} {total:7}")
    await app.state.engine.dispose()


async def import_rate(url: str, settings: Settings, account_id: uuid.UUID, rows: int) -> None:
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    async with factory() as session:
        owner = await session.scalar(
            __import__("sqlalchemy")
            .select(User)
            .where(User.account_id == account_id, User.role == UserRole.owner)
        )
    actor = Actor.for_user(owner)  # type: ignore[arg-type]
    text = "email,name,group,seats\n" + "".join(
        f"invitee-{i}@import.example.com,Invitee {i},{'Engineering' if i % 2 else ''},copilot\n"
        for i in range(rows)
    )
    parsed = imports.parse_csv(text)
    start = time.perf_counter()
    last = [start]

    async def progress(done: int, _report: imports.ImportReport) -> None:
        if done % 10_000 == 0 or done == rows:
            now = time.perf_counter()
            print(f"  {done:6} rows  {now - start:7.1f} s")
            last[0] = now

    report = await imports.run_import(factory, actor, settings, parsed, progress=progress)
    elapsed = time.perf_counter() - start
    print(f"import of {rows} rows: {elapsed:.1f} s, {rows / elapsed:.0f} rows/s, {report.created} invited")
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--import-rows", type=int, default=50_000)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="cockpit-bench-"))
    url = args.url or f"sqlite+aiosqlite:///{data / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(database_url=url, data_dir=data, secret_key="bench-secret-" + "x" * 30)
    print(f"database: {url.split('://')[0]}; users: {args.users}")
    account_id, token = await seed(url, args.users)
    await list_latencies(settings, token)
    if args.import_rows:
        await import_rate(url, settings, account_id, args.import_rows)


if __name__ == "__main__":
    asyncio.run(main())
