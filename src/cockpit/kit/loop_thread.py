"""An event loop in a thread of its own, with its own database engine: work that should not run on
the server's event loop (a burst of statement building and result handling there delays every
request behind it) but has nothing to share with it."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.kit.db import make_engine, make_sessionmaker

T = TypeVar("T")

_started: weakref.WeakSet[LoopThread] = weakref.WeakSet()


def stop_all() -> None:
    """Stop every loop thread of this process (at shutdown: their engines are disposed)."""
    for thread in list(_started):
        thread.stop()


class LoopThread:
    """An event loop in a daemon thread of its own, with its own engine for ``url``; ``run`` awaits a
    job there. Started at the first job; ``stop`` ends it (its engine disposed)."""

    name = "cockpit-loop"

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> tuple[asyncio.AbstractEventLoop, async_sessionmaker[AsyncSession]]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                ready = threading.Event()
                self._thread = threading.Thread(target=self._main, args=(ready,), name=self.name, daemon=True)
                self._thread.start()
                ready.wait()
                _started.add(self)
        assert self.loop is not None
        assert self.sessionmaker is not None
        return self.loop, self.sessionmaker

    def _main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        engine = make_engine(self.url)
        self.loop, self.sessionmaker = loop, make_sessionmaker(engine)
        ready.set()
        try:
            loop.run_forever()
            loop.run_until_complete(engine.dispose())
        finally:
            loop.close()

    async def run(self, job: Callable[[async_sessionmaker[AsyncSession]], Coroutine[Any, Any, T]]) -> T:
        loop, sessionmaker = self._ensure()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(job(sessionmaker), loop))

    def stop(self) -> None:
        with self._lock:
            if self._thread is not None and self.loop is not None and self._thread.is_alive():
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(timeout=30)
            self._thread = None
