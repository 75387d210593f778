"""A person's conversations (issue 15): their threads with an agent or a model, and the messages.

Sending a message calls the conversation's agent or model through the gateway (``gateway.conversing``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field

from cockpit.auth.dependencies import ApiActor, bearer_token
from cockpit.authz.actor import Actor, ActorKind, TokenScope
from cockpit.conversations import service
from cockpit.conversations.models import Conversation
from cockpit.conversations.schemas import (
    ConversationCreate,
    ConversationList,
    ConversationOut,
    ConversationUpdate,
    MessageList,
    MessageOut,
    conversation_out,
    message_out,
)
from cockpit.gateway import conversing
from cockpit.gateway.events import EventStream
from cockpit.gateway.service import Gateway
from cockpit.kit.errors import NotAuthenticated, NotPermitted
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession, client_ip, user_agent

router = APIRouter(prefix="/conversations", tags=["conversations"])


async def _out(session: DbSession, actor: ApiActor, conversation: Conversation) -> ConversationOut:
    return conversation_out(conversation, await service.agent_names_of(session, actor, [conversation]))


@router.get("", response_model=ConversationList)
async def list_conversations(
    session: DbSession,
    actor: ApiActor,
    paging: Annotated[PageParams, Depends(page_params)],
    search: Annotated[str | None, Query(max_length=200, description="Title contains")] = None,
    archived: Annotated[bool, Query(description="The archived conversations instead")] = False,
    deleted: Annotated[bool, Query(description="The deleted ones that can still be restored")] = False,
) -> ConversationList:
    """The caller's own conversations: pinned first, then the latest activity first (paged)."""
    page = await service.list_conversations(
        session, actor, search=search, archived=archived, deleted=deleted, page=paging
    )
    names = await service.agent_names_of(session, actor, page.items)
    return ConversationList(items=[conversation_out(c, names) for c in page.items], meta=PageMeta.of(page))


@router.post("", response_model=ConversationOut, status_code=status.HTTP_201_CREATED)
async def start_conversation(
    body: ConversationCreate, session: DbSession, actor: ApiActor
) -> ConversationOut:
    """With ``{"agent": slug}`` or ``{"model": name}`` (and an optional ``title``)."""
    conversation = await service.start_conversation(
        session, actor, agent=body.agent, model=body.model, title=body.title
    )
    return await _out(session, actor, conversation)


@router.get("/{conversation_id}", response_model=ConversationOut)
async def get_conversation(
    conversation_id: uuid.UUID, session: DbSession, actor: ApiActor
) -> ConversationOut:
    """The caller's own conversation, one shared with them (``access``: ``shared``, read-only), or,
    when the organisation allows review, any of the account's for a reviewer (``review``: recorded)."""
    conversation, access = await service.readable_conversation(session, actor, conversation_id)
    names = await service.agent_names_of(session, actor, [conversation])
    return conversation_out(conversation, names, access)


