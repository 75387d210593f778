"""A conversation's history taken elsewhere: a branch copied into a new thread (fork), and the
conversation as a file (Markdown or JSON export).

Both read the conversation with ``service.readable_conversation``: the owner, a person it is shared
with, and (export only) a reviewer — whose export is recorded as a review like any reading.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import repository, service, sharing
from cockpit.conversations.models import Conversation, ConversationMessage, Role
from cockpit.conversations.schemas import TITLE_MAX
from cockpit.kit.errors import InvalidInput, NotFound, NotPermitted
from cockpit.kit.money import plain
from cockpit.kit.time import utcnow
from cockpit.policies import service as policies

BRANCH_SUFFIX = " (branch)"
FORMATS = ("md", "json")


# ---- fork: a branch into a new thread ----


def _path_to(tree: service.Tree, message_id: uuid.UUID) -> list[ConversationMessage]:
    """From the first message down to this one, exactly (not on to its replies)."""
    path: list[ConversationMessage] = []
    current: uuid.UUID | None = message_id
    seen: set[uuid.UUID] = set()
    while current is not None and current not in seen:
        seen.add(current)
        message = tree.by_id[current]
        path.append(message)
        current = message.parent_id
    path.reverse()
    return path


def branch_title(title: str) -> str:
    base = (title or "Untitled conversation")[: TITLE_MAX - len(BRANCH_SUFFIX)].rstrip()
    return base + BRANCH_SUFFIX


async def fork_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> Conversation:
    """A new conversation of the caller (same agent and model, the title with " (branch)")
    holding a copy of the branch from the first message down to ``message_id``: same contents,
    roles, statuses, tool steps, tokens, costs, credits and times, new ids, the parent links
    rebuilt; it reopens on the copy of ``message_id``. The original is not changed.

    The owner and the people it is shared with may fork (the copy is theirs); a reviewer may not
    (review is for reading). Starting a conversation needs the feature ``conversations.use``.
    The copy is one multi-row INSERT, whatever the length of the branch."""
    conversation, access = await service.readable_conversation(session, actor, conversation_id)
    if access not in (sharing.OWNER, sharing.SHARED) or actor.user_id is None:
        raise NotPermitted("fork_not_allowed", "Only the owner or a person it is shared with can branch it.")
    await policies.require_feature(session, actor, service.USE_FEATURE)
    tree = service.Tree.of(await repository.messages_of(session, conversation.id))
    if message_id not in tree.by_id:
        raise NotFound("message_not_found", "No such message in this conversation.")
    path = _path_to(tree, message_id)
    now = utcnow()
    copy = Conversation(
        id=uuid.uuid4(),
        account_id=conversation.account_id,
        user_id=actor.user_id,
        agent_id=conversation.agent_id,
        model=conversation.model,
        title=branch_title(conversation.title),
        pinned=False,
        archived=False,
        created_at=now,
        updated_at=now,
    )
    new_ids = {m.id: uuid.uuid4() for m in path}
    copy.current_leaf_id = new_ids[message_id]
    session.add(copy)
    await session.flush()
    rows: list[dict[str, Any]] = [
        {
            "id": new_ids[m.id],
            "account_id": copy.account_id,
            "conversation_id": copy.id,
            "parent_id": new_ids[m.parent_id] if m.parent_id is not None else None,
            "role": m.role,
            "content": m.content,
            "status": m.status,
            "error": m.error,
            "model": m.model,
            "input_tokens": m.input_tokens,
            "output_tokens": m.output_tokens,
            "cost_usd": m.cost_usd,
            "credits": m.credits,
            "tool_steps": list(m.tool_steps or []),
            "created_at": m.created_at,
        }
        for m in path
    ]
    # Parents first (the branch's order): each row's parent is inserted before it.
    # Files and artifacts attached to the messages are not copied (they stay with the original).
    await session.execute(insert(ConversationMessage), rows)
    return copy


# ---- export ----


@dataclass(frozen=True)
class Export:
    filename: str
    media_type: str
    content: bytes


def safe_filename(title: str, extension: str, *, when: datetime) -> str:
    """An ASCII file name from the title (letters, digits and dashes only; never empty)."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60].strip("-") or "conversation"
    return f"{slug}-{when:%Y-%m-%d}.{extension}"


