from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from cockpit.accounts import service
from cockpit.accounts.schemas import AccountOut, AccountUpdate
from cockpit.auth.dependencies import ApiActor, require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
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
