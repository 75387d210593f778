from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from cockpit.accounts import service
from cockpit.accounts.schemas import AccountOut, AccountUpdate
from cockpit.api.profile import IMAGE_BODY, image_response
from cockpit.auth.dependencies import ApiActor, require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.schemas import OutputSchema
from cockpit.kit.web import DbSession

router = APIRouter(tags=["account"])

AccountWriter = Annotated[Actor, Depends(require(Permission.account_write))]


@router.get("/account", response_model=AccountOut)
async def get_account(session: DbSession, actor: ApiActor) -> AccountOut:
    return AccountOut.model_validate(await service.get_account(session, actor))


@router.patch("/account", response_model=AccountOut)
async def update_account(body: AccountUpdate, session: DbSession, actor: AccountWriter) -> AccountOut:
    account = await service.update_profile(
        session,
        actor,
        name=body.name,
        timezone=body.timezone,
        locale=body.locale,
        store_request_content=body.store_request_content,
        content_retention_days=body.content_retention_days,
        custom_instructions=body.custom_instructions,
        conversation_review_enabled=body.conversation_review_enabled,
        conversation_retention_days=body.conversation_retention_days,
        report_cadence=body.report_cadence,
        report_format=body.report_format,
    )
    return AccountOut.model_validate(account)


class LogoOut(OutputSchema):
    logo_updated_at: datetime | None  # None: the organisation has no logo


@router.get("/account/logo", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def get_logo(session: DbSession, actor: ApiActor) -> Response:
    """The organisation's logo, for anyone in it (404 when there is none)."""
    logo = await service.logo_of(session, actor)
    return image_response(logo.media_type, logo.data)


@router.put("/account/logo", response_model=LogoOut, openapi_extra=IMAGE_BODY)
async def set_logo(request: Request, session: DbSession, actor: AccountWriter) -> LogoOut:
    """Set the organisation's logo (account:write). The request body is the image's raw bytes (not
    multipart): PNG, JPEG or WebP, at most 1 MB, each side 1 to 4096 pixels; its type is read from
    the bytes, not from ``Content-Type``. 413 when too large, 422 otherwise."""
    account = await service.set_logo(session, actor, await request.body())
    return LogoOut(logo_updated_at=account.logo_updated_at)


@router.delete("/account/logo", response_model=LogoOut)
async def remove_logo(session: DbSession, actor: AccountWriter) -> LogoOut:
    """Remove the organisation's logo (account:write)."""
    account = await service.remove_logo(session, actor)
    return LogoOut(logo_updated_at=account.logo_updated_at)
