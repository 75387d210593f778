"""Files attached to support tickets: a screenshot, a PDF, a log excerpt.

Kept deliberately small (the conversations' file machinery sits in the same layer and cannot be
imported): text (UTF-8, no markup documents), PDF and PNG / JPEG / GIF / WebP images, each at most
``MAX_BYTES`` (a console form or an API request carries one file within the request body limit),
``MAX_PER_TICKET`` per ticket. The type comes from the content, never from the name or the type the
client declared; a name never becomes part of a path. Downloads are always attachments, sent with
``nosniff`` and a sandboxing CSP, so that nothing uploaded runs as a page.

The bytes are written before the row: a request that fails afterwards leaves an unreferenced file
behind (harmless, and never served), never a row without its bytes.
"""

from __future__ import annotations

import asyncio
import os
import re
import unicodedata
import uuid
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.kit.errors import Conflict, InvalidInput, NotFound
from cockpit.kit.text import storable
from cockpit.tenancy.lock import lock_account
from cockpit.tickets.models import TicketAttachment, TicketStatus
from cockpit.tickets.service import access_ticket

MAX_BYTES = 512 * 1024
MAX_PER_TICKET = 20
ALLOWED = "a text file, a PDF, or a PNG, JPEG, GIF or WebP image"
_KEY = re.compile(r"[0-9a-f]{32}")
_MARKUP = re.compile(rb"\s*(<!doctype|<html|<svg|<\?xml|<script)", re.IGNORECASE)
LABELS = {
    "application/pdf": "PDF", "image/png": "PNG image", "image/jpeg": "JPEG image", "image/gif": "GIF image",
    "image/webp": "WebP image", "text/plain": "Text",
}  # fmt: skip


def invalid(code: str, message: str) -> InvalidInput:
    return InvalidInput(code, message, details=[{"field": "file", "message": message}])


def media_type_of(name: str, data: bytes) -> str:
    """What the bytes are (their magic numbers, or valid UTF-8 text); InvalidInput otherwise."""
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
    if b"\x00" not in data and not _MARKUP.match(data[:4096]):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return "text/plain"
    raise invalid("unsupported_file_type", f"'{name}' is not a type a ticket takes: attach {ALLOWED}.")


def safe_name(raw: str | None) -> str:
    """A name to show and to offer on download: the last path part, storable, without control characters."""
    name = storable(raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return (name or "attachment")[:200]


def size_text(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} KB"
    return f"{count / 1024 / 1024:.1f} MB"


def download_headers(name: str) -> dict[str, str]:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    plain = re.sub(r"[^A-Za-z0-9._ ()-]", "_", plain).strip(" .") or "download"
    exact = quote(name, safe="")
    return {
        "Content-Disposition": f"attachment; filename=\"{plain[:150]}\"; filename*=UTF-8''{exact}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    }


def served_type(media_type: str) -> str:
    return "text/plain; charset=utf-8" if media_type == "text/plain" else media_type


# ---- the bytes ----


def _root(settings: Settings) -> Path:
    return Path(settings.data_dir) / "tickets"


def _path(settings: Settings, account_id: uuid.UUID, key: str) -> Path:
    if not _KEY.fullmatch(key):  # only a key of our own shape is a path (a row edited by hand)
        raise NotFound("attachment_not_found", "The attachment's content is missing.")
    return _root(settings) / account_id.hex / key


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


# ---- the service ----


async def attach_file(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    ticket_id: uuid.UUID,
    *,
    name: str | None,
    data: bytes,
) -> TicketAttachment:
    """Attach a file to a ticket (its requester or a support administrator; not to a closed ticket)."""
    await lock_account(session, actor.account_id)
    row = await access_ticket(session, actor, ticket_id, for_update=True)
    ticket = row.ticket
    if ticket.status is TicketStatus.closed:
        raise Conflict("ticket_closed", f"Ticket #{ticket.number} is closed: file a new ticket instead.")
    shown = safe_name(name)
    if not data:
        raise invalid("empty_file", f"'{shown}' is empty.")
    if len(data) > MAX_BYTES:
        raise invalid(
            "file_too_large",
            f"'{shown}' is {size_text(len(data))}; a ticket takes files up to {size_text(MAX_BYTES)}.",
        )
    media_type = media_type_of(shown, data)
    count = await session.scalar(
        select(func.count()).select_from(TicketAttachment).where(TicketAttachment.ticket_id == ticket.id)
    )
    if (count or 0) >= MAX_PER_TICKET:
        raise Conflict("too_many_attachments", f"A ticket takes at most {MAX_PER_TICKET} attachments.")
    key = uuid.uuid4().hex
    await asyncio.to_thread(_write, _path(settings, ticket.account_id, key), data)
    attachment = TicketAttachment(
        id=uuid.uuid4(), ticket_id=ticket.id, account_id=ticket.account_id, uploader_id=actor.user_id,
        name=shown, media_type=media_type, size=len(data), storage_key=key,
    )  # fmt: skip
    session.add(attachment)
    await audit.record(
        session, actor, "support_ticket.attachment_added",
        target=Target("support_ticket", ticket.id, f"#{ticket.number}: {ticket.subject[:200]}"),
        after={"name": shown, "media_type": media_type, "size": len(data)},
    )  # fmt: skip
    await session.flush()
    return attachment


async def list_attachments(
    session: AsyncSession, actor: Actor, ticket_id: uuid.UUID
) -> list[TicketAttachment]:
    """A ticket's attachments, oldest first (after the same access check as the ticket)."""
    row = await access_ticket(session, actor, ticket_id)
    found = await session.scalars(
        select(TicketAttachment)
        .where(TicketAttachment.account_id == actor.account_id, TicketAttachment.ticket_id == row.ticket.id)
        .order_by(TicketAttachment.created_at, TicketAttachment.id)
    )
    return list(found)


async def attachment_content(
    session: AsyncSession, actor: Actor, settings: Settings, ticket_id: uuid.UUID, attachment_id: uuid.UUID
) -> tuple[TicketAttachment, bytes]:
    row = await access_ticket(session, actor, ticket_id)
    attachment = await session.scalar(
        select(TicketAttachment).where(
            TicketAttachment.account_id == actor.account_id,
            TicketAttachment.ticket_id == row.ticket.id,
            TicketAttachment.id == attachment_id,
        )
    )
    if attachment is None:
        raise NotFound("attachment_not_found", "No such attachment on this ticket.")
    path = _path(settings, attachment.account_id, attachment.storage_key)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise NotFound("attachment_not_found", "The attachment's content is missing.") from None
    return attachment, data
