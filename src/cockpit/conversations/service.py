"""Conversations: a person's own threads with an agent or a bare model, and their message trees.

A conversation belongs to the person who started it: every function here finds it within the
caller's account *and* among the caller's own conversations, so another account's or another
person's conversation is NotFound (404: nothing is revealed). Starting one needs the access policy
feature ``conversations.use``. Sending a message to a model is the caller's business (the gateway);
this module stores what was asked and what came back, and reads the tree.

Messages form a tree: each points at its parent, the messages that share a parent are alternatives
(an edited question, a regenerated answer), and a branch is the path from the first message to a
leaf. ``current_leaf_id`` is the branch added to or viewed last: the one the conversation reopens on.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents import service as agents
from cockpit.agents.models import Agent, AgentStatus
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.conversations import repository, sharing
from cockpit.conversations.models import Conversation, ConversationMessage, MessageStatus, Role
from cockpit.conversations.schemas import CONTENT_MAX, ERROR_MAX, TITLE_MAX, MessageView
from cockpit.kit.errors import Conflict, InvalidInput, NotFound, NotPermitted
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.text import is_storable, storable, storable_json
from cockpit.kit.time import utcnow
from cockpit.policies import service as policies
from cockpit.providers import service as providers

USE_FEATURE = "conversations.use"
# How long a deleted conversation can be restored before it is purged.
RECOVERABLE_DAYS = 30


def _invalid(code: str, message: str, field: str) -> InvalidInput:
    return InvalidInput(code, message, details=[{"field": field, "message": message}])


def _not_found() -> NotFound:
    return NotFound("conversation_not_found", "No such conversation.")


def _checked_text(value: str, field: str) -> str:
    if not is_storable(value):
        reason = "contains a NUL character" if "\x00" in value else "contains invalid Unicode"
        raise _invalid("invalid_text", f"'{field}' {reason}: remove it and try again.", field)
    return value


def _title(value: str | None) -> str:
    title = _checked_text((value or "").strip(), "title")
    if len(title) > TITLE_MAX:
        raise _invalid("invalid_input", f"A title has at most {TITLE_MAX} characters.", "title")
    return title


# ---- access ----


async def access_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, *, deleted: bool = False
) -> Conversation:
    """The caller's own conversation of their account; NotFound for anyone else's (another
    account's, another person's), and for a deleted one unless ``deleted`` (to restore it)."""
    if actor.user_id is None:
        raise _not_found()
    conversation = await _own(session, actor.account_id, actor.user_id, conversation_id)
    if conversation is None or (conversation.deleted_at is not None and not deleted):
        raise _not_found()
    return conversation


async def _own(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    """The person's own conversation, read once per unit of work: a message sent asks for it several
    times before the model is called (the question, the branch, the files), and each time is a round
    trip on the time to first token. The row found is the session's own object (its identity map):
    what this unit of work changes in it is seen; once expired (a rollback, a commit that expires)
    or gone from the session, it is read again."""
    memo: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID], Conversation] = session.info.setdefault(
        "own_conversations", {}
    )
    key = (account_id, user_id, conversation_id)
    found = memo.get(key)
    state = inspect(found) if found is not None else None
    if found is None or state is None or state.detached or state.expired_attributes or found not in session:
        row = await repository.get_own_with_owner(session, account_id, user_id, conversation_id)
        if row is None:
            return None
        found = memo[key] = row[0]
        # The person too (their caller for the gateway): held here, or the session's identity
        # map, which holds its objects weakly, would let it go before it is asked for.
        session.info.setdefault("conversation_owners", {})[user_id] = row[1]
    return found


async def get_conversation(session: AsyncSession, actor: Actor, conversation_id: uuid.UUID) -> Conversation:
    return await access_conversation(session, actor, conversation_id)


async def readable_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID
) -> tuple[Conversation, str]:
    """A conversation the caller may read, and why: ``"owner"`` (their own), ``"shared"`` (shared
    with them) or ``"review"`` (an administrator reviewing it: recorded, see ``sharing``). Only for
    reading: every change goes through ``access_conversation`` (a reader gets its 404)."""
    if actor.user_id is not None:
        own = await _own(session, actor.account_id, actor.user_id, conversation_id)
        if own is not None and own.deleted_at is None:
            return own, sharing.OWNER
    found = await sharing.other_access(session, actor, conversation_id)
    if found is None:
        raise _not_found()
    return found


async def list_conversations(
    session: AsyncSession,
    actor: Actor,
    *,
    search: str | None = None,
    archived: bool | None = False,
    deleted: bool = False,
    page: PageParams | None = None,
) -> Page[Conversation]:
    """The caller's conversations, pinned first, then the latest activity first. ``archived``:
    only the archived ones (True), only the others (False, the default) or both (None);
    ``deleted``: the deleted ones that can still be restored instead. ``search`` looks in titles."""
    params = page or PageParams()
    if actor.user_id is None:
        return Page(items=[], total=0, page=params.page, per_page=params.per_page)
    search = (search or "").strip() or None
    stmt = repository.own_stmt(
        actor.account_id, actor.user_id, search=search, archived=archived, deleted=deleted
    )
    return await paginate(session, stmt, params)


async def agent_names_of(
    session: AsyncSession, actor: Actor, conversations: Sequence[Conversation]
) -> dict[str, str]:
    """The names of these conversations' agents, by id string (a deleted agent is left out)."""
    ids = {str(c.agent_id) for c in conversations if c.agent_id}
    return await agents.names_of(session, actor.account_id, ids) if ids else {}


