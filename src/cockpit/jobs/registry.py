"""Which function runs a job of each kind: domains register their handlers here (their tasks.py).

A handler is ``async def handler(ctx: JobContext) -> None``. It runs outside any transaction and opens
its own (``ctx.sessionmaker``). It must be idempotent: a job may run more than once (its worker died
after the effect but before the job was marked done), so every handler either checks what was done
already or writes its effects together with a record of progress in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.config import Settings

if TYPE_CHECKING:
    from cockpit.jobs.models import Job


class PermanentJobError(Exception):
    """Raised by a handler when trying again cannot help (the job becomes ``dead`` at once)."""


@dataclass
class JobContext:
    """What a handler gets: its job's identity and payload, and the process's database and settings."""

    job_id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    account_id: uuid.UUID | None
    attempt: int  # 1 for the first run
    max_attempts: int
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    now: Callable[[], datetime]

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[JobContext], Awaitable[None]]
# Called once a job is given up (``dead``), with the error: the domain marks its own record failed.
DeadHandler = Callable[[JobContext, str], Awaitable[None]]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    max_attempts: int = 5
    on_dead: DeadHandler | None = None


@dataclass(frozen=True)
class Schedule:
    """A job enqueued once per period by whichever worker gets there first (deduplicated by key)."""

    kind: str
    every: Callable[[Settings], timedelta]
    payload: dict[str, Any] = field(default_factory=dict)


class Registry:
    def __init__(self) -> None:
        self.kinds: dict[str, JobKind] = {}
        self.schedules: list[Schedule] = []

    def register(
        self, kind: str, handler: Handler, *, max_attempts: int = 5, on_dead: DeadHandler | None = None
    ) -> None:
        if kind in self.kinds and self.kinds[kind].handler is not handler:
            raise ValueError(f"job kind {kind!r} is registered twice")
        self.kinds[kind] = JobKind(kind, handler, max_attempts, on_dead)

    def handler(
        self, kind: str, *, max_attempts: int = 5, on_dead: DeadHandler | None = None
    ) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            self.register(kind, fn, max_attempts=max_attempts, on_dead=on_dead)
            return fn

        return decorate

    def every(self, kind: str, every: Callable[[Settings], timedelta], **payload: Any) -> None:
        """Run ``kind`` once per period (the period's length may come from the settings)."""
        if any(s.kind == kind for s in self.schedules):
            return
        self.schedules.append(Schedule(kind, every, payload))


# Called for a job of any kind in the transaction that makes it ``dead`` (a failed last attempt, or
# a dead worker's expired lease on the last attempt), inside a savepoint: what the hook writes
# commits with the job's new status, exactly once; a hook that raises is logged and undone alone.
# A layer above the queue registers here (``cockpit.events`` emits ``job.failed``): the queue
# cannot import it.
DeadHook = Callable[[AsyncSession, "Job", str], Awaitable[None]]
on_dead_any: list[DeadHook] = []


def add_dead_hook(hook: DeadHook) -> None:
    """Register ``hook`` once (importing its module twice does not add it twice)."""
    if hook not in on_dead_any:
        on_dead_any.append(hook)


# The application's registry; cockpit/tasks.py imports every domain's tasks module so that it is full.
registry = Registry()
