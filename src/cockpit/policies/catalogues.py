"""What access rules name (models, agents, integrations), and how a rule shows it.

A rule stores an agent's or an integration's **slug** (what the gateway decides on, and what survives
a rename), or ``*``. Policies sit below the agents domain (agents ask policies whether a feature is
allowed), so the agents come from the caller: the API and the console list them with the agents
service and hand them over. The integrations sit below policies and are read here.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.integrations import service as integrations
from cockpit.kit.errors import InvalidInput
from cockpit.kit.pagination import PageParams
from cockpit.policies.models import WILDCARD, AccessPolicy, ResourceType
from cockpit.providers.models import Model

# One page of this many holds any account's catalogue (the agents and integrations pages page by 50).
CATALOGUE_LIMIT = 10_000


class Named(Protocol):
    """An agent or an integration as a catalogue takes it (the ORM rows have these)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def slug(self) -> str: ...
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Catalogue:
    """The account's agents (or integrations): slug -> name in name order, and id -> slug."""

    kind: ResourceType
    names: dict[str, str]
    slugs: dict[str, str]

    @classmethod
    def of(cls, kind: ResourceType, items: Iterable[Named]) -> Catalogue:
        ordered = sorted(items, key=lambda item: (item.name.lower(), item.slug))
        return cls(kind, {i.slug: i.name for i in ordered}, {str(i.id): i.slug for i in ordered})

    def slug_of(self, value: str) -> str | None:
        """The slug that ``value`` (a slug or an id) names, or None when none of the account's does."""
        if value in self.names:
            return value
        with contextlib.suppress(ValueError):  # not an id either
            return self.slugs.get(str(uuid.UUID(value)))
        return None

    def resolve(self, value: str) -> str:
        """The slug a new rule stores for ``value`` (a slug or an id); 422 ``unknown_<kind>`` when
        the account has no such agent or integration (another account's included)."""
        slug = self.slug_of(value)
        if slug is None:
            kind = self.kind.value
            raise InvalidInput(
                f"unknown_{kind}",
                f"There is no {kind} '{value}' in this account: name one by its identifier (slug) or id.",
                details=[{"field": "resource", "message": f"unknown {kind}"}],
            )
        return slug

    def label(self, slug: str) -> str:
        return self.names.get(slug, f"Deleted {self.kind.value}")


@dataclass(frozen=True)
class Catalogues:
    """What agent and integration rules can name. ``agents`` None: the caller did not supply them
    (rules then show their slug, and no agent can be named)."""

    agents: Catalogue | None = None
    integrations: Catalogue | None = None

    def of(self, kind: ResourceType) -> Catalogue | None:
        if kind is ResourceType.agent:
            return self.agents
        if kind is ResourceType.integration:
            return self.integrations
        return None


async def integration_catalogue(session: AsyncSession, actor: Actor) -> Catalogue:
    found = await integrations.list_integrations(session, actor, PageParams(per_page=CATALOGUE_LIMIT))
    return Catalogue.of(ResourceType.integration, found.items)


async def build(session: AsyncSession, actor: Actor, *, agents: Iterable[Named] | None) -> Catalogues:
    """The catalogues of the actor's account, from the agents the caller listed."""
    return Catalogues(
        Catalogue.of(ResourceType.agent, agents) if agents is not None else None,
        await integration_catalogue(session, actor),
    )


async def complete(session: AsyncSession, actor: Actor, given: Catalogues | None) -> Catalogues:
    """``given``, with the integrations read when the caller did not supply them."""
    given = given or Catalogues()
    if given.integrations is not None:
        return given
    return Catalogues(given.agents, await integration_catalogue(session, actor))


async def model_names(session: AsyncSession, account_id: uuid.UUID) -> dict[str, str]:
    """The account's models: id -> name."""
    rows = await session.execute(select(Model.id, Model.name).where(Model.account_id == account_id))
    return {str(model_id): name for model_id, name in rows}


async def named_by_rules(session: AsyncSession, account_id: uuid.UUID, kind: ResourceType) -> list[str]:
    """What the account's rules of this kind name (``*`` aside), in order."""
    names = await session.scalars(
        select(AccessPolicy.resource)
        .where(
            AccessPolicy.account_id == account_id,
            AccessPolicy.resource_type == kind,
            AccessPolicy.resource != WILDCARD,
        )
        .distinct()
    )
    return sorted(names)


def resource_label(
    resource_type: ResourceType, resource: str, models: dict[str, str], catalogues: Catalogues | None = None
) -> str:
    """How a rule's resource reads: a model's, agent's or integration's name ("A deleted model",
    "Deleted agent" once gone; an agent's slug when the caller supplied no agents), a feature's
    key, "All agents" for ``*``."""
    if resource == WILDCARD:
        return f"All {resource_type.value}s"
    if resource_type is ResourceType.model:
        return models.get(resource, "A deleted model")
    catalogue = catalogues.of(resource_type) if catalogues is not None else None
    return catalogue.label(resource) if catalogue is not None else resource
