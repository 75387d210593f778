"""The model catalogue for everyone (issue 17, section 5): ``GET /api/v1/models/catalogue``.

Registered before the providers routes, so that ``catalogue`` is not read as a model id."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cockpit.auth.dependencies import ApiActor
from cockpit.kit.web import DbSession
from cockpit.policies.model_catalogue import CatalogueEntry, model_catalogue

router = APIRouter(tags=["models"])


class CataloguePrices(BaseModel):
    """Per million tokens; the credit prices are null when the account does not use credits."""

    input_usd: Decimal
    output_usd: Decimal
    cached_input_usd: Decimal
    input_credits: Decimal | None
    output_credits: Decimal | None
    cached_input_credits: Decimal | None


class DeniedTo(BaseModel):
    count: int
    names: list[str]  # the first few, by name


class CatalogueModel(BaseModel):
    id: uuid.UUID
    name: str
    provider: str
    context_window: int | None
    max_output_tokens: int | None
    capabilities: list[str]
    prices_per_million: CataloguePrices
    allowed: bool
    denied_to: DeniedTo | None = None  # administrators only

    @classmethod
    def of(cls, entry: CatalogueEntry, *, manager: bool) -> CatalogueModel:
        p = entry.prices
        return cls(
            id=entry.model_id,
            name=entry.name,
            provider=entry.provider,
            context_window=entry.context_window,
            max_output_tokens=entry.max_output_tokens,
            capabilities=entry.capabilities,
            prices_per_million=CataloguePrices(
                input_usd=p.input_usd,
                output_usd=p.output_usd,
                cached_input_usd=p.cached_input_usd,
                input_credits=p.input_credits,
                output_credits=p.output_credits,
                cached_input_credits=p.cached_input_credits,
            ),
            allowed=entry.allowed,
            denied_to=DeniedTo(count=entry.denied_count, names=entry.denied_names) if manager else None,
        )


class CatalogueOut(BaseModel):
    items: list[CatalogueModel]  # the models the caller may use
    denied: list[CatalogueModel] | None  # administrators only: models denied to someone
    credits_enabled: bool


@router.get("/models/catalogue", response_model=CatalogueOut)
async def get_catalogue(
    session: DbSession,
    actor: ApiActor,
    search: Annotated[str, Query(max_length=200)] = "",
    capability: Annotated[str, Query(max_length=40)] = "",
) -> CatalogueOut:
    """The enabled models the caller may use (access policies applied), with provider, context window,
    capabilities and prices per million tokens in USD and credits. Administrators (providers:manage)
    also get ``denied``: the models the policies deny to them or to someone, with who."""
    found = await model_catalogue(session, actor, search=search, capability=capability)
    return CatalogueOut(
        items=[CatalogueModel.of(e, manager=found.manager) for e in found.entries],
        denied=[CatalogueModel.of(e, manager=True) for e in found.denied] if found.manager else None,
        credits_enabled=found.credits_enabled,
    )
