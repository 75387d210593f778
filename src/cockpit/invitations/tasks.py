"""Invitation e-mails from the job queue: one job per link sent, retried with backoff while the mail
server cannot be reached. The link travels encrypted in the job's payload. A job runs at least once:
if its worker dies after the server took the message but before the job was marked done, the person
gets the same link twice (harmless); a link resent or revoked meanwhile is never sent."""

from __future__ import annotations

import uuid

from cockpit.invitations.service import SEND_EMAIL, send_invitation_email
from cockpit.jobs.registry import JobContext, PermanentJobError, registry
from cockpit.kit.secrets import decrypt


async def send_email(ctx: JobContext) -> None:
    try:
        url = decrypt(str(ctx.payload["link"]), ctx.settings.resolved_secret_key())
        invitation_id = uuid.UUID(str(ctx.payload["invitation_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"unusable invitation e-mail job: {exc}") from None
    async with ctx.sessionmaker() as session:
        await send_invitation_email(session, ctx.settings, invitation_id, url)


registry.register(SEND_EMAIL, send_email, max_attempts=8)
