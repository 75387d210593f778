"""Files and artifacts of conversations in the console (issue 15).

- ``GET /conversations/{id}/files-panel``: the panel of one conversation — the upload form, its files
  and its artifacts with a preview (escaped text), downloads and versions; the conversation page
  loads it with htmx (``hx-get``, ``hx-trigger="load"``) and an upload swaps it in place.
- ``GET /conversations/artifacts``: every artifact of the person, newest first, by kind, paged;
  ``/conversations/artifacts/{id}``: one artifact with its versions.

Registered before the conversation pages: ``/conversations/artifacts`` is not a conversation id."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response

from cockpit.console.web import SignedIn, Viewer, discard_changes, path_id, redirect, render
from cockpit.conversations import artifacts, files, service
from cockpit.conversations.models import ArtifactKind
from cockpit.kit.errors import CockpitError, InvalidInput
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import AppSettings, DbSession
from cockpit.policies import service as policies

router = APIRouter(prefix="/conversations")

PANEL_ARTIFACTS = 50
PER_PAGE = 25
ACCEPT = ",".join(files.EXTENSIONS)


def _conversation_id(value: str) -> uuid.UUID:
    return path_id(value, "conversation_not_found", "No such conversation.")


def _artifact_id(value: str) -> uuid.UUID:
    return path_id(value, "artifact_not_found", "No such artifact.")


def _kind(value: str) -> ArtifactKind | None:
    return ArtifactKind(value) if value in ArtifactKind.__members__ else None


# ---- one conversation's panel ----


async def _panel(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    settings: AppSettings,
    conversation_id: uuid.UUID,
    *,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    conversation = await service.get_conversation(session, viewer.actor, conversation_id)
    found = await artifacts.list_artifacts(
        session,
        viewer.actor,
        conversation_id=conversation.id,
        page=PageParams(page=1, per_page=PANEL_ARTIFACTS),
    )
    context: dict[str, Any] = {
        "conversation": conversation,
        "files": await files.list_files(session, viewer.actor, conversation.id),
        "artifacts": found.items,
        "artifacts_total": found.total,
        "can_upload": await policies.feature_allowed(session, viewer.actor, files.UPLOAD_FEATURE),
        "used": await files.used_bytes(session, viewer.actor),
        "quota": settings.files_account_quota_bytes,
        "max_bytes": settings.files_max_bytes,
        "accept": ACCEPT,
        "size_text": files.size_text,
        "error": error,
        "notice": notice,
    }
    return render(request, "conversations/_files.html", context)


@router.get("/{conversation_id}/files-panel")
async def files_panel(
    request: Request, session: DbSession, viewer: SignedIn, settings: AppSettings, conversation_id: str
) -> Response:
    return await _panel(request, session, viewer, settings, _conversation_id(conversation_id))


@router.post("/{conversation_id}/files")
async def upload_file(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    settings: AppSettings,
    conversation_id: str,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """htmx: the panel again (with the error or the file added); a plain form: back to the
    conversation with a banner."""
    cid = _conversation_id(conversation_id)
    error: str | None = None
    try:
        if file is None or not file.filename:
            await service.get_conversation(session, viewer.actor, cid)
            raise InvalidInput("file_required", "Choose a file to upload.")
        kept = await files.upload_file(
            session, viewer.actor, cid, name=file.filename, source=file, settings=settings,
            media_type=file.content_type,
        )  # fmt: skip
        notice = f"“{kept.name}” uploaded: it goes with your next message."
    except CockpitError as exc:
        await discard_changes(session, viewer)
        if exc.status == 404:
            raise
        error, notice = exc.message, None
    if request.headers.get("hx-request"):
        # 200 even for a refusal: htmx swaps the panel (and its banner) in only on success codes.
        return await _panel(request, session, viewer, settings, cid, error=error, notice=notice)
    if error is not None:
        return redirect(request, f"/conversations/{cid}", message=error, kind="error")
    return redirect(request, f"/conversations/{cid}", message=notice)


@router.get("/{conversation_id}/files/{file_id}/download")
async def download_file(
    session: DbSession, viewer: SignedIn, settings: AppSettings, conversation_id: str, file_id: str
) -> Response:
    found, data = await files.file_content(
        session, viewer.actor, _conversation_id(conversation_id),
        path_id(file_id, "file_not_found", "No such file in this conversation."), settings=settings,
    )  # fmt: skip
    return Response(
        data, media_type=files.served_type(found.media_type), headers=files.download_headers(found.name)
    )


# ---- every artifact of the person ----


@router.get("/artifacts")
async def artifacts_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    kind: Annotated[str, Query(max_length=20)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    chosen = _kind(kind)
    found = await artifacts.list_artifacts(
        session, viewer.actor, kind=chosen, page=PageParams(page=page, per_page=PER_PAGE)
    )
    titles = await artifacts.conversation_titles(
        session, viewer.actor, {a.conversation_id for a in found.items}
    )
    return render(
        request,
        "conversations/artifacts.html",
        {
            "page": found,
            "artifacts": found.items,
            "kind": chosen.value if chosen else "",
            "kinds": list(ArtifactKind),
            "titles": titles,
            "base_query": urlencode({"kind": chosen.value} if chosen else {}),
            "size_text": files.size_text,
        },
    )


@router.get("/artifacts/{artifact_id}")
async def artifact_page(request: Request, session: DbSession, viewer: SignedIn, artifact_id: str) -> Response:
    artifact = await artifacts.get_artifact(session, viewer.actor, _artifact_id(artifact_id))
    conversation = await service.get_conversation(session, viewer.actor, artifact.conversation_id)
    return render(
        request,
        "conversations/artifact.html",
        {
            "artifact": artifact,
            "conversation": conversation,
            "versions": await artifacts.artifact_versions(session, viewer.actor, artifact.id),
            "size_text": files.size_text,
        },
    )


@router.get("/artifacts/{artifact_id}/download")
async def download_artifact(session: DbSession, viewer: SignedIn, artifact_id: str) -> Response:
    found = await artifacts.get_artifact(session, viewer.actor, _artifact_id(artifact_id))
    return Response(
        found.content.encode("utf-8"),
        media_type=files.served_type(found.media_type),
        headers=files.download_headers(artifacts.download_name(found)),
    )
