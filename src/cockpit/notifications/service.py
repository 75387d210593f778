"""Notifications' public service: each account's templates (event and channel), a person's in-app
notifications and their mutes. The fan-out of events lives in ``notifications.fanout``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.events.catalog import COMMON, EVENTS, RECIPIENTS, EventSpec
from cockpit.kit.errors import InvalidInput, NotAuthenticated, NotFound
from cockpit.kit.pagination import Page, PageParams
from cockpit.kit.text import Unstorable, find_unstorable
from cockpit.kit.time import utcnow
from cockpit.kit.validation import normalize_email
from cockpit.notifications import rendering, repository
from cockpit.notifications.models import Channel, Notification, NotificationTemplate
from cockpit.notifications.rendering import TemplateProblem

# E-mail is on by default except for what administrators see in the console anyway.
EMAIL_OFF_BY_DEFAULT = frozenset({"invitation.sent", "invitation.accepted", "cycle.reset", "policy.changed"})
MAX_ADDRESSES = 20
MAX_READ_IDS = 500
# Sample values of the variables every event has (previews).
COMMON_SAMPLE = {
    "account_name": "Acme",
    "event_time": "6 Dec 2026 14:05",
    "console_url": "https://cockpit.example.com",
}


@dataclass(frozen=True)
class EffectiveTemplate:
    """What an event sends on a channel: the account's own template, or the catalogue's default."""

    event: str
    channel: Channel
    subject: str
    body: str
    enabled: bool
    recipients: list[str]
    addresses: list[str]
    is_default: bool
    updated_at: datetime | None = None

    @property
    def spec(self) -> EventSpec:
        return EVENTS[self.event]


@dataclass(frozen=True)
class Preview:
    subject: str
    body: str
    error: str | None = None
    line: int | None = None
    unknown: list[str] = field(default_factory=list)


def default_template(event: str, channel: Channel) -> EffectiveTemplate:
    spec = EVENTS[event]
    enabled = channel is Channel.in_app or event not in EMAIL_OFF_BY_DEFAULT
    return EffectiveTemplate(
        event, channel, spec.subject, spec.body, enabled, list(spec.recipients), [], is_default=True
    )


def _effective(row: NotificationTemplate) -> EffectiveTemplate:
    return EffectiveTemplate(
        row.event, row.channel, row.subject, row.body, row.enabled, list(row.recipients or []),
        list(row.addresses or []), is_default=False, updated_at=row.updated_at,
    )  # fmt: skip


def parse_channel(value: str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise NotFound("channel_not_found", "Channels are in_app and email.") from None


def _spec(event: str) -> EventSpec:
    spec = EVENTS.get(event)
    if spec is None:
        raise NotFound("event_not_found", "No such event.")
    return spec


def sample_data(spec: EventSpec) -> dict[str, Any]:
    return {**COMMON_SAMPLE, **spec.sample}


def variables_of(spec: EventSpec) -> dict[str, str]:
    return {**COMMON, **spec.variables}


# ---- templates ----


async def effective_template(
    session: AsyncSession, account_id: uuid.UUID, event: str, channel: Channel
) -> EffectiveTemplate:
    """For code acting for the account (the fan-out): no permission check."""
    row = await repository.template_of(session, account_id, event, channel)
    return _effective(row) if row is not None else default_template(event, channel)


async def list_templates(session: AsyncSession, actor: Actor) -> list[EffectiveTemplate]:
    """Every event and channel of the catalogue with its effective template."""
    actor.require(Permission.notifications_manage)
    rows = {(r.event, r.channel): r for r in await repository.templates_of(session, actor.account_id)}
    result = []
    for event in EVENTS:
        for channel in Channel:
            row = rows.get((event, channel))
            result.append(_effective(row) if row is not None else default_template(event, channel))
    return result


async def get_template(
    session: AsyncSession, actor: Actor, event: str, channel: Channel
) -> EffectiveTemplate:
    actor.require(Permission.notifications_manage)
    _spec(event)
    return await effective_template(session, actor.account_id, event, channel)


def _text(value: str, field_name: str) -> None:
    try:
        find_unstorable(value, root=field_name)
    except Unstorable as exc:
        raise InvalidInput(
            "invalid_text",
            f"{exc.path} {exc.reason}.",
            details=[{"field": field_name, "message": exc.reason}],
        ) from None


def check_template(spec: EventSpec, subject: str, body: str) -> list[str]:
    """Vet a subject and body (InvalidInput naming the field and line); the unknown variables."""
    unknown: list[str] = []
    for name, source in (("subject", subject), ("body", body)):
        _text(source, name)
        try:
            unknown += rendering.check(source, variables_of(spec)).unknown
        except TemplateProblem as exc:
            where = f" (line {exc.line})" if exc.line else ""
            raise InvalidInput(
                "invalid_template",
                f"The {name} cannot be used{where}: {exc.message}",
                details=[{"field": name, "message": exc.message, "line": exc.line}],
            ) from None
    return sorted(set(unknown))


def _recipients(values: Sequence[str]) -> list[str]:
    unknown = [v for v in values if v not in RECIPIENTS]
    if unknown:
        raise InvalidInput(
            "invalid_recipients",
            f"Recipients are {', '.join(RECIPIENTS)}; not {', '.join(unknown)[:200]}.",
            details=[{"field": "recipients", "message": "unknown recipient"}],
        )
    return [r for r in RECIPIENTS if r in values]


def _addresses(values: Sequence[str]) -> list[str]:
    if len(values) > MAX_ADDRESSES:
        raise InvalidInput(
            "too_many_addresses", f"At most {MAX_ADDRESSES} addresses.",
            details=[{"field": "addresses", "message": f"at most {MAX_ADDRESSES}"}],
        )  # fmt: skip
    result: list[str] = []
    for value in values:
        _text(value, "addresses")
        if value.strip():
            address = normalize_email(value, field="addresses")
            if address not in result:
                result.append(address)
    return result


def _state(t: EffectiveTemplate) -> dict[str, Any]:
    return {
        "subject": t.subject, "body": t.body, "enabled": t.enabled, "recipients": t.recipients,
        "addresses": t.addresses,
    }  # fmt: skip


def _target(event: str, channel: Channel) -> Target:
    return Target(
        "notification_template", f"{event}/{channel.value}", f"{EVENTS[event].label} ({channel.value})"
    )


async def save_template(
    session: AsyncSession,
    actor: Actor,
    event: str,
    channel: Channel,
    *,
    subject: str | None = None,
    body: str | None = None,
    enabled: bool | None = None,
    recipients: Sequence[str] | None = None,
    addresses: Sequence[str] | None = None,
) -> tuple[EffectiveTemplate, list[str]]:
    """Customise an event's template on a channel (what is not given stays as it is); returns it
    and the variables it uses that the event does not have (warnings)."""
    actor.require(Permission.notifications_manage)
    spec = _spec(event)
    before = await effective_template(session, actor.account_id, event, channel)
    new_subject = before.subject if subject is None else subject.strip()
    new_body = before.body if body is None else body.strip()
    if not new_subject:
        raise InvalidInput(
            "invalid_template",
            "The subject is required.",
            details=[{"field": "subject", "message": "required"}],
        )
    unknown = check_template(spec, new_subject, new_body)
    row = await repository.template_of(session, actor.account_id, event, channel)
    if row is None:
        row = NotificationTemplate(id=uuid.uuid4(), account_id=actor.account_id, event=event, channel=channel)
        session.add(row)
    row.subject, row.body = new_subject, new_body
    row.enabled = before.enabled if enabled is None else enabled
    row.recipients = before.recipients if recipients is None else _recipients(recipients)
    row.addresses = before.addresses if addresses is None else _addresses(addresses)
    row.updated_at = utcnow()
    await session.flush()
    after = _effective(row)
    await audit.record_changes(
        session, actor, "notification_template.changed", target=_target(event, channel),
        before=_state(before), after=_state(after),
    )  # fmt: skip
    return after, unknown


async def reset_template(
    session: AsyncSession, actor: Actor, event: str, channel: Channel
) -> EffectiveTemplate:
    """Back to the catalogue's default (the account's row is deleted)."""
    actor.require(Permission.notifications_manage)
    _spec(event)
    row = await repository.template_of(session, actor.account_id, event, channel)
    default = default_template(event, channel)
    if row is not None:
        before = _effective(row)
        await session.delete(row)
        await session.flush()
        await audit.record(
            session, actor, "notification_template.reset", target=_target(event, channel),
            before=_state(before), after=_state(default),
        )  # fmt: skip
    return default


def preview(spec: EventSpec, subject: str, body: str) -> Preview:
    """Render an (unsaved) subject and body with the event's sample data."""
    try:
        unknown = check_template(spec, subject, body)
        data = sample_data(spec)
        return Preview(
            rendering.render_subject(subject, data), rendering.render_body(body, data), unknown=unknown
        )
    except InvalidInput as exc:
        line = (exc.details or [{}])[0].get("line")
        return Preview("", "", error=exc.message, line=line)
    except TemplateProblem as exc:
        return Preview("", "", error=f"The template cannot be rendered: {exc.message}", line=exc.line)


