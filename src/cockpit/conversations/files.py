"""Files a person uploads into their conversation, as context for the model.

Only the conversation's owner sees its files (another person's or another account's are NotFound).
Uploading needs the access policy feature ``files.upload``. A file is refused unless it is one of
the types a model can use — text, Markdown, CSV, JSON, PDF (its text is extracted) and PNG, JPEG,
WebP or GIF images — and its content is what its name says: an HTML page or an SVG drawing (both
can carry script), an executable, or binary bytes named ``.txt`` never get in. The size of one file
and the bytes of all the files of an account are limited (``files_max_bytes``,
``files_account_quota_bytes``).

A file is uploaded first, then attached to the person's next message (``attach``); from then on it
goes to the model with that message (``context_parts``): its text as a text part, an image as an
image part when the conversation's model can see images (its catalogue entry has the ``vision``
capability), or else a note that an image was attached.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any, Protocol
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.config import Settings, get_settings
from cockpit.conversations import file_repository as repository
from cockpit.conversations import repository as conversation_repository
from cockpit.conversations import retention, service
from cockpit.conversations.models import Conversation, ConversationFile, Role
from cockpit.conversations.storage import MissingFile, storage_for
from cockpit.kit.errors import CockpitError, InvalidInput, NotFound
from cockpit.kit.text import storable
from cockpit.kit.time import utcnow
from cockpit.policies import service as policies
from cockpit.providers import service as providers
from cockpit.tenancy.lock import lock_account_chain

UPLOAD_FEATURE = "files.upload"
NAME_MAX = 200
# The text kept of a file (what a model could ever be sent of it), and what one message sends of it.
TEXT_MAX = 200_000
CONTEXT_TEXT_MAX = 50_000
PDF_PAGES_MAX = 500
CHUNK = 64 * 1024

EXTENSIONS: dict[str, str] = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".log": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".json": "application/json",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/csv", "application/json"})
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
ALLOWED = "text, Markdown, CSV, JSON, PDF, or a PNG, JPEG, WebP or GIF image"
_LABELS = {"application/pdf": "a PDF", "image/png": "a PNG image", "image/jpeg": "a JPEG image",
           "image/webp": "a WebP image", "image/gif": "a GIF image"}  # fmt: skip
_EXECUTABLE = (b"MZ", b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
               b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"\x00asm")  # fmt: skip
_MARKUP = re.compile(
    rb"^(\xef\xbb\xbf)?\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+(html|svg)|html|svg|script)\b",
    re.I | re.S,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class FileTooLarge(CockpitError):
    status = 413
    default_code = "file_too_large"


class Readable(Protocol):
    """An upload being received (FastAPI's ``UploadFile``)."""

    async def read(self, size: int = -1) -> bytes: ...


def _invalid(code: str, message: str) -> InvalidInput:
    return InvalidInput(code, message, details=[{"field": "file", "message": message}])


def _file_not_found() -> NotFound:
    return NotFound("file_not_found", "No such file in this conversation.")


# ---- what a file is ----


def safe_name(raw: str | None) -> str:
    """A name to show and to offer on download: the last part of what was sent (no folders), with
    control characters, NUL and invalid Unicode removed, at most NAME_MAX characters (the extension
    kept). Never used in a path."""
    name = storable(raw or "").replace("\ufffd", "")
    name = re.split(r"[/\\]", name)[-1]
    name = _CONTROL.sub("", unicodedata.normalize("NFC", name)).strip().strip(".").strip()
    if len(name) > NAME_MAX:
        suffix = PurePosixPath(name).suffix
        suffix = suffix if len(suffix) <= 12 else ""
        name = name[: NAME_MAX - len(suffix)].rstrip() + suffix
    return name or "file"


def _magic(data: bytes) -> str | None:
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def media_type_of(name: str, data: bytes, declared: str | None = None) -> str:
    """The file's type, from its name's extension (or, without one, its content or the type sent
    with it), checked against its content; InvalidInput when it is not a type Cockpit takes."""
    if data.startswith(_EXECUTABLE):
        raise _invalid("unsupported_file_type", f"'{name}' is a program: upload {ALLOWED}.")
    extension = PurePosixPath(name.lower()).suffix
    by_content = _magic(data)
    media_type = EXTENSIONS.get(extension)
    if media_type is None:
        declared = (declared or "").split(";")[0].strip().lower()
        if extension or (by_content is None and declared not in TEXT_TYPES):
            raise _invalid(
                "unsupported_file_type", f"'{name}' is not a type Cockpit takes: upload {ALLOWED}."
            )
        media_type = by_content or declared
    if media_type in TEXT_TYPES:
        if by_content is not None:
            raise _invalid("content_mismatch", f"'{name}' is {_LABELS[by_content]}, not text.")
        if _MARKUP.match(data[:4096]):
            raise _invalid("unsupported_file_type", f"'{name}' is an HTML or SVG document: upload {ALLOWED}.")
    elif by_content != media_type:
        raise _invalid(
            "content_mismatch", f"'{name}' is not {_LABELS[media_type]}: its content says otherwise."
        )
    return media_type


def _text_of(name: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid("not_text", f"'{name}' is not UTF-8 text.") from exc
    if "\x00" in text or len(_CONTROL.findall(text[:100_000])) > max(8, len(text[:100_000]) // 100):
        raise _invalid("not_text", f"'{name}' holds binary data, not text.")
    return text


def _pdf_text(name: str, data: bytes) -> str:
    from pypdf import PasswordType, PdfReader  # imported on first use: a large package

    unreadable = _invalid("unreadable_pdf", f"'{name}' could not be read as a PDF: it may be damaged.")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise _invalid("unreadable_pdf", f"'{name}' is protected by a password.")
        parts: list[str] = []
        total = 0
        for index, page in enumerate(reader.pages):
            if index >= PDF_PAGES_MAX or total >= TEXT_MAX:
                break
            text = page.extract_text() or ""
            parts.append(text)
            total += len(text) + 2
    except CockpitError:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on a damaged file
        raise unreadable from exc
    return "\n\n".join(parts)


def extract_text(name: str, media_type: str, data: bytes) -> str | None:
    """What a model reads of the file (made storable, at most TEXT_MAX characters); None for an
    image. InvalidInput when the content is not what its type says."""
    if media_type in IMAGE_TYPES:
        return None
    if media_type == "application/pdf":
        text = _pdf_text(name, data)
    else:
        text = _text_of(name, data)
        if media_type == "application/json":
            try:
                json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise _invalid("invalid_json", f"'{name}' is not valid JSON.") from exc
    return storable(text)[:TEXT_MAX]


async def read_limited(source: Readable, limit: int) -> bytes:
    """The upload, read in chunks: FileTooLarge as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await source.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise FileTooLarge("file_too_large", f"A file can be at most {size_text(limit)}.")
        chunks.append(chunk)
    return b"".join(chunks)


def size_text(count: int) -> str:
    """Bytes as people read them: "3.4 MiB", "812 bytes"."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= factor:
            return f"{count / factor:,.1f} {unit}".replace(".0 ", " ")
    return f"{count:,} bytes"


# ---- uploading, reading ----


async def upload_file(
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    *,
    name: str | None,
    source: Readable,
    settings: Settings,
    media_type: str | None = None,
) -> ConversationFile:
    """A file into the caller's conversation, not attached to a message yet. Refused: without the
    ``files.upload`` feature (403), larger than ``files_max_bytes`` or beyond the account's quota
    (413), not a type Cockpit takes or not what it says it is (422)."""
    conversation = await service.access_conversation(session, actor, conversation_id)
    await policies.require_feature(session, actor, UPLOAD_FEATURE)
    assert actor.user_id is not None  # access_conversation: a person's own conversation
    data = await read_limited(source, settings.files_max_bytes)
    shown = safe_name(name)
    if not data:
        raise _invalid("empty_file", f"'{shown}' is empty.")
    kind = media_type_of(shown, data, media_type)
    text = await asyncio.to_thread(extract_text, shown, kind, data)
    # The account's lock: two uploads at once cannot both fit in the last free bytes.
    await lock_account_chain(session, conversation.account_id)
    quota = settings.files_account_quota_bytes
    if quota and await repository.used_bytes(session, conversation.account_id) + len(data) > quota:
        raise FileTooLarge(
            "files_quota_exceeded",
            f"Your organisation's files would take more than {size_text(quota)}: delete conversations "
            "with files you no longer need, or ask an administrator.",
        )
    key = await storage_for(settings).put(conversation.account_id, data)
    kept = ConversationFile(
        id=uuid.uuid4(),
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        user_id=actor.user_id,
        message_id=None,
        name=shown,
        media_type=kind,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_key=key,
        text=text,
        created_at=utcnow(),
    )
    session.add(kept)
    await session.flush()
    return kept


async def list_files(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID
) -> list[ConversationFile]:
    """The files of the caller's conversation, oldest first."""
    conversation = await service.access_conversation(session, actor, conversation_id)
    return await repository.files_of(session, conversation.account_id, conversation.id)


async def get_file(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, file_id: uuid.UUID
) -> ConversationFile:
    conversation = await service.access_conversation(session, actor, conversation_id)
    found = await repository.get_file(session, conversation.account_id, conversation.id, file_id)
    if found is None:
        raise _file_not_found()
    return found


async def file_content(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, file_id: uuid.UUID, *, settings: Settings
) -> tuple[ConversationFile, bytes]:
    found = await get_file(session, actor, conversation_id, file_id)
    try:
        data = await storage_for(settings).get(found.account_id, found.storage_key)
    except MissingFile as exc:
        raise NotFound("file_missing", f"The content of '{found.name}' is no longer stored.") from exc
    return found, data


@retention.on_purge
async def _forget_purged(
    session: AsyncSession, conversation_ids: Sequence[uuid.UUID], settings: Settings | None
) -> retention.AfterCommit | None:
    """Purged conversations: their files' bytes are deleted after the purge is committed."""
    stored = await repository.storage_keys_of(session, conversation_ids)
    if not stored:
        return None
    storage = storage_for(settings or get_settings())

    async def delete() -> None:
        for account_id, key in stored:
            await storage.delete(account_id, key)

    return delete


async def used_bytes(session: AsyncSession, actor: Actor) -> int:
    """The bytes the files of the caller's account take."""
    return await repository.used_bytes(session, actor.account_id)


# ---- with a message ----


async def attach(
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    file_ids: Collection[uuid.UUID],
    message_id: uuid.UUID,
) -> list[ConversationFile]:
    """Attach uploaded files to the caller's message: from then on they go to the model with it.
    Each must be a file of this conversation not attached to another message yet."""
    conversation = await service.access_conversation(session, actor, conversation_id)
    wanted = set(file_ids)
    if not wanted:
        return []
    message = await conversation_repository.get_message(session, conversation.id, message_id)
    if message is None or message.role is not Role.user:
        raise InvalidInput(
            "unknown_message", "Files are attached to a message of yours in this conversation."
        )
    found = await repository.files_by_ids(session, conversation.account_id, conversation.id, wanted)
    if len(found) != len(wanted) or any(f.message_id not in (None, message.id) for f in found):
        raise InvalidInput(
            "unknown_file",
            "Attach files uploaded to this conversation and not sent yet.",
            details=[{"field": "file_ids", "message": "unknown or already sent"}],
        )
    for f in found:
        f.message_id = message.id
    await session.flush()
    return sorted(found, key=lambda f: (f.created_at, f.id))


async def _sees_images(session: AsyncSession, actor: Actor, conversation: Conversation) -> bool:
    model = next(
        (m for m in await providers.list_models(session, actor) if m.name == conversation.model), None
    )
    return model is not None and "vision" in (model.capabilities or [])


async def _part(file: ConversationFile, vision: bool, settings: Settings) -> dict[str, Any]:
    if file.media_type in IMAGE_TYPES:
        if not vision:
            note = f"[image {file.name} attached: this model cannot see images]"
            return {"type": "text", "text": note}
        try:
            data = await storage_for(settings).get(file.account_id, file.storage_key)
        except MissingFile:
            return {"type": "text", "text": f"[image {file.name} attached: no longer stored]"}
        url = f"data:{file.media_type};base64,{base64.b64encode(data).decode()}"
        return {"type": "image_url", "image_url": {"url": url}}
    text = file.text or ""
    if not text.strip():
        return {"type": "text", "text": f"Attached file {file.name}: (no text could be read from it)"}
    if len(text) > CONTEXT_TEXT_MAX:
        text = (
            text[:CONTEXT_TEXT_MAX] + f"\n[… cut: the first {CONTEXT_TEXT_MAX:,} characters of {len(text):,}]"
        )
    return {"type": "text", "text": f"Attached file {file.name}:\n{text}"}


async def context_parts(
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    message_ids: Iterable[uuid.UUID],
    *,
    settings: Settings | None = None,
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Per message (of ``message_ids``) with files attached, those files as OpenAI content parts, in
    the order they were uploaded. One query for the whole branch."""
    conversation = await service.access_conversation(session, actor, conversation_id)
    wanted = set(message_ids)
    attached = [
        f
        for f in await repository.attached_files(session, conversation.account_id, conversation.id)
        if f.message_id in wanted
    ]
    if not attached:
        return {}
    vision = any(f.media_type in IMAGE_TYPES for f in attached) and await _sees_images(
        session, actor, conversation
    )
    chosen = settings or get_settings()
    parts: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for f in attached:
        assert f.message_id is not None
        parts[f.message_id].append(await _part(f, vision, chosen))
    return dict(parts)


def with_parts(content: str, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A message's content with its files: the text first, then each file."""
    return [{"type": "text", "text": content}, *parts]


# ---- downloads ----


def served_type(media_type: str) -> str:
    """The Content-Type a download is sent with: anything a browser could run as a page is plain text."""
    lowered = media_type.lower()
    if any(word in lowered for word in ("html", "xml", "svg", "javascript", "ecmascript")):
        return "text/plain; charset=utf-8"
    if lowered.startswith("text/") or lowered == "application/json":
        return f"{lowered}; charset=utf-8"
    return lowered


def download_headers(name: str) -> dict[str, str]:
    """Headers of a download: an attachment (an ASCII ``filename`` and the exact UTF-8
    ``filename*``), never sniffed into something else, never run as a page."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    plain = re.sub(r"[^A-Za-z0-9._ ()-]", "_", plain).strip(" .") or "download"
    exact = quote(storable(name), safe="")
    return {
        "Content-Disposition": f"attachment; filename=\"{plain[:150]}\"; filename*=UTF-8''{exact}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    }
