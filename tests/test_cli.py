"""The ``cockpit`` command against a fresh SQLite file.

Commands run in this process through Click's test runner (in a thread of their own, as ``asyncio.run``
needs): the same code, exit codes and output streams as ``python -m cockpit``, without starting Python
and importing Cockpit again for every call (~2 s each). ``run(..., real=True)`` starts the real
``python -m cockpit`` for what only a separate process shows (the entry point, ``serve``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit import cli as cli_module
from cockpit import demo
from cockpit.app import create_app
from cockpit.demo import DEMO_EMAIL, DEMO_PASSWORD
from cockpit.tenancy.models import Account
from cockpit.users.models import User
from tests.builders import PASSWORD
from tests.commands import run
from tests.conftest import TEST_SECRET, make_settings


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}
    env.update(
        COCKPIT_DATABASE_URL=database_url,
        COCKPIT_DATA_DIR=str(data_dir),
        COCKPIT_SECRET_KEY=TEST_SECRET,
        COCKPIT_ENV="test",
    )
    return env


class Cli:
    def __init__(self, tmp_path: Path, url_prefix: str = "sqlite+aiosqlite:///") -> None:
        self.path = tmp_path / "cli.db"
        self.url = f"{url_prefix}{self.path}"
        self.env = _env(self.url, tmp_path)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(self.env, *args)

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, *params: object) -> None:
        conn = sqlite3.connect(self.path)
        try:
            conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()

    def create_account(self, email: str = "owner@example.com", name: str = "Acme") -> str:
        result = self(
            "accounts", "create", "--name", name, "--owner-email", email, "--owner-password", PASSWORD
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    tool = Cli(tmp_path)
    result = tool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    return tool


def test_db_upgrade_creates_the_schema_and_can_run_again(tmp_path: Path) -> None:
    tool = Cli(tmp_path)

    first = run(tool.env, "db", "upgrade", real=True)  # the entry point itself, in a process of its own
    second = tool("db", "upgrade")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    migrations = len(list((Path(cli_module.__file__).parent / "migrations" / "versions").glob("0*.py")))
    assert f"created the database and applied {migrations} migrations" in first.stderr
    assert "up to date" not in first.stderr
    assert "the database is up to date" in second.stderr
    tables = {row[0] for row in tool.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"accounts", "users", "api_tokens", "audit_entries"} <= tables


def test_accounts_create_prints_only_the_account_id(cli: Cli) -> None:
    result = cli(
        "accounts", "create", "--name", "Acme Robotics", "--owner-email", "Founder@Example.com",
        "--owner-password", PASSWORD, "--timezone", "Europe/Paris",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    account_id = uuid.UUID(lines[0])
    assert str(account_id) == lines[0]
    assert cli.query("SELECT name, timezone FROM accounts WHERE id = ?", account_id.hex) == [
        ("Acme Robotics", "Europe/Paris")
    ]
    assert cli.query("SELECT email, role FROM users") == [("founder@example.com", "owner")]
    assert [r[0] for r in cli.query("SELECT action FROM audit_entries ORDER BY seq")] == [
        "account.created", "user.created",
    ]  # fmt: skip


def test_a_weak_password_is_refused_with_the_policy(cli: Cli) -> None:
    result = cli(
        "accounts", "create", "--name", "Acme", "--owner-email", "a@example.com", "--owner-password", "short1"
    )

    assert result.returncode != 0
    assert result.stdout == ""
    assert "12" in result.stderr
    assert "digit" in result.stderr
    assert cli.query("SELECT count(*) FROM accounts") == [(0,)]


def test_a_duplicate_owner_email_is_refused(cli: Cli) -> None:
    cli.create_account("taken@example.com", "First")

    result = cli(
        "accounts",
        "create",
        "--name",
        "Second",
        "--owner-email",
        "TAKEN@example.com",
        "--owner-password",
        PASSWORD,
    )

    assert result.returncode != 0
    assert result.stdout == ""
    assert "taken@example.com already exists" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli.query("SELECT name FROM accounts") == [("First",)]


@pytest.mark.parametrize("email", ["not-an-email", "two@@example.com", "spaces in@example.com"])
def test_a_malformed_email_is_refused(cli: Cli, email: str) -> None:
    result = cli("accounts", "create", "--name", "Acme", "--owner-email", email, "--owner-password", PASSWORD)

    assert result.returncode != 0
    assert "not a valid e-mail address" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli.query("SELECT count(*) FROM accounts") == [(0,)]


async def test_tokens_create_prints_a_working_token(cli: Cli, tmp_path: Path) -> None:
    cli.create_account("owner@example.com", "Token Co")

    result = await asyncio.to_thread(
        cli,
        "tokens",
        "create",
        "--email",
        "owner@example.com",
        "--name",
        "ci",
        "--scope",
        "admin",
        "--scope",
        "gateway",
    )

    assert result.returncode == 0, result.stderr
    [raw] = result.stdout.splitlines()
    assert raw.startswith("ck_")
    assert cli.query(
        "SELECT name, scopes FROM api_tokens WHERE token_hash = ?", hashlib.sha256(raw.encode()).hexdigest()
    ) == [("ci", '["admin", "gateway"]')]
    assert raw not in str(cli.query("SELECT * FROM api_tokens"))  # only the hash is stored
    app = create_app(make_settings(cli.url, tmp_path))
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http:
            response = await http.get("/api/v1/account", headers={"Authorization": f"Bearer {raw}"})
    finally:
        await app.state.engine.dispose()
    assert response.status_code == 200
    assert response.json()["name"] == "Token Co"


def test_tokens_create_for_an_unknown_email_fails(cli: Cli) -> None:
    result = cli("tokens", "create", "--email", "nobody@example.com", "--name", "ci", "--scope", "admin")

    assert result.returncode != 0
    assert result.stdout == ""
    assert "nobody@example.com" in result.stderr
    assert cli.query("SELECT count(*) FROM api_tokens") == [(0,)]


def test_tokens_create_with_an_unknown_scope_fails(cli: Cli) -> None:
    cli.create_account("owner@example.com")

    result = cli("tokens", "create", "--email", "owner@example.com", "--name", "ci", "--scope", "root")

    assert result.returncode != 0
    assert "Unknown scope 'root'" in result.stderr
    assert cli.query("SELECT count(*) FROM api_tokens") == [(0,)]


def test_audit_verify_passes_then_names_an_altered_entry(cli: Cli) -> None:
    account_id = cli.create_account("owner@example.com")
    cli("tokens", "create", "--email", "owner@example.com", "--name", "ci", "--scope", "admin")

    intact = cli("audit", "verify")

    assert intact.returncode == 0, intact.stderr
    assert f"account {account_id}: 3 entries" in intact.stdout
    assert "ok" in intact.stdout

    cli.execute("UPDATE audit_entries SET actor_label = 'someone-else' WHERE seq = 2")
    broken = cli("audit", "verify")

    assert broken.returncode == 1
    assert "entry #2" in broken.stderr
    assert "altered" in broken.stderr
    assert "BROKEN" in broken.stdout


def test_audit_verify_reports_a_deleted_entry(cli: Cli) -> None:
    cli.create_account("owner@example.com")
    cli("tokens", "create", "--email", "owner@example.com", "--name", "ci", "--scope", "admin")
    cli.execute("DELETE FROM audit_entries WHERE seq = 3")

    result = cli("audit", "verify")

    assert result.returncode == 1
    assert "entry #3 is missing" in result.stderr
    assert "truncated" in result.stderr


def test_audit_verify_for_one_account(cli: Cli) -> None:
    tampered = cli.create_account("a@example.com", "A")
    clean = cli.create_account("b@example.com", "B")
    cli.execute(
        "UPDATE audit_entries SET action = 'nothing.happened' WHERE account_id = ?", uuid.UUID(tampered).hex
    )

    only_clean = cli("audit", "verify", "--account", clean)
    everyone = cli("audit", "verify")
    unknown = cli("audit", "verify", "--account", str(uuid.uuid4()))
    garbage = cli("audit", "verify", "--account", "not-a-uuid")

    assert only_clean.returncode == 0, only_clean.stderr
    assert tampered not in only_clean.stdout
    assert everyone.returncode == 1
    assert tampered in everyone.stderr
    assert unknown.returncode != 0
    assert "no account" in unknown.stderr
    assert garbage.returncode != 0
    assert "not an account id" in garbage.stderr


def test_the_plain_sqlite_url_form_is_accepted(tmp_path: Path) -> None:
    tool = Cli(tmp_path, url_prefix="sqlite:///")
    assert tool("db", "upgrade").returncode == 0

    account_id = tool.create_account("plain@example.com", "Plain URL Co")

    assert tool.query("SELECT name FROM accounts WHERE id = ?", uuid.UUID(account_id).hex) == [
        ("Plain URL Co",)
    ]
    assert tool("audit", "verify").returncode == 0


def test_an_unsupported_database_url_is_a_clear_error(tmp_path: Path) -> None:
    result = run(_env("mysql://root@localhost/cockpit", tmp_path), "db", "upgrade")

    assert result.returncode != 0
    assert "COCKPIT_DATABASE_URL" in result.stderr


def test_demo_seeds_once_and_reuses(tmp_path: Path) -> None:
    tool = Cli(tmp_path)

    first = tool("demo", "--no-serve")
    second = tool("demo", "--no-serve")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    for output in (first.stdout, second.stdout):
        assert DEMO_EMAIL in output
        assert DEMO_PASSWORD in output
    assert "created" in first.stdout
    assert "reused" in second.stdout
    assert "reused" not in first.stdout
    assert tool.query("SELECT count(*) FROM accounts") == [(1,)]
    assert tool.query("SELECT count(*) FROM users") == [(1 + len(demo.FIRST),)]  # owner + people
    # Every run prints a working gateway token (a new one; the one printed before is revoked, audited)
    # and how to get a token for the REST API.
    tokens = [re.search(r"OPENAI_API_KEY=(\S+)", out.stdout) for out in (first, second)]
    assert tokens[0]
    assert tokens[1]
    assert tokens[0].group(1) != tokens[1].group(1)
    for out in (first, second):
        assert f"tokens create --email {DEMO_EMAIL} --name api --scope admin" in out.stdout
    demo_tokens = tool.query(
        "SELECT token_hash, revoked_at IS NOT NULL FROM api_tokens WHERE name = 'Demo gateway' ORDER BY 2"
    )
    assert [(h, revoked) for h, revoked in demo_tokens] == [
        (hashlib.sha256(tokens[1].group(1).encode()).hexdigest(), 0),
        (hashlib.sha256(tokens[0].group(1).encode()).hexdigest(), 1),
    ]
    assert tool.query("SELECT count(*) FROM audit_entries WHERE action = 'api_token.revoked'") == [(1,)]
    # The seeded calls' tokens show when they were last used.
    unused = tool.query(
        "SELECT count(*) FROM api_tokens WHERE name = 'Gateway (demo)' AND last_used_at IS NULL"
    )
    assert unused == [(0,)]
    assert tool("audit", "verify").returncode == 0


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", "http://127.0.0.1:9123"),  # noqa: S104 - the address served, in a test
        ("::", "http://127.0.0.1:9123"),
        ("10.1.2.3", "http://10.1.2.3:9123"),
    ],
)
def test_serve_without_a_base_url_links_to_the_address_served(
    monkeypatch: pytest.MonkeyPatch, host: str, expected: str
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from cockpit.config import get_settings

    monkeypatch.delenv("COCKPIT_BASE_URL", raising=False)
    seen: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.append(get_settings().base_url))
    try:
        result = CliRunner().invoke(cli_module.app, ["serve", "--host", host, "--port", "9123"])
        assert result.exit_code == 0, result.output
        assert seen == [expected]  # invitation links and the console's gateway URL
        assert os.environ["COCKPIT_BASE_URL"] == expected  # uvicorn's worker processes inherit it
        # A configured COCKPIT_BASE_URL is kept as it is.
        monkeypatch.setenv("COCKPIT_BASE_URL", "https://cockpit.example.com")
        get_settings.cache_clear()
        CliRunner().invoke(cli_module.app, ["serve", "--host", host, "--port", "9123"])
        assert seen[-1] == "https://cockpit.example.com"
    finally:
        monkeypatch.delenv("COCKPIT_BASE_URL", raising=False)
        get_settings.cache_clear()


async def test_accounts_create_against_the_test_database(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    env = _env(database_url, tmp_path)
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"

    result = await asyncio.to_thread(
        run,
        env,
        "accounts",
        "create",
        "--name",
        "Backend Co",
        "--owner-email",
        email,
        "--owner-password",
        PASSWORD,
    )

    assert result.returncode == 0, result.stderr
    account_id = uuid.UUID(result.stdout.strip())
    account = await db.get(Account, account_id)
    assert account is not None
    assert account.name == "Backend Co"
    assert await db.scalar(select(func.count()).select_from(User).where(User.account_id == account_id)) == 1
    await db.commit()

    again = await asyncio.to_thread(
        run,
        env,
        "accounts",
        "create",
        "--name",
        "Twice",
        "--owner-email",
        email,
        "--owner-password",
        PASSWORD,
    )
    assert again.returncode != 0
    assert "already exists" in again.stderr


def test_usage_recover_replays_a_dead_servers_journal_once(cli: Cli, tmp_path: Path) -> None:
    import uuid as uuid_module

    from cockpit.usage.recorder import journal_line

    account_id = cli.create_account("owner@example.com")
    journal = tmp_path / "usage-journal"
    journal.mkdir()
    ids = [str(uuid_module.uuid4()) for _ in range(3)]
    lines = b"".join(
        journal_line(
            {
                "id": record_id,
                "account_id": account_id,
                "created_at": "2026-11-01T10:00:00+00:00",
                "model": "gpt-4o-mini",
                "operation": "chat",
                "stream": False,
                "status": "success",
                "http_status": 200,
                "latency_ms": 12,
                "input_tokens": 7,
                "output_tokens": 5,
                "cached_tokens": 0,
                "tokens_estimated": False,
                "cost_usd": "0.0000675",
            }
        )
        for record_id in ids
    )
    (journal / "4242-deadbeef-0.jsonl").write_bytes(lines + b'{"id": "torn')  # the crash cut the last line

    first = cli("usage", "recover")

    assert first.returncode == 0, first.stderr
    assert "3 usage records replayed" in first.stdout
    rows = cli.query("SELECT id, cost_usd, input_tokens FROM usage_requests ORDER BY id")
    assert sorted(str(uuid_module.UUID(str(r[0]))) for r in rows) == sorted(ids)
    assert {(r[1], r[2]) for r in rows} == {(67_500_000, 7)}  # $0.0000675 in 10^-12 units
    assert list(journal.glob("*.jsonl")) == []
    again = cli("usage", "recover")
    assert "0 usage records replayed" in again.stdout
    assert cli.query("SELECT COUNT(*) FROM usage_requests") == [(3,)]
