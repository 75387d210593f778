"""The JSON of OPERATIONS → Jobs and Events (``/api/v1/jobs``, ``/api/v1/events``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema


class JobOut(OutputSchema):
    id: uuid.UUID
    kind: str
    account_id: uuid.UUID | None
    status: str
    attempts: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None


class ScheduleOut(OutputSchema):
    kind: str
    description: str
    every: str
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None  # a system operator's only
    updated_at: datetime | None


class JobsPage(OutputSchema):
    # The system's periodic schedules; ``can_manage_schedules``: enable, disable and run them now.
    schedules: list[ScheduleOut]
    can_manage_schedules: bool
    items: list[JobOut]
    meta: PageMeta


class ScheduleUpdate(InputSchema):
    enabled: bool


class RunNowOut(OutputSchema):
    job: JobOut
    queued: bool  # False: a job of that kind was waiting or running already (returned instead)


class JobRunOut(OutputSchema):
    id: uuid.UUID
    job_id: uuid.UUID
    kind: str
    account_id: uuid.UUID | None
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    status: str
    error: str | None
    traceback: str | None


class JobRunsPage(OutputSchema):
    items: list[JobRunOut]
    meta: PageMeta
