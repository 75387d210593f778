"""The notifications' subscriber of platform events: for each channel whose template is enabled,
find the recipients, render the message and write it — in-app rows, and one e-mail job per address.

It runs inside the ``events.fan_out`` job's transaction and may run again for the same event (a
worker died before the job was marked done): in-app rows are unique per (event, person) and written
with ON CONFLICT DO NOTHING, e-mail jobs are deduplicated by key, so everything happens once.

Recipients:

- ``person``: the event's person, when they are an active member of the event's account;
- ``group_admins``: Cockpit has no per-group administrator role yet, so a group's administrators are
  the account's owners and administrators (the same people as ``account_admins``);
- ``account_admins``: the account's active owners and administrators;
- the template's ``addresses`` (e-mail only): mutes do not apply to them.

A person who muted the event hears nothing of it unless the event is mandatory; deactivated people
and other accounts' people never receive anything.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.config import get_settings
from cockpit.events.catalog import ACCOUNT_ADMINS, EVENTS, GROUP_ADMINS, PERSON, EventSpec
from cockpit.events.models import PlatformEvent
from cockpit.jobs import service as jobs
from cockpit.kit.time import utcnow
from cockpit.notifications import rendering, repository
from cockpit.notifications.models import Channel
from cockpit.notifications.service import EffectiveTemplate, default_template, effective_template
from cockpit.tenancy.service import account_by_id
from cockpit.users import service as users
from cockpit.users.models import User, UserStatus

log = logging.getLogger("cockpit.notifications")

SEND_EMAIL = "notifications.email"

# Where a notification of each event leads in the console (a path: never an address from the data).
LINKS = {
    "invitation.sent": "/invitations",
    "invitation.accepted": "/users",
    "user.deactivated": "/users",
    "credit_request.created": "/credits/requests",
    "credit_request.approved": "/credits",
    "credit_request.denied": "/credits",
    "credit_request.auto_approved": "/credits",
    "budget.threshold_crossed": "/credits",
    "cycle.reset": "/credits",
    "policy.changed": "/policies",
    "integration.failing": "/integrations",
    "job.failed": "/events",
    "export.ready": "/cost-tracking",
    "ticket.created": "/support",
    "ticket.replied": "/support",
    "ticket.status_changed": "/support",
    "webhook.disabled": "/webhooks",
}


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


def _console_url() -> str:
    try:
        return get_settings().base_url
    except ValueError:  # settings that do not load here must not stop a fan-out
        return ""


async def event_data(session: AsyncSession, event: PlatformEvent) -> dict[str, Any]:
    """The template variables of an event: the common ones, then the event's own."""
    account = await account_by_id(session, event.account_id)
    zone = ZoneInfo(account.timezone) if account is not None else ZoneInfo("UTC")
    common = {
        "account_name": account.name if account is not None else "",
        "event_time": event.created_at.astimezone(zone).strftime("%d %b %Y %H:%M"),
        "console_url": _console_url(),
    }
    return {**common, **(event.data or {})}


def render_message(template: EffectiveTemplate, data: dict[str, Any]) -> Message:
    """The template rendered; when it cannot be (an error, a limit), the catalogue's default is used
    and the problem logged: a broken template never stops a fan-out."""
    try:
        return Message(
            rendering.render_subject(template.subject, data), rendering.render_body(template.body, data)
        )
    except rendering.TemplateProblem as exc:
        log.warning(
            "notification template failed, using the default",
            extra={"event": template.event, "channel": template.channel.value, "error": str(exc)[:300]},
        )
    default = default_template(template.event, template.channel)
    try:
        return Message(
            rendering.render_subject(default.subject, data), rendering.render_body(default.body, data)
        )
    except rendering.TemplateProblem:
        spec = EVENTS[template.event]
        return Message(spec.label, spec.description)


async def recipients(
    session: AsyncSession, event: PlatformEvent, spec: EventSpec, template: EffectiveTemplate
) -> list[User]:
    """The people (active, of the event's account, not muting it unless mandatory), once each."""
    found: dict[uuid.UUID, User] = {}
    if PERSON in template.recipients and event.person_id is not None:
        person = await users.get_user(session, event.account_id, event.person_id)
        if person is not None:
            found[person.id] = person
    if GROUP_ADMINS in template.recipients or ACCOUNT_ADMINS in template.recipients:
        for admin in await repository.active_admins(session, event.account_id):
            found.setdefault(admin.id, admin)
    people = {
        uid: u
        for uid, u in found.items()
        if u.status is UserStatus.active and u.account_id == event.account_id
    }
    if not spec.mandatory:
        for muted in await repository.muted_among(session, event.account_id, event.name, list(people)):
            people.pop(muted, None)
    return sorted(people.values(), key=lambda u: u.email)


async def deliver_event(session: AsyncSession, event: PlatformEvent) -> None:
    """The subscriber (``events.service.subscribe``)."""
    spec = EVENTS.get(event.name)
    if spec is None:
        return
    data = await event_data(session, event)
    for channel in Channel:
        template = await effective_template(session, event.account_id, event.name, channel)
        if not template.enabled:
            continue
        people = await recipients(session, event, spec, template)
        if channel is Channel.in_app:
            if not people:
                continue
            message = render_message(template, data)
            now = utcnow()
            await repository.insert_notifications(
                session,
                [
                    {
                        "id": uuid.uuid4(),
                        "account_id": event.account_id,
                        "user_id": person.id,
                        "event_id": event.id,
                        "event": event.name,
                        "title": message.subject,
                        "body": message.body,
                        "link": LINKS.get(event.name),
                        "created_at": now,
                    }
                    for person in people
                ],
            )
            continue
        addresses: list[str] = []
        for address in [p.email.lower() for p in people] + [a.lower() for a in template.addresses]:
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            continue
        message = render_message(template, data)
        for address in addresses:
            await jobs.enqueue(
                session,
                SEND_EMAIL,
                {"event_id": str(event.id), "to": address, "subject": message.subject, "text": message.body},
                account_id=event.account_id,
                dedupe_key=f"email:{event.id}:{address}",
            )
