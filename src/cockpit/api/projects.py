from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from cockpit.auth.dependencies import ApiActor
from cockpit.kit.pagination import PageMeta, PageParams, catalog_page_params
from cockpit.kit.web import DbSession
from cockpit.membership import service as membership
from cockpit.projects import service
from cockpit.projects.schemas import (
    ProjectChange,
    ProjectCreate,
    ProjectList,
    ProjectMemberList,
    ProjectMemberOut,
    ProjectMemberSet,
    ProjectOut,
)

router = APIRouter(prefix="/projects", tags=["projects"])


async def _out(session: DbSession, actor: ApiActor, project_id: uuid.UUID) -> ProjectOut:
    project = await service.access_project(session, actor, project_id)
    return ProjectOut.of(project, len(await service.list_members(session, actor, project_id)))


@router.get("", response_model=ProjectList)
async def list_projects(
    session: DbSession, actor: ApiActor, paging: Annotated[PageParams, Depends(catalog_page_params)]
) -> ProjectList:
    """Every project for account admins; the projects one belongs to otherwise (by name, paged)."""
    page = await service.page_projects(session, actor, paging)
    return ProjectList(items=[ProjectOut.of(p, n) for p, n in page.items], meta=PageMeta.of(page))


@router.post("", response_model=ProjectOut, status_code=status.HTTP_201_CREATED)
async def create_project(body: ProjectCreate, session: DbSession, actor: ApiActor) -> ProjectOut:
    project = await service.create_project(session, actor, name=body.name, description=body.description)
    return ProjectOut.of(project, 0)


@router.get("/{project_id}", response_model=ProjectOut)
async def get_project(project_id: uuid.UUID, session: DbSession, actor: ApiActor) -> ProjectOut:
    return await _out(session, actor, project_id)


@router.patch("/{project_id}", response_model=ProjectOut)
async def change_project(
    project_id: uuid.UUID, body: ProjectChange, session: DbSession, actor: ApiActor
) -> ProjectOut:
    await service.edit_project(session, actor, project_id, name=body.name, description=body.description)
    return await _out(session, actor, project_id)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(project_id: uuid.UUID, session: DbSession, actor: ApiActor) -> Response:
    await membership.delete_project(session, actor, project_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{project_id}/members", response_model=ProjectMemberList)
async def list_members(project_id: uuid.UUID, session: DbSession, actor: ApiActor) -> ProjectMemberList:
    members = await service.list_members(session, actor, project_id)
    return ProjectMemberList(items=[ProjectMemberOut.of(m, u) for m, u in members])


@router.get("/{project_id}/members/{user_id}", response_model=ProjectMemberOut)
async def get_member(
    project_id: uuid.UUID, user_id: uuid.UUID, session: DbSession, actor: ApiActor
) -> ProjectMemberOut:
    member, user = await service.get_member(session, actor, project_id, user_id)
    return ProjectMemberOut.of(member, user)


@router.put("/{project_id}/members/{user_id}", response_model=ProjectMemberOut)
async def set_member(
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    body: ProjectMemberSet,
    session: DbSession,
    actor: ApiActor,
    response: Response,
) -> ProjectMemberOut:
    """Add a member or change their project role (project admins and account admins)."""
    member, user, created = await service.set_member(
        session, actor, project_id, user_id, role=body.role, all_assistants=body.all_assistants
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return ProjectMemberOut.of(member, user)


@router.delete("/{project_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(
    project_id: uuid.UUID, user_id: uuid.UUID, session: DbSession, actor: ApiActor
) -> Response:
    await service.remove_member(session, actor, project_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
