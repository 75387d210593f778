"""Fixtures for webhooks: an independent receiver (aiohttp, on 127.0.0.1) that verifies every
signature with the ``standardwebhooks`` package, an app and a worker allowed to reach it
(COCKPIT_WEBHOOKS_ALLOW_PRIVATE=true), a hand-moved clock and short retry schedules."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook, WebhookVerificationError

from cockpit.app import create_app
from cockpit.config import Settings
from cockpit.events import service as events
from cockpit.jobs.worker import Worker
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.time import utcnow
from cockpit.users.models import UserRole
from cockpit.webhooks import service as webhooks
from tests.builders import bearer, make_account, make_token, make_user
from tests.conftest import make_settings

API = "/api/v1/webhooks"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: Any


@dataclass
class Receiver:
    """Answers each POST as its ``script`` says (popped in order, then ``ok``): ``ok`` (204), a
    status code such as ``500``, or ``hang`` (no answer until the test ends)."""

    url: str = ""
    secrets: list[str] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def verified(self) -> list[Received]:
        return [r for r in self.received if r.verified]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified, payload = False, None
        for secret in self.secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified = True
            break
        self.received.append(Received(headers, body, verified, payload))
        self.arrived.set()
        action = self.script.pop(0) if self.script else "ok"
        if action == "hang":
            await self.release.wait()
            return web.Response(status=204)
        if action == "ok":
            return web.Response(status=204)
        return web.Response(status=int(action), text=f"<b>error {action}</b> " + "x" * 5000)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    found.release.set()
    await runner.cleanup()


def closed_port_url() -> str:
    """An address where nothing listens (a receiver that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


class Clock:
    """The real time moved forward by hand: retries become due without sleeping (jobs queued
    outside the worker are stamped with the real time, so this clock never runs behind it)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhooks_allow_private": True,
            "webhooks_retry_schedule": (30.0, 60.0, 120.0),  # 4 attempts in all
            "webhooks_timeout_seconds": 10.0,
            "webhooks_disable_after_failures": 20,
        }
    )


@pytest.fixture
async def sessions(database_url: str, db: AsyncSession) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def only_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fan-out calls the webhooks' subscriber alone (the other channels are tested elsewhere)."""
    monkeypatch.setattr(events, "_subscribers", {"webhooks": webhooks.on_event})


@pytest.fixture
def make_worker(
    sessions: async_sessionmaker[AsyncSession], hook_settings: Settings, clock: Clock, only_webhooks: None
) -> Callable[..., Worker]:
    def build(settings: Settings | None = None) -> Worker:
        return Worker(
            sessions,
            settings or hook_settings,
            clock=clock,
            schedules=False,
            name=f"t-{uuid.uuid4().hex[:6]}",
        )

    return build


@pytest.fixture(scope="session")
async def hook_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """The app with COCKPIT_WEBHOOKS_ALLOW_PRIVATE=true (its endpoints may be the local receiver)."""
    app = create_app(
        make_settings(database_url, tmp_path_factory.mktemp("hooks"), webhooks_allow_private=True)
    )
    yield app
    await app.state.gateway.aclose()
    await app.state.engine.dispose()


@pytest.fixture
async def hook_client(hook_app: Any, db: AsyncSession) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=hook_app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


class Org:
    def __init__(self, account_id: uuid.UUID, admin: dict[str, str], member: dict[str, str]) -> None:
        self.id, self.admin, self.member = account_id, admin, member


async def make_org(db: AsyncSession, name: str = "Acme") -> Org:
    account, _ = await make_account(db, name=name)
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account, role=UserRole.member)
    return Org(account.id, bearer(await make_token(db, admin)), bearer(await make_token(db, member)))


async def add_endpoint(client: AsyncClient, org: Org, receiver: Receiver, **body: Any) -> dict[str, Any]:
    """An endpoint made through the API; the receiver learns its secret (as its owner would)."""
    response = await client.post(API, json={"url": receiver.url, "events": ["*"], **body}, headers=org.admin)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    receiver.secrets.append(created["secret"])
    return created