@router.patch("/{conversation_id}", response_model=ConversationOut)
async def change_conversation(
    conversation_id: uuid.UUID, body: ConversationUpdate, session: DbSession, actor: ApiActor
) -> ConversationOut:
    """Rename, pin, archive, or reopen it on another branch; only the fields sent change."""
    conversation = await service.get_conversation(session, actor, conversation_id)
    if body.title is not None:
        conversation = await service.rename_conversation(session, actor, conversation_id, title=body.title)
    if body.pinned is not None:
        conversation = await service.pin_conversation(session, actor, conversation_id, pinned=body.pinned)
    if body.archived is not None:
        conversation = await service.archive_conversation(
            session, actor, conversation_id, archived=body.archived
        )
    if body.current_leaf_id is not None:
        conversation = await service.select_branch(session, actor, conversation_id, body.current_leaf_id)
    return await _out(session, actor, conversation)


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(conversation_id: uuid.UUID, session: DbSession, actor: ApiActor) -> Response:
    """Gone from the lists; restorable for 30 days."""
    await service.delete_conversation(session, actor, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{conversation_id}/restore", response_model=ConversationOut)
async def restore_conversation(
    conversation_id: uuid.UUID, session: DbSession, actor: ApiActor
) -> ConversationOut:
    return await _out(session, actor, await service.restore_conversation(session, actor, conversation_id))


@router.get("/{conversation_id}/messages", response_model=MessageList)
async def list_messages(
    conversation_id: uuid.UUID,
    session: DbSession,
    actor: ApiActor,
    tree: Annotated[bool, Query(description="Every message of the tree, oldest first")] = False,
    leaf_id: Annotated[
        uuid.UUID | None,
        Query(description="The branch through this message (by default the current branch)"),
    ] = None,
) -> MessageList:
    """One branch, from the first message down (each message with its siblings' ids), or the
    whole tree."""
    if tree:
        views = await service.tree(session, actor, conversation_id)
    else:
        views = await service.messages(session, actor, conversation_id, leaf_id=leaf_id)
    conversation, _access = await service.readable_conversation(session, actor, conversation_id)
    return MessageList(
        conversation_id=conversation.id,
        current_leaf_id=conversation.current_leaf_id,
        items=[message_out(v) for v in views],
    )


class SendIn(BaseModel):
    """A message (``content``; after ``parent_id``, or as a new version of ``edit_of``), or a new
    answer beside an earlier one (``regenerate_of``)."""

    content: Annotated[str | None, Field(min_length=1, max_length=100_000)] = None
    parent_id: uuid.UUID | None = None
    edit_of: uuid.UUID | None = None
    regenerate_of: uuid.UUID | None = None
    file_ids: Annotated[list[uuid.UUID], Field(max_length=20)] = Field(
        default_factory=list,
        description="Files uploaded to the conversation (POST …/files) that go with the message as context",
    )


class ExchangeOut(BaseModel):
    asked: MessageOut | None = Field(description="The message sent (none when an answer was regenerated)")
    message: MessageOut = Field(description="The answer, with its tokens, exact cost and credits")


async def cached_api_actor(request: Request) -> Actor:
    """``ApiActor`` from the gateway's in-memory directory of tokens instead of a query: the same
    rules (unknown, revoked or expired tokens and deactivated people: 401; no 'admin' scope: 403)
    and the same freshness as the gateway's own calls (changes reach it by the directory's
    invalidation). Sending a message then costs no round trip before the model is called (the time
    to first token is the conversation layer's benchmark)."""
    raw = bearer_token(request)
    if raw is None:
        raise NotAuthenticated(
            "missing_token", "Send an API token in the header 'Authorization: Bearer <token>'."
        )
    gateway: Gateway = request.app.state.gateway
    caller = await gateway.directory.caller(raw)
    if (
        caller is None
        or caller.token_id is None
        or (caller.expires_at is not None and caller.expires_at <= utcnow())
    ):
        raise NotAuthenticated("invalid_token", "The API token is invalid, expired or revoked.")
    if TokenScope.admin.value not in caller.scopes:
        raise NotPermitted(
            "token_scope_missing", "This token lacks the 'admin' scope that the management API needs."
        )
    return Actor(
        kind=ActorKind.token, account_id=caller.account_id, label=caller.email, user_id=caller.user_id,
        role=caller.role, token_id=caller.token_id,
        scopes=frozenset(TokenScope(s) for s in caller.scopes if s in {t.value for t in TokenScope}),
        ip=client_ip(request), user_agent=user_agent(request),
    )  # fmt: skip


@router.post(
    "/{conversation_id}/messages",
    response_model=ExchangeOut,
    status_code=status.HTTP_201_CREATED,
    responses={201: {"content": {"text/event-stream": {}}}},
)
async def send_message(
    conversation_id: uuid.UUID,
    body: SendIn,
    request: Request,
    session: DbSession,
    actor: Annotated[Actor, Depends(cached_api_actor)],
) -> ExchangeOut:
    """Send a message and get the answer of the conversation's agent or model (through the gateway:
    access policies, credits and metering as for any call). A refused or failed call answers with
    its status and reason (402 without credits, 403 refused by a policy), and is kept in the
    conversation as an answer with status ``error``; nothing is charged for it.

    With ``Accept: text/event-stream`` the answer streams as server-sent events: ``delta`` (text as
    the model writes it), ``tool_step``, then ``message`` (the answer as kept) and ``error`` if the
    call was refused or failed, then ``[DONE]``; closing the connection stops the answer and keeps
    what had arrived (status ``stopped``)."""
    if "text/event-stream" in request.headers.get("accept", ""):
        _asked, events = await conversing.send_streamed(
            request, session, actor, conversation_id, content=body.content, parent_id=body.parent_id,
            edit_of=body.edit_of, regenerate_of=body.regenerate_of, file_ids=body.file_ids,
        )  # fmt: skip
        await session.commit()
        return EventStream(events)  # type: ignore[return-value]
    exchange = await conversing.send(
        request, session, actor, conversation_id, content=body.content, parent_id=body.parent_id,
        edit_of=body.edit_of, regenerate_of=body.regenerate_of, file_ids=body.file_ids,
    )  # fmt: skip
    if exchange.failure is not None:
        await session.commit()  # the question and the failed answer are kept
        raise exchange.failure
    views = await service.messages(session, actor, conversation_id, leaf_id=exchange.answer.id)
    by_id = {v.message.id: v for v in views}
    asked = by_id.get(exchange.asked.id) if exchange.asked is not None else None
    return ExchangeOut(
        asked=message_out(asked) if asked is not None else None,
        message=message_out(by_id[exchange.answer.id]),
    )


class ApprovalIn(BaseModel):
    approve: bool = Field(description="true: run the tool calls the answer paused at; false: decline them")


@router.post("/{conversation_id}/messages/{message_id}/approval", response_model=ExchangeOut)
async def decide_approval(
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    body: ApprovalIn,
    request: Request,
    session: DbSession,
    actor: ApiActor,
) -> ExchangeOut:
    """Approve or decline the tool calls of an answer with status ``awaiting_approval`` (an agent's
    tool marked "ask before running"): the run goes on and its continuation is added to the same
    answer. 409 when the answer is not waiting (or was decided already)."""
    exchange = await conversing.decide(
        request, session, actor, conversation_id, message_id, approve=body.approve
    )
    if exchange.failure is not None:
        await session.commit()  # the answer keeps what went wrong
        raise exchange.failure
    views = await service.messages(session, actor, conversation_id, leaf_id=exchange.answer.id)
    kept = next(v for v in views if v.message.id == exchange.answer.id)
    return ExchangeOut(asked=None, message=message_out(kept))
