"""The agents catalogue's request and response bodies.

Input is checked here as far as it can be without the database (lengths, ranges, the slug's
alphabet, text that cannot be stored); the service checks what needs it (the model, integrations,
tools, groups and project exist in the account).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator

from cockpit.agents.models import Agent, AgentStatus, Visibility
from cockpit.kit.errors import InvalidInput
from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.kit.text import Unstorable, find_unstorable

NAME_MAX = 100
SLUG_MAX = 64
DESCRIPTION_MAX = 1000
ICON_MAX = 40
INSTRUCTIONS_MAX = 50_000
MODEL_REF_MAX = 200
TOOL_NAME_MAX = 200
TOOLS_MAX = 500  # tool names per integration
INTEGRATIONS_MAX = 50
GROUPS_MAX = 200
STARTERS_MAX = 6
STARTER_MAX = 200
MAX_STEPS_MAX = 20
OUTPUT_TOKENS_MAX = 1_000_000

S = TypeVar("S", bound=InputSchema)

SLUG_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}$")

ToolName = Annotated[str, Field(min_length=1, max_length=TOOL_NAME_MAX)]
Starter = Annotated[str, Field(min_length=1, max_length=STARTER_MAX)]
Temperature = Annotated[float, Field(strict=True, ge=0, le=2, allow_inf_nan=False)]
OutputTokens = Annotated[int, Field(strict=True, ge=1, le=OUTPUT_TOKENS_MAX)]
MaxSteps = Annotated[int, Field(strict=True, ge=1, le=MAX_STEPS_MAX)]


def slug_of(name: str) -> str:
    """A slug derived from a name: lower-case letters, digits, '-' and '_' (others become '-')."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9_]+", "-", ascii_name.lower()).strip("-_")[:SLUG_MAX].strip("-_")
    return slug or "agent"


def _storable(value: Any) -> Any:
    try:
        find_unstorable(value, root="")
    except Unstorable as exc:
        raise ValueError(exc.reason) from exc
    return value


class ToolSelection(InputSchema):
    """The tools of one integration an agent may call: all of them, or some by name; ``confirm``
    names the ones that ask the person before they run."""

    all: bool = Field(default=False, strict=True)
    names: list[ToolName] = Field(default_factory=list, max_length=TOOLS_MAX)
    confirm: list[ToolName] = Field(default_factory=list, max_length=TOOLS_MAX)

    @model_validator(mode="after")
    def _some_tools(self) -> ToolSelection:
        if self.all and self.names:
            raise ValueError("give either all: true or names, not both")
        if not self.all and not self.names:
            raise ValueError("choose all: true or at least one tool name")
        if not self.all and not set(self.confirm) <= set(self.names):
            raise ValueError("confirm names tools that are not selected")
        self.names, self.confirm = list(dict.fromkeys(self.names)), list(dict.fromkeys(self.confirm))
        return self


