"""The ``cockpit`` command: first set-up, automation and serving."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.config import Settings, get_settings
from cockpit.kit.errors import CockpitError

T = TypeVar("T")

app = typer.Typer(
    help="Cockpit: the control plane for your organisation's AI usage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts (organisations).", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
usage_app = typer.Typer(help="Recorded gateway calls.", no_args_is_help=True)
users_app = typer.Typer(help="Users and invitations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(tokens_app, name="tokens")
app.add_typer(audit_app, name="audit")
app.add_typer(usage_app, name="usage")
app.add_typer(users_app, name="users")


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:
        typer.echo(f"error: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from exc


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction: committed if it returns, rolled back if it raises."""
    # Imported when the command runs: `cockpit --help` and the other commands load only what they use.
    from cockpit.kit.db import make_engine, make_sessionmaker

    async def run() -> T:
        engine = make_engine(_settings().database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except CockpitError as exc:
        raise _fail(exc.message, 2 if exc.status == 422 else 1) from exc


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to COCKPIT_DATABASE_URL."""
    # Imported when the command runs: `cockpit --help` and the other commands load only what they use.
    from cockpit.kit.migrate import upgrade_and_describe

    settings = _settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(upgrade_and_describe(settings.database_url), err=True)


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Option(help="Organisation name")],
    owner_email: Annotated[str, typer.Option(help="The first owner's e-mail (their login)")],
    owner_password: Annotated[str, typer.Option(help="The first owner's password")],
    owner_name: Annotated[str, typer.Option(help="The first owner's full name")] = "",
    timezone: Annotated[str, typer.Option(help="IANA time zone of the organisation")] = "UTC",
) -> None:
    """Create an account with its owner; prints the account id alone on stdout."""
    # Imported when the command runs: `cockpit --help` and the other commands load only what they use.
    from cockpit.accounts.service import create_account

    async def work(session: AsyncSession) -> str:
        account, _ = await create_account(
            session,
            name=name,
            owner_email=owner_email,
            owner_password=owner_password,
            owner_name=owner_name,
            timezone=timezone,
        )
        return str(account.id)

    typer.echo(_in_transaction(work))


@tokens_app.command("create")
def tokens_create(
    email: Annotated[str, typer.Option(help="The user the token acts as")],
    name: Annotated[str, typer.Option(help="A name to recognise the token by")],
    scope: Annotated[list[str], typer.Option(help="admin (management API) and/or gateway (LLM calls)")],
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=3650, help="Expire after N days")] = None,
) -> None:
    """Create an API token for a user; prints the token once, alone on stdout."""
    # Imported when the command runs: `cockpit --help` and the other commands load only what they use.
    from cockpit.auth.tokens import issue_token
    from cockpit.authz.actor import Actor
    from cockpit.kit.time import utcnow
    from cockpit.users import service as users_service

    async def work(session: AsyncSession) -> str:
        user = await users_service.user_by_email(session, email)
        if user is None:
            raise CockpitError("user_not_found", f"No user has the e-mail {email}.")
        expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
        actor = Actor.system(user.account_id, label="cli")
        _, raw = await issue_token(session, actor, user, name=name, scopes=scope, expires_at=expires_at)
        return raw

    typer.echo(_in_transaction(work))


@users_app.command("import")
def users_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV file")],
    account: Annotated[
        str | None, typer.Option(help="Account id (printed by 'accounts create'); optional with one account")
    ] = None,
    invited_by: Annotated[
        str | None, typer.Option("--as", help="E-mail of the admin recorded as inviter (default: an owner)")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the per-row report to this CSV file")
    ] = None,
) -> None:
    """Invite everyone in a CSV (email, name, role, group, seats): progress on stderr, report on stdout."""
    # Imported when the command runs: `cockpit --help` and the other commands load only what they use.
    import uuid

    from sqlalchemy import select

    from cockpit.authz.actor import Actor, ActorKind
    from cockpit.imports import service as imports
    from cockpit.kit.db import make_engine, make_sessionmaker
    from cockpit.tenancy.models import Account
    from cockpit.users.models import User, UserRole, UserStatus

    settings = _settings()
    try:
        account_id = uuid.UUID(account) if account else None
    except ValueError as exc:
        raise _fail(f"'{account}' is not an account id", 2) from exc
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(f"{file} is not UTF-8 text", 2) from exc

    async def run() -> imports.ImportReport:
        engine = make_engine(settings.database_url)
        factory = make_sessionmaker(engine)
        try:
            rows = imports.parse_csv(text)
            async with factory() as session:
                nonlocal account_id
                if account_id is None:
                    ids = list(await session.scalars(select(Account.id).limit(2)))
                    if len(ids) != 1:
                        raise CockpitError(
                            "account_required", "There are several accounts: choose one with --account ID."
                        )
                    account_id = ids[0]
                stmt = select(User).where(User.account_id == account_id, User.status == UserStatus.active)
                if invited_by:
                    stmt = stmt.where(User.email == invited_by.strip().lower())
                else:
                    stmt = stmt.where(User.role == UserRole.owner)
                inviter = (await session.scalars(stmt.order_by(User.created_at).limit(1))).first()
            if inviter is None:
                who = invited_by or "an active owner"
                raise CockpitError("inviter_not_found", f"No account {account_id} with {who}.")
            if inviter.role is UserRole.member:
                raise CockpitError("not_permitted", f"{inviter.email} is not an administrator.")
            actor = Actor(
                kind=ActorKind.system,
                account_id=account_id,
                label=f"cli import (as {inviter.email})",
                user_id=inviter.id,
                role=inviter.role,
            )
            with typer.progressbar(
                length=len(rows), label=f"Importing {len(rows)} rows", file=sys.stderr
            ) as bar:
                done = 0

                async def progress(processed: int, _report: imports.ImportReport) -> None:
                    nonlocal done
                    bar.update(processed - done)
                    done = processed

                return await imports.run_import(
                    factory, actor, settings, rows, filename=file.name, progress=progress
                )
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except CockpitError as exc:
        raise _fail(exc.message, 2 if exc.status == 422 else 1) from exc
    full = imports.report_csv(result.rows)
    if report is not None:
        report.write_text(full, encoding="utf-8")
    typer.echo(full, nl=False)
    typer.echo(
        f"{result.total} rows: {result.created} invited, "
        f"{result.skipped} skipped, {result.rejected} rejected",
        err=True,
    )
    if result.rejected:
        raise typer.Exit(3)


@audit_app.command("verify")
def audit_verify(
    account: Annotated[str | None, typer.Option(help="Only this account id")] = None,
) -> None:
    """Check every account's audit hash chain; exit 1 naming the first altered or missing entry."""
    # Imported when the command runs: `cockpit --help` and the other commands load only what they use.
    import uuid

    from cockpit.audit.service import verify_all

    try:
        account_id = uuid.UUID(account) if account else None
    except ValueError as exc:
        raise _fail(f"'{account}' is not an account id", 2) from exc
    reports = _in_transaction(lambda session: verify_all(session, account_id))
    if account_id is not None and not reports:
        raise _fail(f"no account {account_id}", 2)
    bad = [r for r in reports if r.problem is not None]
    for report in reports:
        state = f"BROKEN: {report.problem.message}" if report.problem else "ok"
        typer.echo(f"account {report.account_id}: {report.entries} entries, head {report.head[:16]}… {state}")
    if bad:
        first = bad[0].problem
        typer.echo(f"error: audit chain broken in account {first.account_id}: {first.message}", err=True)  # type: ignore[union-attr]
        raise typer.Exit(1)


@usage_app.command("recover")
def usage_recover() -> None:
    """Write the usage journal left by a stopped or crashed server to the database.

    The server does this itself when it starts; segments that a running server holds are left alone.
    """
    # Imported when the command runs: `cockpit --help` and the other commands load only what they use.
    from cockpit.kit.db import make_engine, make_sessionmaker
    from cockpit.usage.recorder import Recorder

    settings = _settings()

    async def run() -> int:
        engine = make_engine(settings.database_url)
        try:
            return await Recorder(make_sessionmaker(engine), settings.usage_journal_dir).recover()
        finally:
            await engine.dispose()

    count = asyncio.run(run())
    typer.echo(f"{count} usage records replayed from {settings.usage_journal_dir}")


def link_host(host: str) -> str:
    """The host to put in links to a server listening on ``host``: a wildcard address (0.0.0.0, ::)
    is not somewhere a browser can go, so links use the loopback address instead."""
    if host in ("", "0.0.0.0", "::", "[::]"):  # noqa: S104 - recognising a wildcard, not binding to it
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def use_served_address(host: str, port: int) -> None:
    """Without COCKPIT_BASE_URL, links (invitations, the console's gateway URL) point at the address
    served, not at the default http://127.0.0.1:8000. Set in the environment so that every worker
    process started by uvicorn sees it too."""
    if os.environ.get("COCKPIT_BASE_URL"):
        return
    os.environ["COCKPIT_BASE_URL"] = f"http://{link_host(host)}:{port}"
    get_settings.cache_clear()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
    access_log: Annotated[
        bool,
        typer.Option(help="Log every HTTP request (gateway calls are recorded in the request log anyway)"),
    ] = False,
    keepalive_seconds: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=3600,
            help="Close idle keep-alive connections after this many seconds "
            "(default: COCKPIT_KEEPALIVE_SECONDS, 75)",
        ),
    ] = None,
) -> None:
    """Serve the console, the REST API and the gateway."""
    import uvicorn

    use_served_address(host, port)
    settings = _settings()
    uvicorn.run(
        "cockpit.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_level="info",
        access_log=access_log,
        # Longer than client pools keep idle connections (see Settings.keepalive_seconds).
        timeout_keep_alive=keepalive_seconds or settings.keepalive_seconds,
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Jobs run at once (default: COCKPIT_JOBS_CONCURRENCY)")
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="Seconds between credit cycle roll-overs (default: COCKPIT_CREDITS_SCHEDULER_SECONDS)",
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit")] = False,
    from_server: Annotated[
        bool,
        typer.Option(
            "--from-server",
            hidden=True,
            help="Started by `cockpit serve` (jobs.embedded): its settings on standard input, one JSON"
            " line; stops when that input closes; SIGINT is left to the server",
        ),
    ] = False,
) -> None:
    """Run the background job queue (cycle roll-over, CSV imports, retention, purges) until SIGINT
    or SIGTERM; then running jobs finish (COCKPIT_JOBS_GRACE_SECONDS) or are given back.

    Any number of workers, on any machine, may share one database, beside servers that run their
    own (COCKPIT_CREDITS_SCHEDULER); a job whose worker dies is handed to another (docs/jobs.md).
    """
    import logging
    import signal

    # Imported when the command runs: `cockpit --help` and the other commands load only what they use.
    import cockpit.tasks  # noqa: F401  (every job kind registered)
    from cockpit.jobs.worker import Worker
    from cockpit.kit import loop_thread
    from cockpit.kit.db import make_engine, make_sessionmaker

    if from_server:
        from cockpit.jobs.embedded import settings_from_line

        # A Ctrl-C in the server's terminal reaches this process too: the server stops it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            settings = settings_from_line(sys.stdin.buffer.readline())
        except ValueError as exc:
            raise _fail(f"no settings from the server on standard input ({type(exc).__name__})") from exc
    else:
        settings = _settings()
    if interval is not None:
        settings = settings.model_copy(update={"credits_scheduler_seconds": interval})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM,) if from_server else (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        watching = asyncio.create_task(_stop_when_input_closes(stop)) if from_server else None
        engine = make_engine(settings.database_url)
        try:
            runner = Worker(make_sessionmaker(engine), settings, concurrency=concurrency)
            if once:
                ran = await runner.run_until_idle()
                typer.echo(f"cockpit worker: ran {ran} job(s)", err=True)
            else:
                typer.echo(
                    f"cockpit worker {runner.name}: running jobs ({runner.concurrency} at once; credit"
                    f" cycles checked every {settings.credits_scheduler_seconds:g}s); "
                    + ("stops with the server" if from_server else "stop with Ctrl-C"),
                    err=True,
                )
                await runner.run(stop)
        finally:
            if watching is not None:
                watching.cancel()
            await asyncio.to_thread(loop_thread.stop_all)  # the rollups' thread (analytics.tasks)
            await engine.dispose()

    asyncio.run(run())
    typer.echo("cockpit worker stopped", err=True)


async def _stop_when_input_closes(stop: asyncio.Event) -> None:
    """Set ``stop`` when standard input closes (the server that started this worker is gone)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    stop.set()


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Seed only, do not serve")] = False,
) -> None:
    """Migrate the database, seed the demo organisation (once) and serve it."""
    # Imported when the command runs: `cockpit --help` and the other commands load only what they use.
    from cockpit.demo import seed_demo

    db_upgrade()
    use_served_address(host, port)  # links in e-mails and invitations: where the demo really listens
    settings = _settings()
    login = _in_transaction(lambda session: seed_demo(session, settings))
    what = "created" if login.created else "already there, reused"
    url = settings.base_url
    command = _command_name()
    typer.echo(
        f"\n  Cockpit demo organisation {what}.\n"
        f"  Console:  {url}\n"
        f"  E-mail:   {login.email}\n"
        f"  Password: {login.password}\n"
        # A new token at every run (the previous one is revoked): a token is shown only once.
        f"  Gateway:  OPENAI_BASE_URL={url}/v1 OPENAI_API_KEY={login.gateway_token}\n"
        f"  REST API: a token with the admin scope for {url}/api/v1 (docs: {url}/api/docs):\n"
        f"            {command} tokens create --email {login.email} --name api --scope admin\n"
    )
    sys.stdout.flush()
    if not no_serve:
        serve(host=host, port=port, workers=1, keepalive_seconds=None)


def _command_name() -> str:
    """How to run this command again: its path when it is not on the PATH (``.venv/bin/cockpit``)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "cockpit"
    if os.path.basename(argv0) != "cockpit":  # python -m cockpit
        return "cockpit"
    on_path = shutil.which("cockpit")
    if on_path and os.path.realpath(on_path) == os.path.realpath(argv0):
        return "cockpit"
    return os.path.relpath(argv0) if not os.path.relpath(argv0).startswith("..") else argv0


def main() -> None:
    app()
