from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from cockpit.groups.models import DESCRIPTION_MAX, Group
from cockpit.kit.naming import NAME_MAX
from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema


class GroupOut(OutputSchema):
    id: uuid.UUID
    name: str
    description: str
    is_default: bool
    member_count: int
    created_at: datetime

    @classmethod
    def of(cls, group: Group, member_count: int) -> GroupOut:
        return cls(
            id=group.id,
            name=group.name,
            description=group.description,
            is_default=group.is_default,
            member_count=member_count,
            created_at=group.created_at,
        )


class GroupList(OutputSchema):
    items: list[GroupOut]
    meta: PageMeta


class GroupCreate(InputSchema):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)


class GroupChange(InputSchema):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)


class GroupMembersAdd(InputSchema):
    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=10_000)


class GroupDeleted(OutputSchema):
    id: uuid.UUID
    members_moved_to_default: int
