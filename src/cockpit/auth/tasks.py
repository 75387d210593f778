"""Background jobs of the auth domain:

- failed sign-in attempts are deleted once they are older than ``COCKPIT_LOGIN_FAILURES_KEEP_DAYS``
  (the throttle looks back one hour). Idempotent: a delete of what is older than a cutoff;
- the messages of a change of sign-in e-mail (``auth.email_change``), retried with backoff while the
  mail server cannot be reached; a confirmation link used or replaced meanwhile is not sent."""

from __future__ import annotations

from datetime import timedelta

from cockpit.auth import email_change
from cockpit.auth.repository import purge_failures_before
from cockpit.jobs.registry import JobContext, PermanentJobError, registry

KIND = "auth.purge_login_failures"


async def purge_login_failures(ctx: JobContext) -> None:
    cutoff = ctx.now() - timedelta(days=ctx.settings.login_failures_keep_days)
    async with ctx.sessionmaker() as session, session.begin():
        await purge_failures_before(session, cutoff)


registry.register(KIND, purge_login_failures, max_attempts=3)
registry.every(KIND, lambda _settings: timedelta(days=1))


async def send_email_change_message(ctx: JobContext) -> None:
    async with ctx.sessionmaker() as session:
        try:
            await email_change.send_queued(session, ctx.settings, ctx.payload)
        except (KeyError, ValueError) as exc:
            raise PermanentJobError(f"unusable e-mail change job: {type(exc).__name__}") from None


registry.register(email_change.SEND_EMAIL, send_email_change_message, max_attempts=8)
