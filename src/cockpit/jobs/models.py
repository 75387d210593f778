"""The ``jobs`` table: one durable queue for every kind of background work (see docs/jobs.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, TimestampMixin


class JobStatus(StrEnum):
    queued = "queued"  # waiting for its run_at
    running = "running"  # claimed by the worker named in locked_by, until locked_until
    failed = "failed"  # the last attempt failed; tried again at run_at
    done = "done"
    dead = "dead"  # gave up: max_attempts reached, or a failure that no retry can fix


# A job in one of these is picked up by a worker once its run_at has come.
RUNNABLE = (JobStatus.queued.value, JobStatus.failed.value)


class Job(IdMixin, TimestampMixin, Base):
    __tablename__ = "jobs"

    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Set for a tenant's job (an import): only that account's admins see it. NULL for the system's
    # periodic jobs (roll-over, retention, purges).
    account_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.queued.value)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=5)
    run_at: Mapped[datetime]
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(2000))
    # An idempotency key: a second enqueue with the same key is a no-op (a periodic job is enqueued
    # once per period however many workers try). Unique; NULLs do not collide.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_jobs_status_run_at", "status", "run_at"),  # claiming: runnable jobs whose time came
        Index("ix_jobs_status_locked_until", "status", "locked_until"),  # finding expired leases
        Index("ix_jobs_account_id_created_at", "account_id", "created_at"),  # an account's jobs page
    )


class RunStatus(StrEnum):
    running = "running"
    done = "done"
    failed = "failed"  # this attempt failed; the job is tried again after a backoff
    dead = "dead"  # this attempt failed and the job gave up
    interrupted = "interrupted"  # its worker stopped (SIGTERM) and gave the job back; not counted
    lost = "lost"  # its worker died or lost the lease; the job was handed back to the queue


class JobRun(IdMixin, Base):
    """One execution (attempt) of a job, for OPERATIONS → Events: written when a worker claims the
    job and completed when the attempt ends. Forgotten with its job (``jobs.prune``)."""

    __tablename__ = "job_runs"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(100))
    # The job's account (NULL for the system's periodic jobs): an account sees only its own runs.
    account_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    worker: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.running.value)
    error: Mapped[str | None] = mapped_column(String(2000))
    # The end of the traceback, with secrets taken out like ``error`` (queue.scrub_text).
    traceback: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_job_runs_account_id_started_at", "account_id", "started_at"),
        Index("ix_job_runs_kind_started_at", "kind", "started_at"),
        Index("ix_job_runs_job_id", "job_id"),
    )


class JobSchedule(Base):
    """The settings of a periodic kind (``registry.every``). No row: enabled (the default)."""

    __tablename__ = "job_schedules"

    kind: Mapped[str] = mapped_column(String(100), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime]
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