class _AgentFields(InputSchema):
    @field_validator("*", mode="before")
    @classmethod
    def _no_unstorable_text(cls, value: Any) -> Any:
        return _storable(value)

    @field_validator("slug", check_fields=False)
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not SLUG_PATTERN.match(value):
            raise ValueError("use 1 to 64 lower-case letters, digits, '-' or '_'")
        return value

    @field_validator("starters", check_fields=False)
    @classmethod
    def _starters(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [s.strip() for s in value]

    @field_validator("integration_ids", "group_ids", check_fields=False)
    @classmethod
    def _unique(cls, value: list[uuid.UUID] | None) -> list[uuid.UUID] | None:
        return None if value is None else list(dict.fromkeys(value))


class AgentCreate(_AgentFields):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    slug: str | None = Field(default=None, max_length=SLUG_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    icon: str = Field(default="", max_length=ICON_MAX)
    model: str = Field(min_length=1, max_length=MODEL_REF_MAX)
    instructions: str = Field(default="", max_length=INSTRUCTIONS_MAX)
    temperature: Temperature | None = None
    max_output_tokens: OutputTokens | None = None
    integration_ids: list[uuid.UUID] = Field(default_factory=list, max_length=INTEGRATIONS_MAX)
    tools: dict[uuid.UUID, ToolSelection] = Field(default_factory=dict, max_length=INTEGRATIONS_MAX)
    starters: list[Starter] = Field(default_factory=list, max_length=STARTERS_MAX)
    # Unset: "project" for a project's agent, "account" otherwise.
    visibility: Visibility | None = None
    group_ids: list[uuid.UUID] = Field(default_factory=list, max_length=GROUPS_MAX)
    project_id: uuid.UUID | None = None
    max_steps: MaxSteps = 5


# Fields of an update that may be cleared with null; the others, when sent, need a value.
NULLABLE = frozenset({"temperature", "max_output_tokens", "project_id"})


class AgentUpdate(_AgentFields):
    """A PATCH: only the fields sent change."""

    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    slug: str | None = Field(default=None, max_length=SLUG_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    icon: str | None = Field(default=None, max_length=ICON_MAX)
    model: str | None = Field(default=None, min_length=1, max_length=MODEL_REF_MAX)
    instructions: str | None = Field(default=None, max_length=INSTRUCTIONS_MAX)
    temperature: Temperature | None = None
    max_output_tokens: OutputTokens | None = None
    integration_ids: list[uuid.UUID] | None = Field(default=None, max_length=INTEGRATIONS_MAX)
    tools: dict[uuid.UUID, ToolSelection] | None = Field(default=None, max_length=INTEGRATIONS_MAX)
    starters: list[Starter] | None = Field(default=None, max_length=STARTERS_MAX)
    visibility: Visibility | None = None
    group_ids: list[uuid.UUID] | None = Field(default=None, max_length=GROUPS_MAX)
    project_id: uuid.UUID | None = None
    max_steps: MaxSteps | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> AgentUpdate:
        for key in self.model_fields_set - NULLABLE:
            if getattr(self, key) is None:
                raise ValueError(f"{key} cannot be null")
        return self


def parsed(schema: type[S], data: dict[str, Any]) -> S:
    """``data`` validated as ``schema``, or InvalidInput naming each field (for forms and callers
    that do not go through FastAPI's body parsing)."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        details = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err.get("loc", ())) or "body"
            message = (
                "unknown field" if err.get("type") == "extra_forbidden" else str(err.get("msg", "invalid"))
            )
            details.append({"field": field, "message": message.removeprefix("Value error, ")})
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
        raise InvalidInput("invalid_input", f"The agent is invalid — {summary}.", details=details) from exc


# ---- responses ----


class NamedRef(OutputSchema):
    id: uuid.UUID
    name: str


class AgentOut(OutputSchema):
    id: uuid.UUID
    name: str
    slug: str
    description: str
    icon: str
    instructions: str
    model_id: uuid.UUID | None
    model: str | None  # None: its model was deleted
    temperature: float | None
    max_output_tokens: int | None
    integration_ids: list[str]
    integrations: list[NamedRef]
    tools: dict[str, Any]
    starters: list[str]
    visibility: Visibility
    group_ids: list[str]
    groups: list[NamedRef]
    project_id: uuid.UUID | None
    project: str | None
    max_steps: int
    status: AgentStatus
    is_default: bool
    created_by: uuid.UUID | None
    created_by_name: str | None
    created_at: datetime


class AgentList(OutputSchema):
    items: list[AgentOut]
    meta: PageMeta


@dataclass(frozen=True)
class Labels:
    """The names an agent's ids stand for (left out: ids of deleted objects)."""

    models: dict[uuid.UUID, str]
    integrations: dict[uuid.UUID, str]
    groups: dict[uuid.UUID, str]
    projects: dict[uuid.UUID, str]
    users: dict[uuid.UUID, str]


def _refs(ids: list[str], names: dict[uuid.UUID, str]) -> list[NamedRef]:
    refs = []
    for value in ids:
        key = uuid.UUID(value)
        if key in names:
            refs.append(NamedRef(id=key, name=names[key]))
    return refs


def agent_out(agent: Agent, labels: Labels) -> AgentOut:
    return AgentOut(
        id=agent.id,
        name=agent.name,
        slug=agent.slug,
        description=agent.description,
        icon=agent.icon,
        instructions=agent.instructions,
        model_id=agent.model_id,
        model=labels.models.get(agent.model_id) if agent.model_id else None,
        temperature=agent.temperature,
        max_output_tokens=agent.max_output_tokens,
        integration_ids=list(agent.integration_ids),
        integrations=_refs(agent.integration_ids, labels.integrations),
        tools=dict(agent.tools),
        starters=list(agent.starters),
        visibility=agent.visibility,
        group_ids=list(agent.group_ids),
        groups=_refs(agent.group_ids, labels.groups),
        project_id=agent.project_id,
        project=labels.projects.get(agent.project_id) if agent.project_id else None,
        max_steps=agent.max_steps,
        status=agent.status,
        is_default=agent.is_default,
        created_by=agent.created_by,
        created_by_name=labels.users.get(agent.created_by) if agent.created_by else None,
        created_at=agent.created_at,
    )
