"""Notifications: a person's in-app notifications and mutes, and the account's templates (issue 16).
Webhooks have their own router (api/webhooks.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cockpit.auth.dependencies import ApiActor, require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.events.catalog import EVENTS
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.web import DbSession
from cockpit.notifications import service
from cockpit.notifications.schemas import (
    MarkedRead,
    MarkRead,
    NotificationList,
    NotificationOut,
    Preferences,
    PreferencesIn,
    PreviewIn,
    PreviewOut,
    TemplateChange,
    TemplateList,
    TemplateOut,
    TemplateSaved,
    Variable,
)
from cockpit.notifications.service import EffectiveTemplate

router = APIRouter(tags=["notifications"])

Manager = Annotated[Actor, Depends(require(Permission.notifications_manage))]


def template_out(t: EffectiveTemplate) -> TemplateOut:
    spec = t.spec
    return TemplateOut(
        event=t.event, label=spec.label, description=spec.description, channel=t.channel.value,
        subject=t.subject, body=t.body, enabled=t.enabled, recipients=t.recipients, addresses=t.addresses,
        default=t.is_default, mandatory=spec.mandatory, updated_at=t.updated_at,
        variables=[Variable(name=k, description=v) for k, v in service.variables_of(spec).items()],
    )  # fmt: skip


# ---- mine ----


@router.get("/notifications", response_model=NotificationList)
async def list_notifications(
    session: DbSession,
    actor: ApiActor,
    paging: Annotated[PageParams, Depends(page_params)],
    unread: Annotated[bool, Query()] = False,
) -> NotificationList:
    """My notifications, newest first, with how many are unread."""
    page = await service.my_notifications(session, actor, paging, unread=unread)
    return NotificationList(
        items=[NotificationOut.model_validate(n) for n in page.items],
        unread_count=await service.my_unread_count(session, actor),
        meta=PageMeta.of(page),
    )


@router.post("/notifications/read", response_model=MarkedRead)
async def read_notifications(body: MarkRead, session: DbSession, actor: ApiActor) -> MarkedRead:
    """Mark some (``ids``) or all (``all: true``) of my notifications read."""
    marked = await service.mark_read(session, actor, ids=body.ids, everything=body.all)
    return MarkedRead(marked=marked, unread_count=await service.my_unread_count(session, actor))


@router.get("/me/notification-preferences", response_model=Preferences)
async def get_preferences(session: DbSession, actor: ApiActor) -> Preferences:
    return Preferences(
        muted=sorted(await service.my_mutes(session, actor)),
        mandatory=sorted(e for e, spec in EVENTS.items() if spec.mandatory),
    )


@router.put("/me/notification-preferences", response_model=Preferences)
async def put_preferences(body: PreferencesIn, session: DbSession, actor: ApiActor) -> Preferences:
    """Mute these events (the list replaces the previous one); mandatory events cannot be muted."""
    muted = await service.set_my_mutes(session, actor, body.muted)
    return Preferences(
        muted=sorted(muted), mandatory=sorted(e for e, spec in EVENTS.items() if spec.mandatory)
    )


# ---- templates ----


@router.get("/notification-templates", response_model=TemplateList)
async def list_templates(session: DbSession, actor: Manager) -> TemplateList:
    """Every event and channel with its effective template (``default``: the catalogue's)."""
    return TemplateList(items=[template_out(t) for t in await service.list_templates(session, actor)])


@router.get("/notification-templates/{event}/{channel}", response_model=TemplateOut)
async def get_template(event: str, channel: str, session: DbSession, actor: Manager) -> TemplateOut:
    return template_out(await service.get_template(session, actor, event, service.parse_channel(channel)))


@router.put("/notification-templates/{event}/{channel}", response_model=TemplateSaved)
async def put_template(
    event: str, channel: str, body: TemplateChange, session: DbSession, actor: Manager
) -> TemplateSaved:
    """Customise the template; ``warnings`` lists variables the event does not have."""
    saved, unknown = await service.save_template(
        session, actor, event, service.parse_channel(channel), subject=body.subject, body=body.body,
        enabled=body.enabled, recipients=body.recipients, addresses=body.addresses,
    )  # fmt: skip
    return TemplateSaved(
        **template_out(saved).model_dump(), warnings=[f"Unknown variable: {name}" for name in unknown]
    )


@router.delete("/notification-templates/{event}/{channel}", response_model=TemplateOut)
async def delete_template(event: str, channel: str, session: DbSession, actor: Manager) -> TemplateOut:
    """Back to the default."""
    return template_out(await service.reset_template(session, actor, event, service.parse_channel(channel)))


@router.post("/notification-templates/{event}/{channel}/reset", response_model=TemplateOut)
async def reset_template(event: str, channel: str, session: DbSession, actor: Manager) -> TemplateOut:
    return template_out(await service.reset_template(session, actor, event, service.parse_channel(channel)))


@router.post("/notification-templates/{event}/{channel}/preview", response_model=PreviewOut)
async def preview_template(
    event: str, channel: str, body: PreviewIn, session: DbSession, actor: Manager
) -> PreviewOut:
    """Render a subject and body (not saved) with the event's sample data."""
    result = await service.preview_template(
        session, actor, event, service.parse_channel(channel), subject=body.subject, body=body.body
    )
    return PreviewOut(
        subject=result.subject,
        body=result.body,
        error=result.error,
        line=result.line,
        warnings=result.unknown,
    )
