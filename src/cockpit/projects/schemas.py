from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from cockpit.kit.naming import NAME_MAX
from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.projects.models import DESCRIPTION_MAX, Project, ProjectMember, ProjectRole
from cockpit.users.models import User


class ProjectOut(OutputSchema):
    id: uuid.UUID
    name: str
    description: str
    member_count: int
    created_at: datetime

    @classmethod
    def of(cls, project: Project, member_count: int) -> ProjectOut:
        return cls(
            id=project.id,
            name=project.name,
            description=project.description,
            member_count=member_count,
            created_at=project.created_at,
        )


class ProjectList(OutputSchema):
    items: list[ProjectOut]
    meta: PageMeta


class ProjectCreate(InputSchema):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)


class ProjectChange(InputSchema):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)


class ProjectMemberSet(InputSchema):
    role: ProjectRole = ProjectRole.project_member
    all_assistants: bool = False


class ProjectMemberOut(OutputSchema):
    user_id: uuid.UUID
    email: str
    name: str
    role: ProjectRole
    all_assistants: bool
    added_at: datetime

    @classmethod
    def of(cls, member: ProjectMember, user: User) -> ProjectMemberOut:
        return cls(
            user_id=user.id,
            email=user.email,
            name=user.name,
            role=member.role,
            all_assistants=member.all_assistants,
            added_at=member.created_at,
        )


class ProjectMemberList(OutputSchema):
    items: list[ProjectMemberOut]
