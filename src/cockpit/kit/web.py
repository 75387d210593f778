"""Request-scoped plumbing shared by the API and the console."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.config import Settings
from cockpit.kit.db import unit_of_work


async def _db(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in unit_of_work(request.app.state.sessionmaker):
        yield session


# scope="function": the commit happens before the response is sent, so a failed
# commit becomes an error response rather than a success the client already saw.
DbSession = Annotated[AsyncSession, Depends(_db, scope="function")]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(_settings)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def user_agent(request: Request) -> str | None:
    value = request.headers.get("user-agent")
    return value[:400] if value else None
