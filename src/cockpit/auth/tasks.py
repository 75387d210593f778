"""Background jobs of the auth domain: failed sign-in attempts are deleted once they are older than
``COCKPIT_LOGIN_FAILURES_KEEP_DAYS`` (the throttle looks back one hour). Idempotent: a delete of
what is older than a cutoff."""

from __future__ import annotations

from datetime import timedelta

from cockpit.auth.repository import purge_failures_before
from cockpit.jobs.registry import JobContext, registry

KIND = "auth.purge_login_failures"


async def purge_login_failures(ctx: JobContext) -> None:
    cutoff = ctx.now() - timedelta(days=ctx.settings.login_failures_keep_days)
    async with ctx.sessionmaker() as session, session.begin():
        await purge_failures_before(session, cutoff)


registry.register(KIND, purge_login_failures, max_attempts=3)
registry.every(KIND, lambda _settings: timedelta(days=1))
