"""create_app(): mounts the REST API, the console and the health checks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import cockpit.tasks  # noqa: F401  (every job kind registered: the server may run a queue worker)
from cockpit import __version__
from cockpit.api import router as api_router
from cockpit.api.mcp import CockpitMCP
from cockpit.api_docs import router as api_docs_router
from cockpit.auth.precheck import BodyAllowances
from cockpit.config import Settings, get_settings
from cockpit.console.pages import router as console_router
from cockpit.console.web import render_error
from cockpit.gateway import tokencount
from cockpit.gateway.directory import Directory
from cockpit.gateway.invalidation import DirectoryListener
from cockpit.gateway.routes import GatewayApp
from cockpit.gateway.service import Gateway
from cockpit.health import router as health_router
from cockpit.jobs.embedded import JobsProcess
from cockpit.jobs.worker import Worker
from cockpit.kit import loop_thread
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.guard import InputGuard
from cockpit.kit.handlers import error_renderer, install_error_handlers
from cockpit.kit.logs import redact_access_logs
from cockpit.kit.time import utcnow
from cockpit.usage.recorder import Recorder

STATIC_DIR = Path(__file__).parent / "console" / "static"


class CockpitApp(FastAPI):
    """FastAPI for the console and the REST API; LLM calls (``/v1/...``) go straight to the gateway."""

    gateway_app = GatewayApp()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            scope["app"] = self
            await self.gateway_app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)

    sessionmaker = make_sessionmaker(engine)
    secret_key = settings.resolved_secret_key()
    recorder = Recorder(
        sessionmaker,
        settings.usage_journal_dir,
        flush_seconds=settings.usage_flush_seconds,
        batch_size=settings.usage_batch_size,
        writer_url=settings.database_url,
        writer=settings.usage_writer,
    )
    # Other processes' changes reach this one's gateway directory through PostgreSQL's LISTEN/NOTIFY
    # (any machine), or with SQLite through a stamp file in the shared data directory.
    stamp = settings.data_dir / "gateway-cache.stamp" if settings.is_sqlite else None
    directory = Directory(sessionmaker, secret_key, stamp, ttl_seconds=settings.gateway_cache_ttl_seconds)
    listener = None if settings.is_sqlite else DirectoryListener(directory, engine)
    gateway = Gateway(settings, directory, recorder)
    mcp = CockpitMCP(sessionmaker, secret_key)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if listener is not None:
            await listener.start()
        await recorder.start()
        gateway.keeper.start()
        # Load the tokenizer now rather than on the first call that needs an estimate.
        await asyncio.to_thread(tokencount.encoding)
        # Everything loaded so far lives as long as the process: keep it out of the garbage
        # collector's generations, which makes every later collection cheaper.
        gc.collect()
        gc.freeze()
        # Usage rows may be written from a thread (usage.writers.WriterThread); with the default
        # 5 ms switch interval a gateway call can wait that long for the interpreter lock behind
        # it. Measured: p99 added latency 2.3 ms at 5 ms, 1.4 ms at 0.1 ms.
        sys.setswitchinterval(0.0001)
        # A single-process deployment runs the job queue too: cycle roll-over, CSV imports,
        # exports, retention (docs/jobs.md), by default in a process of its own (jobs/embedded.py).
        # Several jobs at once, so that a long import does not hold back the periodic jobs.
        mcp_running = contextlib.AsyncExitStack()
        await mcp_running.enter_async_context(mcp.running())
        jobs_stop = asyncio.Event()
        own_process = settings.credits_scheduler and settings.server_jobs == "process"
        jobs_process = JobsProcess(settings) if own_process else None
        if jobs_process is not None:
            await jobs_process.start()
        jobs = (
            asyncio.create_task(Worker(sessionmaker, settings).run(jobs_stop))
            if settings.credits_scheduler and jobs_process is None
            else None
        )
        _app.state.jobs_process = jobs_process
        yield
        jobs_stop.set()
        if jobs is not None:
            await jobs
        if jobs_process is not None:
            await jobs_process.stop()
        await mcp_running.aclose()
        await gateway.drain()  # records still being counted reach the recorder
        await recorder.stop()  # the last calls' credits move from their leases to used
        await gateway.keeper.stop()  # then what is left in the leases goes back
        await asyncio.to_thread(loop_thread.stop_all)  # threads with loops of their own (analytics.tasks)
        await gateway.aclose()
        if listener is not None:
            await listener.stop()
        await engine.dispose()

    app = CockpitApp(
        title="Cockpit API",
        version=__version__,
        description="Manage a Cockpit account: identity, API tokens, audit log. "
        "Authenticate with `Authorization: Bearer <token>` (a token with the `admin` scope). "
        "The OpenAI-compatible gateway is served under `/v1` (tokens with the `gateway` scope).",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served by cockpit.api_docs from vendored assets
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.secret_key = secret_key
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.recorder = recorder
    app.state.gateway = gateway
    app.state.mcp = mcp
    app.state.directory_listener = listener

    install_error_handlers(app, render_error)
    redact_access_logs()

    async def token_is_valid(raw: str) -> bool:
        caller = await gateway.directory.caller(raw)
        return caller is not None and (caller.expires_at is None or caller.expires_at > utcnow())

    app.add_middleware(
        InputGuard,
        decide=BodyAllowances(settings, sessionmaker, token_is_valid),
        render=error_renderer(render_error),
        skip=("/static/",),
    )
    app.include_router(health_router)
    # Cockpit's own MCP server (Streamable HTTP): an ASGI app of the mcp SDK behind a token check.
    app.router.routes.append(Route("/mcp", endpoint=mcp, methods=["GET", "POST", "DELETE"]))
    app.include_router(api_router)
    app.include_router(api_docs_router)
    app.include_router(console_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
