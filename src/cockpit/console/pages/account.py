from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from cockpit.accounts import service
from cockpit.accounts.schemas import MAX_CONVERSATION_RETENTION_DAYS, MAX_RETENTION_DAYS, MIN_RETENTION_DAYS
from cockpit.auth.images import ACCEPT
from cockpit.console import formatting
from cockpit.console.pages.profile import image_response, read_upload
from cockpit.console.web import AdminViewer, SignedIn, Viewer, discard_changes, redirect, render
from cockpit.kit.errors import CockpitError
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/account")


async def _page(
    request: Request, session: DbSession, viewer: Viewer, *, status_code: int = 200, **extra: Any
) -> Response:
    account = await service.get_account(session, viewer.actor)
    context: dict[str, Any] = {
        "account": account,
        "timezones": service.timezone_choices(),
        "locales": {code: formatting.LOCALES[code] for code in service.LOCALES},
        "min_retention": MIN_RETENTION_DAYS,
        "max_retention": MAX_RETENTION_DAYS,
        "max_conversation_retention": MAX_CONVERSATION_RETENTION_DAYS,
        "accept": ACCEPT,
    }
    return render(request, "account/profile.html", context | extra, status_code=status_code)


@router.get("")
async def account_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    return await _page(request, session, viewer)


@router.post("")
async def update_account(
    request: Request,
    session: DbSession,
    viewer: AdminViewer,
    name: Annotated[str, Form(max_length=1000)] = "",
    timezone: Annotated[str, Form(max_length=100)] = "",
    locale: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        await service.update_profile(
            session, viewer.actor, name=name, timezone=timezone, locale=locale or None
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _page(
            request, session, viewer, status_code=exc.status,
            error=exc.message, form={"name": name[:200], "timezone": timezone, "locale": locale},
        )  # fmt: skip
    return redirect(request, "/account", message="Organisation profile saved.")


@router.post("/content")
async def update_content_storage(
    request: Request,
    session: DbSession,
    viewer: AdminViewer,
    store_request_content: Annotated[str, Form(max_length=10)] = "",
    content_retention_days: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    # An unticked checkbox is not sent at all: absence means "off".
    store = store_request_content == "true"
    try:
        days = service.parse_retention_days(content_retention_days)
        await service.update_profile(
            session, viewer.actor, store_request_content=store, content_retention_days=days
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        typed = {"store_request_content": store, "content_retention_days": content_retention_days[:20]}
        return await _page(
            request, session, viewer, status_code=exc.status, content_error=exc.message, content_form=typed
        )
    return redirect(request, "/account", message="Data retention settings saved.")


@router.post("/conversations")
async def update_conversation_settings(
    request: Request,
    session: DbSession,
    viewer: AdminViewer,
    conversation_review_enabled: Annotated[str, Form(max_length=10)] = "",
    conversation_retention_days: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    # An unticked checkbox is not sent at all: absence means "off".
    review = conversation_review_enabled == "true"
    try:
        days = service.parse_conversation_retention_days(conversation_retention_days)
        await service.update_profile(
            session, viewer.actor, conversation_review_enabled=review, conversation_retention_days=days
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        typed = {"review": review, "days": conversation_retention_days[:20]}
        return await _page(
            request, session, viewer, status_code=exc.status, conversations_error=exc.message,
            conversations_form=typed,
        )  # fmt: skip
    return redirect(request, "/account#conversations", message="Conversation settings saved.")


@router.post("/reports")
async def update_report_schedule(
    request: Request,
    session: DbSession,
    viewer: AdminViewer,
    report_cadence: Annotated[str, Form(max_length=20)] = "",
    report_format: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Scheduled cost reports: off, weekly or monthly, and their format (exports.reports)."""
    try:
        await service.update_profile(
            session, viewer.actor, report_cadence=report_cadence, report_format=report_format
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        typed = {"cadence": report_cadence[:20], "format": report_format[:20]}
        return await _page(
            request, session, viewer, status_code=exc.status, reports_error=exc.message, reports_form=typed
        )
    return redirect(request, "/account#reports", message="Report schedule saved.")


@router.post("/instructions")
async def update_custom_instructions(
    request: Request,
    session: DbSession,
    viewer: AdminViewer,
    custom_instructions: Annotated[str, Form(max_length=40_000)] = "",
) -> Response:
    try:
        await service.update_profile(session, viewer.actor, custom_instructions=custom_instructions)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _page(
            request, session, viewer, status_code=exc.status, instructions_error=exc.message,
            instructions_form={"custom_instructions": custom_instructions[:40_000]},
        )  # fmt: skip
    return redirect(request, "/account", message="Custom instructions saved.")


@router.get("/logo")
async def logo_image(session: DbSession, viewer: SignedIn) -> Response:
    """The organisation's logo, for its own people only (the sidebar shows it on every page)."""
    logo = await service.logo_of(session, viewer.actor)
    return image_response(logo.media_type, logo.data)


@router.post("/logo")
async def upload_logo(
    request: Request,
    session: DbSession,
    viewer: AdminViewer,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        await service.set_logo(session, viewer.actor, await read_upload(file))
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _page(request, session, viewer, status_code=exc.status, logo_error=exc.message)
    return redirect(request, "/account#logo", message="The organisation's logo is saved.")


@router.post("/logo/remove")
async def remove_logo(request: Request, session: DbSession, viewer: AdminViewer) -> Response:
    await service.remove_logo(session, viewer.actor)
    return redirect(request, "/account#logo", message="The organisation's logo is removed.")
