"""A PostgreSQL connection of its own that LISTENs on one channel, and comes back when it drops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("cockpit.db")

# A dropped network path is not noticed by a connection that only waits: it is checked this often.
CHECK_SECONDS = 10.0
CHECK_TIMEOUT = 5.0
MAX_BACKOFF = 5.0


class Listener:
    """Calls ``on_message(payload)`` for every notification on ``channel``.

    ``on_reset()`` is called whenever notifications may have been missed: when the connection is
    lost, and again each time it listens (again). Outside the pool: a pooled connection would stop
    listening when it is handed back.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        channel: str,
        *,
        on_message: Callable[[str], None],
        on_reset: Callable[[], None],
    ) -> None:
        self.url = engine.url
        _args, self._connect_kwargs = engine.dialect.create_connect_args(engine.url)
        self.channel = channel
        self.on_message, self.on_reset = on_message, on_reset
        self.loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._listening = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._listening.is_set()

    def same_database(self, url: URL) -> bool:
        return (url.host, url.port, url.database) == (self.url.host, self.url.port, self.url.database)

    async def start(self, *, wait: float = 5.0) -> None:
        """Start; return once it listens, or after ``wait`` seconds (it keeps trying meanwhile)."""
        if self._task is None:
            self.loop = asyncio.get_running_loop()
            self._stopping.clear()
            self._task = self.loop.create_task(self._run(), name=f"cockpit-listen-{self.channel}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait)
        if not self.connected:
            log.warning("not listening to %s yet; retrying in the background", self.channel)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                await self._listen()
                backoff = 0.1
            except Exception as exc:
                log.warning("listening to %s failed (%s); reconnecting", self.channel, type(exc).__name__)
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _listen(self) -> None:
        connection: Any = await asyncpg.connect(**self._connect_kwargs)
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(self.channel, self._notified)
            self._listening.set()
            self.on_reset()  # what happened before it listened was not heard
            while not self._stopping.is_set() and not lost.is_set():
                stop, gone = (
                    asyncio.ensure_future(self._stopping.wait()),
                    asyncio.ensure_future(lost.wait()),
                )
                done, pending = await asyncio.wait(
                    {stop, gone}, timeout=CHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                if not done:
                    await connection.fetchval("SELECT 1", timeout=CHECK_TIMEOUT)
        finally:
            was_listening = self.connected
            self._listening.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), CHECK_TIMEOUT)
            if was_listening and not self._stopping.is_set():
                self.on_reset()  # notifications may be missed until it listens again

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self.on_message(payload)
        except Exception:
            log.exception("handling a notification on %s", self.channel)