# ---- starting ----


async def _usable_agent(session: AsyncSession, actor: Actor, slug: str) -> Agent:
    """The active agent of this slug that the caller may see."""
    found = await agents.by_slug(session, actor.account_id, slug)
    agent: Agent | None = None
    if found is not None:
        try:
            agent = await agents.access_agent(session, actor, found.id)
        except NotFound:
            agent = None
    if agent is None:
        raise _invalid("unknown_agent", f"There is no agent '{slug}' you can use.", "agent")
    if agent.status is not AgentStatus.active:
        raise Conflict("agent_inactive", f"The agent '{agent.name}' is inactive: choose another one.")
    return agent


async def _enabled_model(session: AsyncSession, actor: Actor, name: str) -> str:
    found = next((m for m in await providers.list_models(session, actor) if m.name == name), None)
    if found is None or not found.enabled:
        raise _invalid("unknown_model", f"There is no enabled model '{name}' in the catalogue.", "model")
    return found.name


async def start_conversation(
    session: AsyncSession,
    actor: Actor,
    *,
    agent: str | None = None,
    model: str | None = None,
    title: str | None = None,
) -> Conversation:
    """A new conversation of the caller with an agent (its slug) or a bare model (its name):
    exactly one of the two. The agent must be active and visible to the caller, the model enabled in
    the catalogue, and the caller's policies must allow ``conversations.use``."""
    if (agent is None) == (model is None):
        raise _invalid("agent_or_model", "Choose either an agent or a model.", "agent")
    if actor.user_id is None:
        raise NotPermitted("person_required", "Only a person can hold conversations.")
    await policies.require_feature(session, actor, USE_FEATURE)
    checked_title = _title(title)
    chosen: Agent | None = None
    if agent is not None:
        chosen = await _usable_agent(session, actor, agent.strip())
        names = await providers.model_names_of(
            session, actor.account_id, [chosen.model_id] if chosen.model_id else []
        )
        model_name = names.get(chosen.model_id, "") if chosen.model_id else ""
    else:
        model_name = await _enabled_model(session, actor, (model or "").strip())
    now = utcnow()
    conversation = Conversation(
        id=uuid.uuid4(),
        account_id=actor.account_id,
        user_id=actor.user_id,
        agent_id=chosen.id if chosen else None,
        model=model_name,
        title=checked_title,
        pinned=False,
        archived=False,
        created_at=now,
        updated_at=now,
    )
    session.add(conversation)
    await session.flush()
    return conversation


# ---- the person's changes ----


async def rename_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, *, title: str
) -> Conversation:
    conversation = await access_conversation(session, actor, conversation_id)
    conversation.title = _title(title)
    await session.flush()
    return conversation


async def pin_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, *, pinned: bool = True
) -> Conversation:
    conversation = await access_conversation(session, actor, conversation_id)
    conversation.pinned = pinned
    await session.flush()
    return conversation


async def archive_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, *, archived: bool = True
) -> Conversation:
    conversation = await access_conversation(session, actor, conversation_id)
    conversation.archived = archived
    await session.flush()
    return conversation


async def suggest_title(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, *, title: str
) -> Conversation:
    """The title suggested from the first exchange, unless the person named it meanwhile."""
    conversation = await access_conversation(session, actor, conversation_id)
    if not conversation.title:
        conversation.title = storable(title).strip()[:TITLE_MAX]
        await session.flush()
    return conversation


async def delete_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID
) -> Conversation:
    """A soft delete: gone from the lists, restorable for RECOVERABLE_DAYS days."""
    conversation = await access_conversation(session, actor, conversation_id)
    conversation.deleted_at = utcnow()
    await session.flush()
    return conversation


