"""Background jobs of notifications: imported by ``cockpit.tasks`` so that every worker knows them.

- the subscriber of platform events (``notifications.fanout.deliver_event``), registered with
  ``events.service.subscribe``;
- ``notifications.email``: one message to one address, retried with backoff while the mail server
  cannot be reached. A job runs at least once: a worker that dies after the server took the message
  but before the job was marked done sends it twice (harmless). Without a mail server
  (``COCKPIT_SMTP_HOST`` unset) nothing is sent: the in-app notification is what people get.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select

from cockpit.events import service as events
from cockpit.events.models import PlatformEvent
from cockpit.jobs.registry import JobContext, PermanentJobError, registry
from cockpit.kit.mail import Email, deliver, mail_configured
from cockpit.notifications.fanout import SEND_EMAIL, deliver_event

log = logging.getLogger("cockpit.notifications")


async def send_email(ctx: JobContext) -> None:
    try:
        event_id = uuid.UUID(str(ctx.payload["event_id"]))
        email = Email(
            to=str(ctx.payload["to"]), subject=str(ctx.payload["subject"]), text=str(ctx.payload["text"])
        )
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"unusable notification e-mail job: {exc}") from None
    if not mail_configured(ctx.settings):
        log.info("no mail server configured: notification e-mail not sent", extra={"event_id": str(event_id)})
        return
    async with ctx.sessionmaker() as session:
        exists = await session.scalar(select(PlatformEvent.id).where(PlatformEvent.id == event_id))
    if exists is None:
        return  # its account was deleted meanwhile
    await deliver(ctx.settings, email)  # MailNotSent: tried again later


registry.register(SEND_EMAIL, send_email, max_attempts=8)
events.subscribe("notifications", deliver_event)