def _message_json(m: ConversationMessage) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "parent_id": str(m.parent_id) if m.parent_id else None,
        "role": str(m.role),
        "content": m.content,
        "status": str(m.status),
        "error": m.error,
        "created_at": m.created_at.isoformat(),
        "model": m.model,
        "input_tokens": m.input_tokens,
        "output_tokens": m.output_tokens,
        "cost_usd": plain(m.cost_usd),
        "credits": plain(m.credits),
        "tool_steps": list(m.tool_steps or []),
    }


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text`` (so that it cannot close it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _step_markdown(step: dict[str, Any]) -> str:
    # The summary is HTML (inside <details>): escaped. The step's arguments and result are in code
    # fences: shown as written.
    ok = "ok" if step.get("ok") else "error"
    duration = step.get("duration_ms")
    took = f", {duration} ms" if isinstance(duration, int) else ""
    summary = html.escape(f"Tool: {step.get('integration', '')} · {step.get('tool', '')} ({ok}{took})")
    parts = [f"<details>\n<summary>{_one_line(summary)}</summary>\n"]
    for key in ("arguments", "result", "error"):
        value = step.get(key)
        if value is None or value == "":
            continue
        body = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
        fence = _fence(body)
        parts.append(
            f"{key.capitalize()}:\n\n{fence}{'json' if not isinstance(value, str) else ''}\n{body}\n{fence}\n"
        )
    parts.append("</details>\n")
    return "\n".join(parts)


def _markdown(
    conversation: Conversation, speaker: str, items: list[ConversationMessage], now: datetime
) -> str:
    title = _one_line(conversation.title) or "Untitled conversation"
    lines = [
        f"# {title}",
        "",
        f"- With: {_one_line(speaker)}",
        f"- Started: {conversation.created_at:%Y-%m-%d %H:%M} UTC",
        f"- Exported: {now:%Y-%m-%d %H:%M} UTC",
        "",
    ]
    for m in items:
        who = "You" if m.role is Role.user else _one_line(speaker)
        lines += ["---", "", f"## {who}", ""]
        for step in m.tool_steps or []:
            if isinstance(step, dict):
                lines.append(_step_markdown(step))
        if m.content:
            lines += [m.content, ""]
        if str(m.status) == "stopped":
            lines += ["_(stopped)_", ""]
        elif str(m.status) == "error":
            lines += [f"_(failed: {_one_line(m.error or 'the answer failed')})_", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


async def export_conversation(
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    *,
    fmt: str = "md",
    whole_tree: bool = False,
) -> Export:
    """The conversation as a file: its current branch (``whole_tree``: every message, JSON only)
    in Markdown (``md``: "## You" / "## <agent or model>", tool steps as collapsed notes) or JSON
    (the conversation's metadata and its messages). Contents are exported as written: the file is a
    download, never a page."""
    if fmt not in FORMATS:
        raise InvalidInput(
            "invalid_format",
            "The format is md or json.",
            details=[{"field": "format", "message": "md or json"}],
        )
    if whole_tree and fmt != "json":
        raise InvalidInput(
            "tree_needs_json",
            "The whole tree is exported as JSON only.",
            details=[{"field": "tree", "message": "JSON only"}],
        )
    conversation, _access = await service.readable_conversation(session, actor, conversation_id)
    tree = service.Tree.of(await repository.messages_of(session, conversation.id))
    items = tree.messages if whole_tree else tree.branch(conversation.current_leaf_id)
    names = await service.agent_names_of(session, actor, [conversation])
    agent = names.get(str(conversation.agent_id)) if conversation.agent_id else None
    speaker = agent or conversation.model or "Assistant"
    now = utcnow()
    filename = safe_filename(conversation.title or "conversation", fmt, when=now)
    if fmt == "md":
        text = _markdown(conversation, speaker, items, now)
        # A NUL or a lone surrogate (never stored, but a file must not break on one) becomes U+FFFD.
        text = text.replace("\x00", "\ufffd")
        return Export(filename, "text/markdown; charset=utf-8", text.encode("utf-8", "replace"))
    document = {
        "conversation": {
            "id": str(conversation.id),
            "title": conversation.title,
            "agent_id": str(conversation.agent_id) if conversation.agent_id else None,
            "agent": agent,
            "model": conversation.model,
            "created_at": conversation.created_at.isoformat(),
            "updated_at": conversation.updated_at.isoformat(),
            "current_leaf_id": str(conversation.current_leaf_id) if conversation.current_leaf_id else None,
            "exported_at": now.isoformat(),
            "scope": "tree" if whole_tree else "branch",
        },
        "messages": [_message_json(m) for m in items],
    }
    # ASCII-only JSON: any character (a NUL, a lone surrogate) is an escape, never a broken byte;
    # and <, > and & are escapes too (they only ever occur inside strings), so that no viewer that
    # ignores the content type finds markup in the file. The values are unchanged.
    body = json.dumps(document, ensure_ascii=True, indent=2)
    body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Export(filename, "application/json", body.encode("ascii"))