async def restore_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID
) -> Conversation:
    conversation = await access_conversation(session, actor, conversation_id, deleted=True)
    conversation.deleted_at = None
    await session.flush()
    return conversation


# ---- messages ----


@dataclass(frozen=True)
class Tree:
    """A conversation's messages (oldest first) and, per parent, its children (oldest first)."""

    messages: list[ConversationMessage]
    by_id: dict[uuid.UUID, ConversationMessage]
    children: dict[uuid.UUID | None, list[ConversationMessage]]
    sibling_ids: dict[uuid.UUID | None, list[uuid.UUID]]  # per parent: its children's ids
    index: dict[uuid.UUID, int]  # per message: its place among its siblings

    @classmethod
    def of(cls, messages: list[ConversationMessage]) -> Tree:
        children: dict[uuid.UUID | None, list[ConversationMessage]] = defaultdict(list)
        sibling_ids: dict[uuid.UUID | None, list[uuid.UUID]] = defaultdict(list)
        index: dict[uuid.UUID, int] = {}
        for message in messages:
            index[message.id] = len(children[message.parent_id])
            children[message.parent_id].append(message)
            sibling_ids[message.parent_id].append(message.id)
        return cls(messages, {m.id: m for m in messages}, children, sibling_ids, index)

    def view(self, message: ConversationMessage) -> MessageView:
        return MessageView(
            message=message,
            sibling_ids=self.sibling_ids[message.parent_id],
            sibling_index=self.index[message.id],
        )

    def leaf_below(self, message_id: uuid.UUID) -> uuid.UUID:
        """The last message of the branch through this one: down its latest replies."""
        current = message_id
        while self.children.get(current):
            current = self.children[current][-1].id
        return current

    def branch(self, leaf_id: uuid.UUID | None) -> list[ConversationMessage]:
        """From the first message down to ``leaf_id`` (extended to its latest reply)."""
        if leaf_id is None or leaf_id not in self.by_id:
            if not self.messages:
                return []
            leaf_id = self.messages[-1].id
        path: list[ConversationMessage] = []
        current: uuid.UUID | None = self.leaf_below(leaf_id)
        seen: set[uuid.UUID] = set()
        while current is not None and current not in seen:
            seen.add(current)
            message = self.by_id[current]
            path.append(message)
            current = message.parent_id
        path.reverse()
        return path


async def _tree(session: AsyncSession, conversation: Conversation) -> Tree:
    return Tree.of(await repository.messages_of(session, conversation.id))


def _leaf_in(tree: Tree, leaf_id: uuid.UUID) -> uuid.UUID:
    if leaf_id not in tree.by_id:
        raise NotFound("message_not_found", "No such message in this conversation.")
    return leaf_id


async def messages(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, *, leaf_id: uuid.UUID | None = None
) -> list[MessageView]:
    """The branch from the first message to ``leaf_id`` (any message of the conversation: the
    branch runs on down its latest replies; by default the current branch), each message with its
    siblings. One query, whatever the size of the tree. Readable by those it is shared with and by
    reviewers (``readable_conversation``)."""
    conversation, _access = await readable_conversation(session, actor, conversation_id)
    tree = await _tree(session, conversation)
    leaf = _leaf_in(tree, leaf_id) if leaf_id is not None else conversation.current_leaf_id
    return [tree.view(m) for m in tree.branch(leaf)]


async def tree(session: AsyncSession, actor: Actor, conversation_id: uuid.UUID) -> list[MessageView]:
    """Every message of the conversation, oldest first, each with its siblings (readable as ``messages``)."""
    conversation, _access = await readable_conversation(session, actor, conversation_id)
    whole = await _tree(session, conversation)
    return [whole.view(m) for m in whole.messages]


