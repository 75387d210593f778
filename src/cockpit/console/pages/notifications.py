"""CONTROL → Notifications: the templates of every event and channel (``notifications:manage``), and
for everyone the bell (unread count, the latest ten), their inbox and their mutes (issue 16)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.web import SignedIn, Viewer, discard_changes, page_requires, redirect, render
from cockpit.events.catalog import EVENTS, RECIPIENTS
from cockpit.kit.errors import CockpitError, InvalidInput, NotFound
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import DbSession
from cockpit.notifications import service
from cockpit.notifications.models import Channel

router = APIRouter(prefix="/notifications")

ManageViewer = Annotated[Viewer, Depends(page_requires(Permission.notifications_manage))]
PER_PAGE = 25
BELL_ITEMS = 10
RECIPIENT_LABELS = {
    "person": "The person concerned",
    "group_admins": "Their group's admins (the account's administrators)",
    "account_admins": "Account admins (owners and administrators)",
}
CHANNEL_LABELS = {Channel.in_app: "In-app", Channel.email: "E-mail"}


async def _form(request: Request) -> tuple[dict[str, str], list[str]]:
    raw = await request.form()
    values = {k: v for k, v in raw.items() if isinstance(v, str)}
    return values, [v for v in raw.getlist("recipients") if isinstance(v, str)]


def _key(event: str, channel: str) -> tuple[str, Channel]:
    if event not in EVENTS:
        raise NotFound("event_not_found", "No such event.")
    return event, service.parse_channel(channel)


def _url(event: str, channel: Channel) -> str:
    return f"/notifications/templates/{event}/{channel.value}"


# ---- the templates ----


@router.get("")
async def templates_page(request: Request, session: DbSession, viewer: ManageViewer) -> Response:
    templates = await service.list_templates(session, viewer.actor)
    rows: dict[str, dict[Channel, service.EffectiveTemplate]] = {}
    for t in templates:
        rows.setdefault(t.event, {})[t.channel] = t
    return render(
        request,
        "notifications/index.html",
        {"rows": rows, "events": EVENTS, "channels": list(Channel), "channel_labels": CHANNEL_LABELS},
    )


async def _editor(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    event: str,
    channel: Channel,
    *,
    values: dict[str, Any] | None = None,
    error: CockpitError | None = None,
) -> Response:
    template = await service.get_template(session, viewer.actor, event, channel)
    spec = EVENTS[event]
    shown = values or {
        "subject": template.subject, "body": template.body, "enabled": template.enabled,
        "recipients": template.recipients, "addresses": "\n".join(template.addresses),
    }  # fmt: skip
    preview = service.preview(spec, str(shown["subject"]), str(shown["body"]))
    context = {
        "template": template, "spec": spec, "channel": channel, "channel_label": CHANNEL_LABELS[channel],
        "f": shown, "variables": service.variables_of(spec), "preview": preview, "url": _url(event, channel),
        "recipient_labels": RECIPIENT_LABELS, "recipients_all": RECIPIENTS,
        "error": error.message if error else None,
    }  # fmt: skip
    return render(request, "notifications/edit.html", context, status_code=error.status if error else 200)


@router.get("/templates/{event}/{channel}")
async def edit_page(
    request: Request, session: DbSession, viewer: ManageViewer, event: str, channel: str
) -> Response:
    name, chan = _key(event, channel)
    return await _editor(request, session, viewer, name, chan)


@router.post("/templates/{event}/{channel}")
async def save(
    request: Request, session: DbSession, viewer: ManageViewer, event: str, channel: str
) -> Response:
    name, chan = _key(event, channel)
    form, recipients = await _form(request)
    addresses = [a.strip() for a in form.get("addresses", "").replace(",", "\n").splitlines() if a.strip()]
    try:
        _, unknown = await service.save_template(
            session, viewer.actor, name, chan, subject=form.get("subject", ""), body=form.get("body", ""),
            enabled=form.get("enabled") == "on", recipients=recipients, addresses=addresses,
        )  # fmt: skip
    except CockpitError as exc:
        await discard_changes(session, viewer)
        values = {
            "subject": form.get("subject", "")[:10_000], "body": form.get("body", "")[:10_000],
            "enabled": form.get("enabled") == "on", "recipients": recipients,
            "addresses": form.get("addresses", "")[:5000],
        }  # fmt: skip
        return await _editor(request, session, viewer, name, chan, values=values, error=exc)
    message = f"Template “{EVENTS[name].label}” ({CHANNEL_LABELS[chan]}) saved."
    if unknown:
        message += " Unknown variables (shown empty): " + ", ".join(unknown)[:300] + "."
    return redirect(request, _url(name, chan), message=message, kind="info" if unknown else "success")


@router.post("/templates/{event}/{channel}/preview")
async def preview(
    request: Request, session: DbSession, viewer: ManageViewer, event: str, channel: str
) -> Response:
    """The live preview (htmx, on input): the unsaved subject and body with the sample data."""
    name, chan = _key(event, channel)
    form, _ = await _form(request)
    result = await service.preview_template(
        session, viewer.actor, name, chan, subject=form.get("subject", ""), body=form.get("body", "")
    )
    return render(request, "notifications/_preview.html", {"preview": result})


@router.post("/templates/{event}/{channel}/reset")
async def reset(
    request: Request, session: DbSession, viewer: ManageViewer, event: str, channel: str
) -> Response:
    name, chan = _key(event, channel)
    await service.reset_template(session, viewer.actor, name, chan)
    return redirect(request, _url(name, chan), message=f"“{EVENTS[name].label}” is back to its default.")


@router.post("/templates/{event}/{channel}/toggle")
async def toggle(
    request: Request, session: DbSession, viewer: ManageViewer, event: str, channel: str
) -> Response:
    name, chan = _key(event, channel)
    current = await service.get_template(session, viewer.actor, name, chan)
    saved, _ = await service.save_template(session, viewer.actor, name, chan, enabled=not current.enabled)
    state = "enabled" if saved.enabled else "disabled"
    return redirect(
        request, "/notifications", message=f"{EVENTS[name].label} ({CHANNEL_LABELS[chan]}) {state}."
    )


# ---- the bell, the inbox ----


@router.get("/bell")
async def bell_count(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    """The unread count, polled every 20 s: one indexed COUNT. Read only: a poll does not keep an
    idle session alive (what signing in touched is rolled back)."""
    count = await service.my_unread_count(session, viewer.actor)
    response = render(request, "notifications/_bell_count.html", {"count": count})
    await session.rollback()
    return response


async def _bell_list(request: Request, session: DbSession, viewer: Viewer) -> Response:
    page = await service.my_notifications(session, viewer.actor, PageParams(page=1, per_page=BELL_ITEMS))
    count = await service.my_unread_count(session, viewer.actor)
    return render(request, "notifications/_bell_list.html", {"items": page.items, "count": count})


@router.get("/bell/list")
async def bell_list(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    return await _bell_list(request, session, viewer)


@router.post("/read")
async def read(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    """Mark one (``id``) or all (``all``) of mine read: the bell's list again for htmx, else back to
    the inbox."""
    form, _ = await _form(request)
    if form.get("all"):
        await service.mark_read(session, viewer.actor, everything=True)
    else:
        try:
            ids = [uuid.UUID(form.get("id", ""))]
        except ValueError:
            raise InvalidInput("invalid_id", "No such notification.") from None
        await service.mark_read(session, viewer.actor, ids=ids)
    if request.headers.get("hx-request") and form.get("from") == "bell":
        return await _bell_list(request, session, viewer)
    return redirect(request, "/notifications/inbox")


@router.get("/inbox")
async def inbox(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    unread: Annotated[bool, Query()] = False,
) -> Response:
    found = await service.my_notifications(
        session, viewer.actor, PageParams(page=page, per_page=PER_PAGE), unread=unread
    )
    count = await service.my_unread_count(session, viewer.actor)
    return render(
        request,
        "notifications/inbox.html",
        {"page": found, "count": count, "unread": unread, "base_query": "unread=true" if unread else ""},
    )


# ---- mutes ----


async def _preferences(
    request: Request, session: DbSession, viewer: Viewer, *, error: str | None = None, status_code: int = 200
) -> Response:
    muted = await service.my_mutes(session, viewer.actor)
    return render(
        request,
        "notifications/preferences.html",
        {"events": EVENTS, "muted": muted, "error": error},
        status_code=status_code,
    )


@router.get("/preferences")
async def preferences_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    return await _preferences(request, session, viewer)


@router.post("/preferences")
async def save_preferences(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    """The form lists the events a person hears about (checked); the others are muted."""
    raw = await request.form()
    wanted = {v for v in raw.getlist("events") if isinstance(v, str)}
    muted = [e for e, spec in EVENTS.items() if e not in wanted and not spec.mandatory]
    try:
        await service.set_my_mutes(session, viewer.actor, muted)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _preferences(request, session, viewer, error=exc.message, status_code=exc.status)
    return redirect(request, "/notifications/preferences", message="Your notification preferences are saved.")
