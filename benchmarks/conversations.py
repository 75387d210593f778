"""Conversations (issue 15): what the conversation layer adds to the first token, opening a large
conversation, and full-text search over a million messages; on SQLite and on PostgreSQL.

    python benchmarks/conversations.py [--backend sqlite|postgresql|both] [--messages 1000000]
                                       [--runs 200]

Set-up per backend: a fresh database (the migrations), an account whose model ``sim`` is the built-in
simulated provider with no delay (so that what is measured is Cockpit, not a model), one
``cockpit serve`` process, the owner's token (management API and gateway).

1. **Time to first token**: POST /api/v1/conversations/{id}/messages with ``Accept:
   text/event-stream`` (a new conversation each time, created beforehand) against POST
   /v1/chat/completions with ``stream: true`` on the same model, interleaved; the time from sending
   the request to the first text of the answer. Median and p95 of each, and the difference (target:
   at most 5 ms at the median).
2. **Opening a conversation of 2,000 messages with 50 branches** (a main branch of 1,000 messages and
   50 branches of 20 forking from it, written with bulk SQL): GET .../messages (the current branch)
   and ?tree=true, median (target: at most 100 ms).
3. **Search over N messages** (``--messages``, 1,000,000 by default): 50 people of one account
   with 200 conversations each, N/10,000 messages per conversation (the searching person holds 1/50
   of them: 20,000 of a million), written with bulk SQL (executemany on SQLite, COPY on PostgreSQL)
   through the search index's triggers, then ``ANALYZE``. GET /api/v1/conversations/search?q=…
   for a common word, a frequent one, a rare one, two words and a prefix; median of each (target: at
   most 200 ms).
Numbers, not assertions; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit.accounts.service import create_account
from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.migrate import upgrade
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.users.models import User, UserRole
from gateway import SECRET, drop_database, free_port, fresh_database, start

PEOPLE = 50
CONVERSATIONS_EACH = 200
QUESTION = "What should I pack for three days of hiking in the Alps in October?"
RARE = "quokka"  # in about 1 message of 10,000
FREQUENT = "budget"  # in about 1 message of 20
QUERIES = {
    "common word (the)": "the",
    f"frequent word ({FREQUENT})": FREQUENT,
    f"rare word ({RARE})": RARE,
    "two words (budget review)": "budget review",
    "prefix (plan: plans, planning…)": "plan",
    "no match (zyzzyva)": "zyzzyva",
}

# ---- set-up ----


async def prepare(url: str) -> tuple[str, uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    """The account, the simulated model ``sim``, 49 more people; the owner's token, the account's id,
    the owner's id and everyone's ids (the owner first)."""
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        account, owner = await create_account(
            session, name="Bench", owner_email=f"bench-{uuid.uuid4().hex[:6]}@example.com",
            owner_password="benchmark-password-1",
        )  # fmt: skip
        actor = Actor.system(account.id)
        provider = await providers.create_provider(
            session, actor, name="Simulated", kind=ProviderKind.simulated, secret_key=SECRET,
            allow_private=True, settings={"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 40},
        )  # fmt: skip
        await providers.create_model(
            session, actor, name="sim", provider_id=provider.id, upstream_model="sim"
        )
        people = [owner.id]
        for i in range(PEOPLE - 1):
            user = User(
                account_id=account.id, email=f"person-{i}@example.com", name=f"Person {i}",
                role=UserRole.member, group_id=owner.group_id,
            )  # fmt: skip
            session.add(user)
            await session.flush()
            people.append(user.id)
        _, token = await issue_token(session, actor, owner, name="bench", scopes=["admin", "gateway"])
        await session.commit()
    await engine.dispose()
    return token, account.id, owner.id, people


# ---- bulk rows ----

_CONVERSATION_COLUMNS = (
    "id", "account_id", "user_id", "agent_id", "model", "title", "pinned", "archived", "deleted_at",
    "current_leaf_id", "updated_at", "created_at",
)  # fmt: skip
_MESSAGE_COLUMNS = (
    "id", "account_id", "conversation_id", "parent_id", "role", "content", "status", "error", "model",
    "input_tokens", "output_tokens", "cost_usd", "credits", "tool_steps", "created_at",
)  # fmt: skip


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):  # as SQLAlchemy stores it on SQLite: naive UTC
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


async def insert_rows(url: str, table: str, columns: Sequence[str], rows: Iterator[tuple[Any, ...]]) -> int:
    """Rows written in batches of 20,000: executemany on SQLite, COPY on PostgreSQL (the search
    index's triggers run for each row, as for any write)."""
    written = 0
    batch: list[tuple[Any, ...]] = []
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608 (constants)
            for row in rows:
                batch.append(tuple(_sqlite_value(v) for v in row))
                if len(batch) == 20_000:
                    connection.executemany(sql, batch)
                    connection.commit()
                    written, batch = written + len(batch), []
            connection.executemany(sql, batch)
            connection.commit()
        return written + len(batch)
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        for row in rows:
            batch.append(row)
            if len(batch) == 20_000:
                await connection.copy_records_to_table(table, records=batch, columns=list(columns))
                written, batch = written + len(batch), []
        if batch:
            await connection.copy_records_to_table(table, records=batch, columns=list(columns))
    finally:
        await connection.close()
    return written + len(batch)


def _message(account: uuid.UUID, conversation: uuid.UUID, parent: uuid.UUID | None, n: int, content: str,
             at: datetime) -> tuple[Any, ...]:  # fmt: skip
    role = "user" if n % 2 == 0 else "assistant"
    return (uuid.uuid4(), account, conversation, parent, role, content, "complete", None, "", 0, 0, 0, 0,
            "[]", at)  # fmt: skip


def _words(text: str) -> list[str]:
    return text.split()


class Prose:
    """Messages of plausible length drawn from a vocabulary with a Zipf-like distribution (a few
    very common words, a long tail), with FREQUENT and RARE sprinkled in at known rates."""

    COMMON = _words(
        "the of and to a in is it you that for on with as this be are at or have from not by but what "
        "can we all your if will an there do so about which when one more they how would like use "
        "time could make should first may these need into then also just than other only some well"
    )
    TOPICS = _words(
        "project plan plans planning planned report review meeting schedule design server database "
        "customer invoice contract travel hotel flight train recipe garden weather market price team "
        "budget budgets summary draft email letter python query index cache latency release bug "
        "feature test deploy model answer question policy credit account order shipment"
    )

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        syllables = [a + b for a in "bcdfghjklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]
        tail = {"".join(self.random.choices(syllables, k=self.random.randint(2, 4))) for _ in range(30_000)}
        tail -= {FREQUENT, RARE, *self.COMMON, *self.TOPICS}
        self.words = [*self.COMMON, *[t for t in self.TOPICS if t != FREQUENT], *sorted(tail)]
        weights = [1 / (rank + 1) ** 1.05 for rank in range(len(self.words))]
        self.cumulative = list(_accumulate(weights))
        self.sentences = [self._sentence() for _ in range(20_000)]

    def _sentence(self) -> str:
        words = self.random.choices(self.words, cum_weights=self.cumulative, k=self.random.randint(6, 16))
        return words[0].capitalize() + " " + " ".join(words[1:]) + "."

    def message(self) -> str:
        sentences = self.random.choices(self.sentences, k=self.random.randint(1, 5))
        if self.random.random() < 0.05:
            sentences.append(f"The {FREQUENT} is tight.")
        if self.random.random() < 0.0001:
            sentences.append(f"A {RARE} appeared.")
        return " ".join(sentences)

    def title(self) -> str:
        return " ".join(self.random.choices(self.TOPICS, k=3)).capitalize()


def _accumulate(values: list[float]) -> Iterator[float]:
    total = 0.0
    for value in values:
        total += value
        yield total


async def load_messages(
    url: str, account: uuid.UUID, people: list[uuid.UUID], messages: int
) -> tuple[int, float]:
    """PEOPLE x CONVERSATIONS_EACH conversations of ``messages / 10,000`` messages each (a chain);
    how many messages were written and how long it took."""
    prose = Prose(seed=15)
    each = max(1, messages // (len(people) * CONVERSATIONS_EACH))
    start_at = datetime(2026, 1, 1, tzinfo=UTC)
    conversations: list[tuple[uuid.UUID, uuid.UUID]] = []
    rows = []
    for p, person in enumerate(people):
        for c in range(CONVERSATIONS_EACH):
            conversation = uuid.uuid4()
            at = start_at + timedelta(minutes=p * CONVERSATIONS_EACH + c)
            rows.append((conversation, account, person, None, "sim", prose.title(), False, False, None, None,
                         at, at))  # fmt: skip
            conversations.append((conversation, person))
    await insert_rows(url, "conversations", _CONVERSATION_COLUMNS, iter(rows))

    def message_rows() -> Iterator[tuple[Any, ...]]:
        for index, (conversation, _) in enumerate(conversations):
            parent = None
            at = start_at + timedelta(minutes=index)
            for n in range(each):
                row = _message(account, conversation, parent, n, prose.message(), at + timedelta(seconds=n))
                parent = row[0]
                yield row

    started = time.perf_counter()
    written = await insert_rows(url, "conversation_messages", _MESSAGE_COLUMNS, message_rows())
    return written, time.perf_counter() - started


async def load_branched(url: str, account: uuid.UUID, owner: uuid.UUID) -> uuid.UUID:
    """The owner's conversation of 2,000 messages: a main branch of 1,000 and 50 branches of 20."""
    prose = Prose(seed=2000)
    conversation = uuid.uuid4()
    at = datetime(2026, 6, 1, tzinfo=UTC)
    main: list[tuple[Any, ...]] = []
    parent = None
    for n in range(1000):
        row = _message(account, conversation, parent, n, prose.message(), at + timedelta(seconds=n))
        main.append(row)
        parent = row[0]
    branches: list[tuple[Any, ...]] = []
    for b in range(50):
        fork = main[b * 20 + 1]  # an answer: the branch starts with a new version of the next question
        parent = fork[0]
        for n in range(20):
            row = _message(
                account, conversation, parent, n, prose.message(), at + timedelta(hours=1, seconds=b * 20 + n)
            )
            branches.append(row)
            parent = row[0]
    leaf = main[-1][0]
    await insert_rows(url, "conversations", _CONVERSATION_COLUMNS, iter([
        (conversation, account, owner, None, "sim", "Two thousand messages", False, False, None, leaf, at, at)
    ]))  # fmt: skip
    await insert_rows(url, "conversation_messages", _MESSAGE_COLUMNS, iter(main + branches))
    return conversation


async def analyze(url: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute("ANALYZE")
        return
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


# ---- measures ----


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def first_text(http: httpx.AsyncClient, url: str, body: dict[str, Any], conversation: bool) -> float:
    """Seconds from sending the request to the first text of the answer (the rest is read out)."""
    started = time.perf_counter()
    found: float | None = None
    headers = {"Accept": "text/event-stream"}
    async with http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code in (200, 201), await response.aread()
        async for line in response.aiter_lines():
            if found is not None or not line.startswith("data:") or line == "data: [DONE]":
                continue
            event = json.loads(line[5:])
            if conversation:
                text = event.get("content") if event.get("type") == "delta" else None
            else:
                choices = event.get("choices") or [{}]
                text = (choices[0].get("delta") or {}).get("content")
            if text:
                found = time.perf_counter() - started
    assert found is not None, "no text in the answer"
    return found


async def time_to_first_token(http: httpx.AsyncClient, runs: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"conversation": [], "direct": []}
    direct_body = {"model": "sim", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    for i in range(runs + 10):  # 10 warm-up runs
        created = await http.post("/api/v1/conversations", json={"model": "sim"})
        assert created.status_code == 201, created.text
        url = f"/api/v1/conversations/{created.json()['id']}/messages"
        through = await first_text(http, url, {"content": QUESTION}, conversation=True)
        direct = await first_text(http, "/v1/chat/completions", direct_body, conversation=False)
        if i >= 10:
            found["conversation"].append(through)
            found["direct"].append(direct)
    return found


async def timed_get(http: httpx.AsyncClient, url: str, runs: int, **params: Any) -> tuple[list[float], Any]:
    times: list[float] = []
    body: Any = None
    for _ in range(runs):
        started = time.perf_counter()
        response = await http.get(url, params=params)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        body = response.json()
    return times, body


def _load() -> str:
    """The machine's load average over 1 minute: these figures move with it (2 cores here)."""
    return f"{os.getloadavg()[0]:.1f}"


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.2f} ms   p95 {pct(values, 0.95) * 1000:7.2f} ms"


async def one_backend(backend: str, messages: int, runs: int, *, ttft_only: bool = False) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cockpit-conversations-bench-"))
    url = await fresh_database(backend, workdir, "conversations")
    await asyncio.to_thread(upgrade, url)
    token, account, owner, people = await prepare(url)
    port = free_port()
    env = {
        **os.environ, "COCKPIT_DATABASE_URL": url, "COCKPIT_DATA_DIR": str(workdir / "data"),
        "COCKPIT_SECRET_KEY": SECRET, "COCKPIT_ALLOW_PRIVATE_UPSTREAMS": "true",
        "COCKPIT_ENV": "production", "COCKPIT_USAGE_FLUSH_SECONDS": "0.5",
    }  # fmt: skip
    process, _ = start(
        [sys.executable, "-m", "cockpit", "serve", "--port", str(port)], env, "Uvicorn running on"
    )
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120
        ) as http:
            print(f"\n== {backend} ==   (load average {_load()})", flush=True)
            ttft = await time_to_first_token(http, runs)
            print(f"Time to first token, {runs} runs (simulated model, no delay)")
            print(f"  through a conversation (SSE)   {ms(ttft['conversation'])}")
            print(f"  direct gateway call (stream)   {ms(ttft['direct'])}")
            added = statistics.median(ttft["conversation"]) - statistics.median(ttft["direct"])
            added95 = pct(ttft["conversation"], 0.95) - pct(ttft["direct"], 0.95)
            print(f"  added by the conversation layer: {added * 1000:.2f} ms at the median, "
                  f"{added95 * 1000:.2f} ms at p95", flush=True)  # fmt: skip
            if ttft_only:
                return

            written, seconds = await load_messages(url, account, people, messages)
            branched = await load_branched(url, account, owner)
            started = time.perf_counter()
            await analyze(url)
            analyzed = time.perf_counter() - started
            print(f"Loaded {written:,} messages in {seconds:.0f} s ({written / seconds:,.0f}/s, "
                  f"index triggers included); ANALYZE {analyzed:.1f} s", flush=True)  # fmt: skip

            opened, body = await timed_get(http, f"/api/v1/conversations/{branched}/messages", 30)
            whole, tree = await timed_get(http, f"/api/v1/conversations/{branched}/messages", 30, tree="true")
            print(f"Opening a conversation of 2,000 messages with 50 branches (30 runs; load {_load()})")
            print(f"  current branch ({len(body['items'])} messages)   {ms(opened)}")
            print(f"  whole tree ({len(tree['items'])} messages)      {ms(whole)}", flush=True)

            print(f"Search over {written + 2000:,} messages (the searcher holds "
                  f"{written // PEOPLE + 2000:,}), 20 runs each; load {_load()}")  # fmt: skip
            medians = []
            for label, q in QUERIES.items():
                await timed_get(http, "/api/v1/conversations/search", 2, q=q)  # warm-up
                times, found = await timed_get(http, "/api/v1/conversations/search", 20, q=q)
                medians.append(statistics.median(times))
                print(f"  {label:34} {ms(times)}   {found['meta']['total']:>5} conversations", flush=True)
            print(f"  median of the medians: {statistics.median(medians) * 1000:.1f} ms", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if backend == "postgresql":
            await drop_database(url)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--ttft-only", action="store_true", help="only the time to first token")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        await one_backend(backend, args.messages, args.runs, ttft_only=args.ttft_only)


if __name__ == "__main__":
    asyncio.run(main())