async def history(
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    *,
    leaf_id: uuid.UUID | None = None,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """The branch as the messages of the next model call (``[{"role", "content"}]``); answers that
    failed are left out (a stopped answer is kept as far as it went). A message of the person with
    files attached has OpenAI content parts instead of a string: its text, then each file (see
    ``files.context_parts``; ``settings``: where the files are stored, by default the process's)."""
    from cockpit.conversations import files  # files builds on this module

    kept = [
        v.message
        for v in await messages(session, actor, conversation_id, leaf_id=leaf_id)
        if not (v.message.role is Role.assistant and v.message.status is MessageStatus.error)
    ]
    asked = [m.id for m in kept if m.role is Role.user]
    attached = await files.context_parts(session, actor, conversation_id, asked, settings=settings)
    return [
        {
            "role": str(m.role),
            "content": files.with_parts(m.content, attached[m.id]) if m.id in attached else m.content,
        }
        for m in kept
    ]


async def select_branch(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> Conversation:
    """Reopen the conversation on the branch through this message (down its latest replies)."""
    conversation = await access_conversation(session, actor, conversation_id)
    tree = await _tree(session, conversation)
    conversation.current_leaf_id = tree.leaf_below(_leaf_in(tree, message_id))
    await session.flush()
    return conversation


async def _parent(
    session: AsyncSession, conversation: Conversation, parent_id: uuid.UUID
) -> ConversationMessage:
    parent = await repository.get_message(session, conversation.id, parent_id)
    if parent is None:
        raise _invalid("unknown_parent", "The parent is not a message of this conversation.", "parent_id")
    return parent


def _append(conversation: Conversation, message: ConversationMessage) -> None:
    conversation.current_leaf_id = message.id
    conversation.updated_at = message.created_at


async def add_user_message(
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    *,
    content: str,
    parent_id: uuid.UUID | None = None,
    edit_of: uuid.UUID | None = None,
    flush: bool = True,
) -> ConversationMessage:
    """The caller's message, after ``parent_id`` (by default the last message of the current branch).

    A parent that is not the last message of its branch starts a new branch beside the old one;
    ``edit_of`` (instead of ``parent_id``) makes the message a new version of that one (the same
    parent: the way to edit the very first message). The new message becomes the current leaf."""
    conversation = await access_conversation(session, actor, conversation_id)
    if not content.strip():
        raise _invalid("invalid_input", "A message cannot be empty.", "content")
    if len(content) > CONTENT_MAX:
        raise _invalid("invalid_input", f"A message has at most {CONTENT_MAX:,} characters.", "content")
    _checked_text(content, "content")
    if parent_id is not None and edit_of is not None:
        raise _invalid("invalid_input", "Give a parent or the message edited, not both.", "edit_of")
    parent: uuid.UUID | None
    if edit_of is not None:
        edited = await repository.get_message(session, conversation.id, edit_of)
        if edited is None or edited.role is not Role.user:
            raise _invalid(
                "unknown_message", "Only a message of yours in this conversation can be edited.", "edit_of"
            )
        parent = edited.parent_id
    elif parent_id is not None:
        parent = (await _parent(session, conversation, parent_id)).id
    else:
        parent = conversation.current_leaf_id
    message = ConversationMessage(
        id=uuid.uuid4(),
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        parent_id=parent,
        role=Role.user,
        content=content,
        status=MessageStatus.complete,
        model="",
        input_tokens=0,
        output_tokens=0,
        cost_usd=Decimal(0),
        credits=Decimal(0),
        tool_steps=[],
        created_at=utcnow(),
    )
    session.add(message)
    _append(conversation, message)
    if flush:  # else written by the caller's next flush or commit (sending: while the model starts)
        await session.flush()
    return message


async def add_assistant_message(
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    *,
    parent_id: uuid.UUID,
    content: str,
    status: MessageStatus = MessageStatus.complete,
    error: str | None = None,
    error_code: str | None = None,
    model: str = "",
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: Decimal = Decimal(0),
    credits: Decimal = Decimal(0),
    tool_steps: list[dict[str, Any]] | None = None,
    pending: dict[str, Any] | None = None,
) -> ConversationMessage:
    """An answer to the caller's message ``parent_id`` (another answer to the same message is a
    sibling: a regenerated answer). What a model or a tool produced is kept whatever it contains
    (made storable). The answer becomes the current leaf."""
    conversation = await access_conversation(session, actor, conversation_id)
    parent = await _parent(session, conversation, parent_id)
    if parent.role is not Role.user:
        raise _invalid("parent_not_a_question", "An answer follows a message of the person.", "parent_id")
    message = ConversationMessage(
        id=uuid.uuid4(),
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        parent_id=parent.id,
        role=Role.assistant,
        content=storable(content),
        status=status,
        error=storable(error)[:ERROR_MAX] if error is not None else None,
        error_code=storable(error_code)[:64] if error_code else None,
        model=storable(model)[:200],
        input_tokens=max(0, input_tokens),
        output_tokens=max(0, output_tokens),
        cost_usd=cost_usd,
        credits=credits,
        tool_steps=storable_json(list(tool_steps or [])),
        pending=storable_json(pending) if pending is not None else None,
        created_at=utcnow(),
    )
    session.add(message)
    _append(conversation, message)
    await session.flush()
    from cockpit.conversations import artifacts  # artifacts builds on this module

    await artifacts.collect(session, conversation, message)  # the code and documents it produced
    return message
