"""Files attached to conversations, and the artifacts answers produce (issue 15).

``POST /conversations/{id}/files`` takes one file (multipart ``file``); it is attached to a message
when the message is sent. Downloads are attachments that a browser never renders as a page."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile, status
from fastapi.responses import Response

from cockpit.auth.dependencies import ApiActor
from cockpit.conversations import artifacts, files
from cockpit.conversations.file_schemas import (
    ArtifactDetail,
    ArtifactList,
    ArtifactVersions,
    FileList,
    FileOut,
    artifact_detail,
    artifact_out,
    file_out,
)
from cockpit.conversations.models import ArtifactKind
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.web import AppSettings, DbSession

router = APIRouter(tags=["conversations"])


@router.get("/conversations/{conversation_id}/files", response_model=FileList)
async def list_files(
    conversation_id: uuid.UUID, session: DbSession, actor: ApiActor, settings: AppSettings
) -> FileList:
    """The files of one of the caller's conversations, oldest first, and the account's usage."""
    found = await files.list_files(session, actor, conversation_id)
    return FileList(
        items=[file_out(f) for f in found],
        used_bytes=await files.used_bytes(session, actor),
        quota_bytes=settings.files_account_quota_bytes,
        max_file_bytes=settings.files_max_bytes,
    )


@router.post(
    "/conversations/{conversation_id}/files", response_model=FileOut, status_code=status.HTTP_201_CREATED
)
async def upload_file(
    conversation_id: uuid.UUID,
    file: Annotated[UploadFile, File(description="Text, Markdown, CSV, JSON, PDF, PNG, JPEG, WebP or GIF")],
    session: DbSession,
    actor: ApiActor,
    settings: AppSettings,
) -> FileOut:
    """Upload a file into the conversation (the access policy feature ``files.upload``): 413 when it
    is too large or the account's files would pass their quota, 422 when it is not a type Cockpit
    takes or not what its name says."""
    kept = await files.upload_file(
        session, actor, conversation_id, name=file.filename, source=file, settings=settings,
        media_type=file.content_type,
    )  # fmt: skip
    return file_out(kept)


@router.get("/conversations/{conversation_id}/files/{file_id}", response_model=FileOut)
async def get_file(
    conversation_id: uuid.UUID, file_id: uuid.UUID, session: DbSession, actor: ApiActor
) -> FileOut:
    return file_out(await files.get_file(session, actor, conversation_id, file_id))


@router.get(
    "/conversations/{conversation_id}/files/{file_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_file(
    conversation_id: uuid.UUID, file_id: uuid.UUID, session: DbSession, actor: ApiActor, settings: AppSettings
) -> Response:
    found, data = await files.file_content(session, actor, conversation_id, file_id, settings=settings)
    return Response(
        data, media_type=files.served_type(found.media_type), headers=files.download_headers(found.name)
    )


KindFilter = Annotated[ArtifactKind | None, Query(description="code, document or file")]


@router.get("/conversations/{conversation_id}/artifacts", response_model=ArtifactList)
async def list_conversation_artifacts(
    conversation_id: uuid.UUID,
    session: DbSession,
    actor: ApiActor,
    paging: Annotated[PageParams, Depends(page_params)],
    kind: KindFilter = None,
) -> ArtifactList:
    """The artifacts of one conversation (the latest version of each), the newest first."""
    page = await artifacts.list_artifacts(
        session, actor, conversation_id=conversation_id, kind=kind, page=paging
    )
    return ArtifactList(items=[artifact_out(a) for a in page.items], meta=PageMeta.of(page))


@router.get("/artifacts", response_model=ArtifactList)
async def list_artifacts(
    session: DbSession,
    actor: ApiActor,
    paging: Annotated[PageParams, Depends(page_params)],
    kind: KindFilter = None,
) -> ArtifactList:
    """The artifacts of all the caller's conversations (the latest version of each), the newest first."""
    page = await artifacts.list_artifacts(session, actor, kind=kind, page=paging)
    return ArtifactList(items=[artifact_out(a) for a in page.items], meta=PageMeta.of(page))


@router.get("/artifacts/{artifact_id}", response_model=ArtifactDetail)
async def get_artifact(artifact_id: uuid.UUID, session: DbSession, actor: ApiActor) -> ArtifactDetail:
    """One version of an artifact, with its content."""
    return artifact_detail(await artifacts.get_artifact(session, actor, artifact_id))


@router.get(
    "/artifacts/{artifact_id}/content",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def download_artifact(artifact_id: uuid.UUID, session: DbSession, actor: ApiActor) -> Response:
    found = await artifacts.get_artifact(session, actor, artifact_id)
    return Response(
        found.content.encode("utf-8"),
        media_type=files.served_type(found.media_type),
        headers=files.download_headers(artifacts.download_name(found)),
    )


@router.get("/artifacts/{artifact_id}/versions", response_model=ArtifactVersions)
async def artifact_versions(artifact_id: uuid.UUID, session: DbSession, actor: ApiActor) -> ArtifactVersions:
    """Every version of the artifact, the latest first."""
    return ArtifactVersions(
        items=[artifact_out(a) for a in await artifacts.artifact_versions(session, actor, artifact_id)]
    )
