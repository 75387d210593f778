from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.kit.sql import names_in_account
from cockpit.providers.models import Model, Provider


async def get_provider(
    session: AsyncSession, account_id: uuid.UUID, provider_id: uuid.UUID
) -> Provider | None:
    return await session.scalar(
        select(Provider).where(Provider.account_id == account_id, Provider.id == provider_id)
    )


async def provider_by_name(session: AsyncSession, account_id: uuid.UUID, name: str) -> Provider | None:
    return await session.scalar(
        select(Provider).where(Provider.account_id == account_id, Provider.name_key == name.strip().lower())
    )


async def list_providers(session: AsyncSession, account_id: uuid.UUID) -> list[Provider]:
    return list(await session.scalars(providers_stmt(account_id)))


def providers_stmt(account_id: uuid.UUID) -> Select[Provider]:
    return select(Provider).where(Provider.account_id == account_id).order_by(Provider.name_key)


async def model_count(session: AsyncSession, account_id: uuid.UUID, provider_id: uuid.UUID) -> int:
    stmt = (
        select(func.count())
        .select_from(Model)
        .where(Model.account_id == account_id, Model.provider_id == provider_id)
    )
    return await session.scalar(stmt) or 0


async def get_model(session: AsyncSession, account_id: uuid.UUID, model_id: uuid.UUID) -> Model | None:
    return await session.scalar(select(Model).where(Model.account_id == account_id, Model.id == model_id))


async def model_by_name(session: AsyncSession, account_id: uuid.UUID, name: str) -> Model | None:
    return await session.scalar(select(Model).where(Model.account_id == account_id, Model.name == name))


async def list_models(session: AsyncSession, account_id: uuid.UUID, *, enabled_only: bool) -> list[Model]:
    return list(await session.scalars(models_stmt(account_id, enabled_only=enabled_only)))


def models_stmt(account_id: uuid.UUID, *, enabled_only: bool) -> Select[Model]:
    stmt = select(Model).where(Model.account_id == account_id)
    if enabled_only:
        stmt = stmt.where(Model.enabled.is_(True))
    return stmt.order_by(Model.name)


async def model_names(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    return await names_in_account(session, Model, Model.name, account_id, ids)


async def provider_names(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    return await names_in_account(session, Provider, Provider.name, account_id, ids)
