"""Response bodies of the conversation files and artifacts API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from cockpit.conversations.models import ConversationArtifact, ConversationFile
from cockpit.kit.pagination import PageMeta


class FileOut(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID | None = Field(description="The message it was sent with (null: not sent yet)")
    name: str
    media_type: str
    size: int = Field(description="Bytes")
    sha256: str
    text_chars: int | None = Field(description="Characters of text a model reads of it (null: an image)")
    created_at: datetime


def file_out(file: ConversationFile) -> FileOut:
    return FileOut(
        id=file.id,
        conversation_id=file.conversation_id,
        message_id=file.message_id,
        name=file.name,
        media_type=file.media_type,
        size=file.size,
        sha256=file.sha256,
        text_chars=len(file.text) if file.text is not None else None,
        created_at=file.created_at,
    )


class FileList(BaseModel):
    items: list[FileOut]
    used_bytes: int = Field(description="The bytes the files of the whole account take")
    quota_bytes: int = Field(description="The account's quota (0: none)")
    max_file_bytes: int


class ArtifactOut(BaseModel):
    id: uuid.UUID
    lineage_id: uuid.UUID = Field(description="The same for every version of one artifact")
    version: int
    latest: bool
    conversation_id: uuid.UUID
    message_id: uuid.UUID | None = Field(description="The answer that produced it")
    name: str
    kind: str = Field(description="code, document or file")
    media_type: str
    language: str
    size: int = Field(description="Bytes of its UTF-8 content")
    sha256: str
    created_at: datetime


class ArtifactDetail(ArtifactOut):
    content: str


def artifact_out(artifact: ConversationArtifact) -> ArtifactOut:
    return ArtifactOut(**_fields(artifact))


def artifact_detail(artifact: ConversationArtifact) -> ArtifactDetail:
    return ArtifactDetail(**_fields(artifact), content=artifact.content)


def _fields(a: ConversationArtifact) -> dict[str, object]:
    return {
        "id": a.id,
        "lineage_id": a.lineage_id,
        "version": a.version,
        "latest": a.latest,
        "conversation_id": a.conversation_id,
        "message_id": a.message_id,
        "name": a.name,
        "kind": str(a.kind),
        "media_type": a.media_type,
        "language": a.language,
        "size": a.size,
        "sha256": a.sha256,
        "created_at": a.created_at,
    }


class ArtifactList(BaseModel):
    items: list[ArtifactOut]
    meta: PageMeta


class ArtifactVersions(BaseModel):
    items: list[ArtifactOut] = Field(description="Every version, the latest first")
