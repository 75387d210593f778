"""The model catalogue as a person sees it (issue 17, section 5): the enabled models of the account
that the access policies let this person use, with their provider, context window, capabilities and
prices per million tokens in USD and in credits. Administrators (``providers:manage``) also get the
models the policies deny to someone, with who is denied.

Policies sit above providers (a rule names a model), so the catalogue is read here. Every decision
is made in memory from the account's rules (``PolicySet``): one query for the rules, one for the
people, whatever the number of models.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.kit.errors import NotPermitted
from cockpit.policies.engine import Decision, PolicySet
from cockpit.policies.models import ResourceType
from cockpit.policies.service import policy_set
from cockpit.providers.models import Model, Provider
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserStatus

MICRO = Decimal("0.000001")
# At most this many people are named beside a denied model; the rest are counted.
DENIED_NAMES = 5


@dataclass(frozen=True)
class Prices:
    """Per million tokens. ``credits`` None: the account does not use credits (factor 0)."""

    input_usd: Decimal
    output_usd: Decimal
    cached_input_usd: Decimal
    input_credits: Decimal | None
    output_credits: Decimal | None
    cached_input_credits: Decimal | None


@dataclass(frozen=True)
class CatalogueEntry:
    model_id: uuid.UUID
    name: str
    provider: str
    context_window: int | None
    max_output_tokens: int | None
    capabilities: list[str]
    prices: Prices
    allowed: bool  # for the person who reads the catalogue
    # Administrators only: the active people of the account the policies deny this model.
    denied_count: int = 0
    denied_names: list[str] = field(default_factory=list)

    @property
    def denied_more(self) -> int:
        return self.denied_count - len(self.denied_names)


@dataclass(frozen=True)
class ModelCatalogue:
    entries: list[CatalogueEntry]  # the models the reader may use
    denied: list[CatalogueEntry]  # administrators only: the models denied to the reader or to others
    credits_enabled: bool
    manager: bool  # the reader manages the models (and sees who is denied)

    @property
    def capabilities(self) -> list[str]:
        found = {c for e in (*self.entries, *self.denied) for c in e.capabilities}
        return sorted(found)


def credits_per_million(usd: Decimal, factor: Decimal) -> Decimal | None:
    """A price in credits: the USD price x the credit factor, to the millionth (as the gateway
    rounds a call's credits); None when the account does not use credits."""
    if factor <= 0:
        return None
    return (usd * factor).quantize(MICRO, rounding=ROUND_HALF_UP)


def _prices(model: Model, factor: Decimal) -> Prices:
    return Prices(
        input_usd=model.input_price_per_million,
        output_usd=model.output_price_per_million,
        cached_input_usd=model.cached_input_price_per_million,
        input_credits=credits_per_million(model.input_price_per_million, factor),
        output_credits=credits_per_million(model.output_price_per_million, factor),
        cached_input_credits=credits_per_million(model.cached_input_price_per_million, factor),
    )


def _decide(policies: PolicySet, user: User, model_id: uuid.UUID) -> Decision:
    return policies.decide(
        account_id=user.account_id,
        user_id=user.id,
        group_id=user.group_id,
        role=user.role,
        resource_type=ResourceType.model,
        resource=str(model_id),
    )


async def model_catalogue(
    session: AsyncSession, actor: Actor, *, search: str = "", capability: str = ""
) -> ModelCatalogue:
    """The catalogue for ``actor`` (a signed-in person or a token acting for one), optionally narrowed
    to names (model or provider) containing ``search`` and to one capability."""
    if actor.user_id is None:
        raise NotPermitted("person_required", "The model catalogue is read by a person.")
    reader = await session.scalar(
        select(User).where(User.id == actor.user_id, User.account_id == actor.account_id)
    )
    if reader is None:
        raise NotPermitted("person_required", "The model catalogue is read by a person.")
    account = await session.get(Account, actor.account_id)
    factor = account.credit_factor if account is not None else Decimal(0)
    manager = actor.can(Permission.providers_manage)
    rows = await session.execute(
        select(Model, Provider.name)
        .join(Provider, Provider.id == Model.provider_id)
        .where(Model.account_id == actor.account_id, Model.enabled.is_(True))
        .order_by(Model.name)
    )
    policies = await policy_set(session, actor.account_id)
    people: list[User] = []
    if manager:
        people = list(
            await session.scalars(
                select(User)
                .where(User.account_id == actor.account_id, User.status == UserStatus.active)
                .order_by(User.name, User.email)
            )
        )
    needle = search.strip().lower()
    entries: list[CatalogueEntry] = []
    denied: list[CatalogueEntry] = []
    for model, provider_name in rows:
        if needle and needle not in model.name.lower() and needle not in provider_name.lower():
            continue
        if capability and capability not in (model.capabilities or []):
            continue
        allowed = _decide(policies, reader, model.id).allowed
        refused = [p for p in people if not _decide(policies, p, model.id).allowed]
        entry = CatalogueEntry(
            model_id=model.id,
            name=model.name,
            provider=provider_name,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            capabilities=sorted(model.capabilities or []),
            prices=_prices(model, factor),
            allowed=allowed,
            denied_count=len(refused),
            denied_names=[p.display_name for p in refused[:DENIED_NAMES]],
        )
        if allowed:
            entries.append(entry)
        if manager and (not allowed or refused):
            denied.append(entry)
    return ModelCatalogue(entries, denied, factor > 0, manager)
