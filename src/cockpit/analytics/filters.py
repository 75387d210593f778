"""What a view of the recorded calls looks at: a period and the filters of the shared filter bar,
and whose calls the viewer may see (the whole account, one project, or their own)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from cockpit.kit.errors import InvalidInput

MAX_RANGE = timedelta(days=400)


class Dimension(StrEnum):
    """What a breakdown groups the calls by (and what a timeline stacks by)."""

    model = "model"
    group = "group"
    user = "user"
    project = "project"
    agent = "agent"
    integration = "integration"
    operation = "operation"
    provider = "provider"
    token = "token"  # noqa: S105 - the API token a call came with (a dimension's name)
    status = "status"


class Status(StrEnum):
    success = "success"
    error = "error"
    client_disconnected = "client_disconnected"


class Operation(StrEnum):
    chat = "chat"
    embedding = "embedding"


@dataclass(frozen=True)
class Filters:
    """A period [start, end) and the filters; ``agent=""`` selects the calls made without an agent."""

    start: datetime
    end: datetime
    group_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    api_token_id: uuid.UUID | None = None
    model: str | None = None
    agent: str | None = None
    operation: Operation | None = None
    status: Status | None = None

    def __post_init__(self) -> None:
        for field, value in (("from", self.start), ("to", self.end)):
            if value.tzinfo is None:
                raise _bad(field, "give a time zone (e.g. 2026-01-31T00:00:00Z)")
        if self.start >= self.end:
            raise _bad("to", "must be later than from")
        if self.end - self.start > MAX_RANGE:
            raise _bad("from", f"a period is at most {MAX_RANGE.days} days")

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> Filters:
        """The same filters over the period of equal length just before this one."""
        return replace(self, start=self.start - self.length, end=self.start)

    def narrowed(self, **changes: object) -> Filters:
        return replace(self, **changes)  # type: ignore[arg-type]

    def described(self) -> dict[str, str]:
        """The filters that are set, by their query parameter (for exports and links)."""
        values = {
            "group_id": self.group_id, "project_id": self.project_id, "user_id": self.user_id,
            "api_token_id": self.api_token_id, "model": self.model, "agent": self.agent,
            "operation": self.operation, "status": self.status,
        }  # fmt: skip
        return {key: str(value) for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class Scope:
    """Whose calls a viewer may see in their account: all of them, one project's, or one user's."""

    account_id: uuid.UUID
    project_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        "invalid_input", f"{field} {message}.", details=[{"field": field, "message": message}]
    )
