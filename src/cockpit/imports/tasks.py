"""Background jobs of CSV imports (see import_jobs.py for how they resume)."""

from __future__ import annotations

import uuid

from cockpit.imports import import_jobs
from cockpit.jobs.registry import JobContext, PermanentJobError, registry


def _import_id(ctx: JobContext) -> uuid.UUID:
    try:
        return uuid.UUID(str(ctx.payload["import_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError("the job names no import") from exc


async def run_import(ctx: JobContext) -> None:
    await import_jobs.run_job(ctx.sessionmaker, ctx.settings, _import_id(ctx))


async def import_given_up(ctx: JobContext, _error: str) -> None:
    # The error itself stays on the job (for operators); the person sees a plain sentence.
    if "import_id" in ctx.payload:
        await import_jobs.mark_failed(ctx.sessionmaker, _import_id(ctx), import_jobs.UNEXPECTED)


registry.register(
    import_jobs.KIND, run_import, max_attempts=import_jobs.MAX_ATTEMPTS, on_dead=import_given_up
)