async def preview_template(
    session: AsyncSession, actor: Actor, event: str, channel: Channel, *, subject: str, body: str
) -> Preview:
    actor.require(Permission.notifications_manage)
    return preview(_spec(event), subject, body)


# ---- a person's notifications ----


def _me(actor: Actor) -> uuid.UUID:
    if actor.user_id is None:
        raise NotAuthenticated("no_person", "Notifications belong to a person: sign in as one.")
    return actor.user_id


async def my_notifications(
    session: AsyncSession, actor: Actor, params: PageParams, *, unread: bool = False
) -> Page[Notification]:
    return await repository.page_of(session, actor.account_id, _me(actor), params, unread=unread)


async def my_unread_count(session: AsyncSession, actor: Actor) -> int:
    """One indexed COUNT (the bell polls it)."""
    return await repository.unread_count(session, actor.account_id, _me(actor))


async def mark_read(
    session: AsyncSession, actor: Actor, *, ids: Sequence[uuid.UUID] | None = None, everything: bool = False
) -> int:
    """Mark some (or all) of one's own notifications read; others' ids are ignored."""
    me = _me(actor)
    if not everything and ids is None:
        raise InvalidInput("nothing_to_mark", "Send ids or all: true.")
    if ids is not None and len(ids) > MAX_READ_IDS:
        raise InvalidInput("too_many_ids", f"At most {MAX_READ_IDS} ids at once.")
    return await repository.mark_read(session, actor.account_id, me, None if everything else ids, utcnow())


# ---- mutes ----


async def my_mutes(session: AsyncSession, actor: Actor) -> set[str]:
    return await repository.mutes_of(session, actor.account_id, _me(actor))


async def set_my_mutes(session: AsyncSession, actor: Actor, events: Sequence[str]) -> set[str]:
    """Replace one's mutes; unknown or mandatory events are refused (422)."""
    me = _me(actor)
    wanted = set(events)
    unknown = sorted(e for e in wanted if e not in EVENTS)
    if unknown:
        raise InvalidInput("event_not_found", f"No such event: {', '.join(unknown)[:200]}.")
    mandatory = sorted(e for e in wanted if EVENTS[e].mandatory)
    if mandatory:
        raise InvalidInput(
            "event_mandatory",
            f"These notifications cannot be muted: {', '.join(EVENTS[e].label for e in mandatory)}.",
        )
    await repository.replace_mutes(session, actor.account_id, me, wanted)
    return wanted
