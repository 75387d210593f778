"""Sharing, administrator review, export and forking of conversations (issue 15).

Registered before ``api.conversations``: ``/conversations/shared`` and ``/conversations/review`` are
not conversation ids. A person a conversation is shared with reads it through the GET routes of
``api.conversations``; any change by them is a 404, as for anyone else's conversation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status

from cockpit.auth.dependencies import ApiActor
from cockpit.conversations import history, service, sharing
from cockpit.conversations.models import Conversation
from cockpit.conversations.schemas import ConversationOut, conversation_out
from cockpit.conversations.sharing_schemas import (
    ForkIn,
    OthersConversationList,
    OthersConversationOut,
    ReviewList,
    ReviewOut,
    ShareIn,
    ShareList,
    ShareOut,
)
from cockpit.kit.pagination import PageMeta, PageParams, page_params
from cockpit.kit.web import DbSession

router = APIRouter(prefix="/conversations", tags=["conversations"])

Paging = Annotated[PageParams, Depends(page_params)]
DELETED_USER = "deleted user"


async def _others(
    session: DbSession, actor: ApiActor, conversations: Sequence[Conversation], access: str
) -> list[OthersConversationOut]:
    names = await service.agent_names_of(session, actor, conversations)
    owners = await sharing.people_of(session, actor, [c.user_id for c in conversations])
    return [
        OthersConversationOut(
            **conversation_out(c, names, access).model_dump(),
            owner_id=c.user_id,
            owner=owners[c.user_id].display_name if c.user_id in owners else DELETED_USER,
        )
        for c in conversations
    ]


@router.get("/shared", response_model=OthersConversationList)
async def shared_with_me(
    session: DbSession,
    actor: ApiActor,
    paging: Paging,
    search: Annotated[str | None, Query(max_length=200, description="Title contains")] = None,
) -> OthersConversationList:
    """The conversations others of the account shared with the caller (read-only), the latest
    activity first (paged)."""
    page = await sharing.shared_with_me(session, actor, search=search, page=paging)
    items = await _others(session, actor, page.items, sharing.SHARED)
    return OthersConversationList(items=items, meta=PageMeta.of(page))


@router.get("/review", response_model=OthersConversationList)
async def conversations_to_review(
    session: DbSession,
    actor: ApiActor,
    paging: Paging,
    user_id: Annotated[uuid.UUID | None, Query(description="One person's conversations")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Title contains")] = None,
) -> OthersConversationList:
    """For reviewers (``conversations:review``) when the organisation allows review: the account's
    conversations, the latest activity first (403 ``conversation_review_off`` when it does not).
    Listing is not a review; reading one (``GET /conversations/{id}``, its messages, an export) is,
    and is recorded."""
    page = await sharing.conversations_to_review(session, actor, user_id=user_id, search=q, page=paging)
    items = await _others(session, actor, page.items, sharing.REVIEW)
    return OthersConversationList(items=items, meta=PageMeta.of(page))


@router.post("/{conversation_id}/branch", response_model=ConversationOut, status_code=status.HTTP_201_CREATED)
async def branch_into_new_thread(
    conversation_id: uuid.UUID, body: ForkIn, session: DbSession, actor: ApiActor
) -> ConversationOut:
    """A new conversation of the caller with a copy of the branch from the first message down to
    ``message_id`` (reopened on it); the original is not changed. For the owner and the people it
    is shared with."""
    copy = await history.fork_conversation(session, actor, conversation_id, body.message_id)
    return conversation_out(copy, await service.agent_names_of(session, actor, [copy]))


@router.get(
    "/{conversation_id}/export",
    responses={200: {"content": {"text/markdown": {}, "application/json": {}}}},
    response_class=Response,
)
async def export_conversation(
    conversation_id: uuid.UUID,
    session: DbSession,
    actor: ApiActor,
    format: Annotated[Literal["md", "json"], Query(description="md (Markdown) or json")] = "md",
    tree: Annotated[
        bool, Query(description="JSON only: every message of the tree, not just the branch")
    ] = False,
) -> Response:
    """The current branch (or, in JSON, the whole tree) as a file to download."""
    export = await history.export_conversation(session, actor, conversation_id, fmt=format, whole_tree=tree)
    return Response(
        content=export.content,
        media_type=export.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.get("/{conversation_id}/shares", response_model=ShareList)
async def list_shares(conversation_id: uuid.UUID, session: DbSession, actor: ApiActor) -> ShareList:
    """For the owner: the people the conversation is shared with."""
    shares = await sharing.shares_of(session, actor, conversation_id)
    people = await sharing.people_of(session, actor, [s.user_id for s in shares])
    items = [
        ShareOut(
            user_id=s.user_id,
            user=people[s.user_id].display_name if s.user_id in people else DELETED_USER,
            email=people[s.user_id].email if s.user_id in people else "",
            shared_by=s.shared_by,
            created_at=s.created_at,
        )
        for s in shares
    ]
    return ShareList(items=items)


@router.post("/{conversation_id}/shares", response_model=ShareOut, status_code=status.HTTP_201_CREATED)
async def share_conversation(
    conversation_id: uuid.UUID, body: ShareIn, session: DbSession, actor: ApiActor
) -> ShareOut:
    """Share the caller's conversation read-only with an active person of the same account
    (access policy feature ``conversations.share``). 422 ``unknown_user`` for anyone else (another
    account's person included), 409 when it is shared with them already."""
    share = await sharing.share_conversation(session, actor, conversation_id, body.user_id)
    person = (await sharing.people_of(session, actor, [share.user_id]))[share.user_id]
    return ShareOut(
        user_id=share.user_id, user=person.display_name, email=person.email, shared_by=share.shared_by,
        created_at=share.created_at,
    )  # fmt: skip


@router.delete("/{conversation_id}/shares/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unshare_conversation(
    conversation_id: uuid.UUID, user_id: uuid.UUID, session: DbSession, actor: ApiActor
) -> Response:
    await sharing.unshare_conversation(session, actor, conversation_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{conversation_id}/reviews", response_model=ReviewList)
async def list_reviews(
    conversation_id: uuid.UUID, session: DbSession, actor: ApiActor, paging: Paging
) -> ReviewList:
    """For the owner: each time an administrator opened the conversation to review it."""
    page = await sharing.reviews_of(session, actor, conversation_id, page=paging)
    people = await sharing.people_of(session, actor, [r.reviewer_id for r in page.items])
    items = [
        ReviewOut(
            reviewer_id=r.reviewer_id,
            reviewer=people[r.reviewer_id].display_name
            if r.reviewer_id is not None and r.reviewer_id in people
            else DELETED_USER,
            created_at=r.created_at,
        )
        for r in page.items
    ]
    return ReviewList(items=items, meta=PageMeta.of(page))
