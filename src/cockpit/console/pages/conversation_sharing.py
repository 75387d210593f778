"""Sharing, review, export and forking of conversations in the console (issue 15).

Registered before the conversations page: ``/conversations/shared`` and ``/conversations/review``
are not conversation ids. The conversations page links here:

- ``GET /conversations/{id}/share-panel[?q=]``: the share dialog (a partial: people of the account
  to pick, current shares with Remove, the reviews of the conversation);
- ``POST /conversations/{id}/shares`` (``user_id``) and ``POST /conversations/{id}/shares/{user_id}/remove``;
- ``POST /conversations/{id}/fork`` (``message_id``; empty: the end of the current branch);
- ``GET /conversations/{id}/export.md`` and ``GET /conversations/{id}/export.json[?tree=1]``;
- ``GET /conversations/shared[/{id}]``: what others shared with me, read-only;
- ``GET /conversations/review[/{id}]``: administrators' review (each opening is recorded).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from cockpit.authz.permissions import Permission
from cockpit.console.web import SignedIn, Viewer, discard_changes, path_id, redirect, render
from cockpit.conversations import history, service, sharing
from cockpit.conversations.models import Conversation
from cockpit.kit.errors import CockpitError, InvalidInput, NotFound
from cockpit.kit.pagination import PageParams
from cockpit.kit.web import DbSession
from cockpit.policies import service as policies
from cockpit.users import service as users

router = APIRouter(prefix="/conversations")

LIST_SIZE = 100
Text = Annotated[str, Query(max_length=200)]


def _cid(value: str) -> uuid.UUID:
    return path_id(value, "conversation_not_found", "No such conversation.")


def _form_id(value: str, code: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError as exc:
        raise InvalidInput(code, message) from exc


def _download(export: history.Export) -> Response:
    return Response(
        content=export.content,
        media_type=export.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


async def _thread_context(session: DbSession, viewer: Viewer, conversation: Conversation) -> dict[str, Any]:
    """A conversation's current branch, read-only, with its agent's and owner's names."""
    views = await service.messages(session, viewer.actor, conversation.id)
    names = await service.agent_names_of(session, viewer.actor, [conversation])
    owners = await sharing.people_of(session, viewer.actor, [conversation.user_id])
    return {
        "conversation": conversation,
        "views": views,
        "with_name": names.get(str(conversation.agent_id)) if conversation.agent_id else None,
        "owner": owners[conversation.user_id].display_name
        if conversation.user_id in owners
        else "deleted user",
    }


async def _owners(
    session: DbSession, viewer: Viewer, conversations: Sequence[Conversation]
) -> dict[str, str]:
    people = await sharing.people_of(session, viewer.actor, [c.user_id for c in conversations])
    return {str(k): v.display_name for k, v in people.items()}


# ---- shared with me ----


async def _shared_page(
    request: Request, session: DbSession, viewer: Viewer, q: str, conversation: Conversation | None
) -> Response:
    found = await sharing.shared_with_me(
        session, viewer.actor, search=q, page=PageParams(page=1, per_page=LIST_SIZE)
    )
    context: dict[str, Any] = {
        "conversations": found.items,
        "total": found.total,
        "owners": await _owners(session, viewer, found.items),
        "agent_names": await service.agent_names_of(session, viewer.actor, found.items),
        "q": q,
        "conversation": None,
    }
    if conversation is not None:
        context.update(await _thread_context(session, viewer, conversation))
    return render(request, "conversations/shared.html", context)


@router.get("/shared")
async def shared_page(request: Request, session: DbSession, viewer: SignedIn, q: Text = "") -> Response:
    return await _shared_page(request, session, viewer, q.strip(), None)


@router.get("/shared/{conversation_id}")
async def shared_conversation_page(
    request: Request, session: DbSession, viewer: SignedIn, conversation_id: str, q: Text = ""
) -> Response:
    cid = _cid(conversation_id)
    try:
        conversation = await sharing.shared_conversation(session, viewer.actor, cid)
    except NotFound:
        # One's own conversation opens in the workspace; anything else is a 404 (never a review).
        own = await service.get_conversation(session, viewer.actor, cid)
        return redirect(request, f"/conversations/{own.id}")
    return await _shared_page(request, session, viewer, q.strip(), conversation)


# ---- review ----


async def _review_page(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    *,
    q: str,
    user: str,
    page: int,
    conversation: Conversation | None = None,
) -> Response:
    viewer.actor.require(Permission.conversations_review)
    enabled = await sharing.review_enabled(session, viewer.actor.account_id)
    context: dict[str, Any] = {"enabled": enabled, "q": q, "user": user, "conversation": None}
    if enabled:
        user_id = None
        if user:
            try:
                user_id = uuid.UUID(user)
            except ValueError:
                user_id = None
        found = await sharing.conversations_to_review(
            session, viewer.actor, user_id=user_id, search=q, page=PageParams(page=page, per_page=LIST_SIZE)
        )
        context.update(
            page=found,
            conversations=found.items,
            owners=await _owners(session, viewer, found.items),
            agent_names=await service.agent_names_of(session, viewer.actor, found.items),
            people=await users.list_all(session, viewer.actor.account_id, by_name=True, limit=1000),
            base_query=urlencode({k: v for k, v in (("q", q), ("user", user)) if v}),
        )
        if conversation is not None:
            context.update(await _thread_context(session, viewer, conversation))
    return render(request, "conversations/review.html", context)


@router.get("/review")
async def review_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    q: Text = "",
    user: Annotated[str, Query(max_length=40)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    return await _review_page(request, session, viewer, q=q.strip(), user=user, page=page)


@router.get("/review/{conversation_id}")
async def review_conversation_page(
    request: Request, session: DbSession, viewer: SignedIn, conversation_id: str, q: Text = ""
) -> Response:
    """One conversation, read-only; opening it as a reviewer records the review (audit entry and a
    row its owner sees)."""
    viewer.actor.require(Permission.conversations_review)
    conversation, access = await service.readable_conversation(session, viewer.actor, _cid(conversation_id))
    if access == sharing.OWNER:
        return redirect(request, f"/conversations/{conversation.id}")
    return await _review_page(
        request, session, viewer, q=q.strip(), user="", page=1, conversation=conversation
    )


# ---- the share dialog ----


async def _panel(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    conversation_id: uuid.UUID,
    *,
    q: str = "",
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    conversation = await service.get_conversation(session, viewer.actor, conversation_id)
    shares = await sharing.shares_of(session, viewer.actor, conversation.id)
    reviews = await sharing.reviews_of(session, viewer.actor, conversation.id, page=PageParams(per_page=20))
    people = await sharing.people_of(
        session, viewer.actor, [s.user_id for s in shares] + [r.reviewer_id for r in reviews.items]
    )
    context = {
        "conversation": conversation,
        "can_share": await policies.feature_allowed(session, viewer.actor, sharing.SHARE_FEATURE),
        "candidates": await sharing.people_to_share_with(session, viewer.actor, conversation.id, search=q),
        "shares": shares,
        "reviews": reviews,
        "people": {str(k): v for k, v in people.items()},
        "q": q,
        "error": error,
        "notice": notice,
    }
    return render(request, "conversations/_share.html", context, status_code=status_code)


@router.get("/{conversation_id}/share-panel")
async def share_panel(
    request: Request, session: DbSession, viewer: SignedIn, conversation_id: str, q: Text = ""
) -> Response:
    return await _panel(request, session, viewer, _cid(conversation_id), q=q.strip())


async def _after_share_change(
    request: Request, session: DbSession, viewer: Viewer, cid: uuid.UUID, *, error: str | None, notice: str
) -> Response:
    if request.headers.get("hx-request"):
        return await _panel(request, session, viewer, cid, error=error, notice=None if error else notice)
    if error:
        return redirect(request, f"/conversations/{cid}", message=error, kind="error")
    return redirect(request, f"/conversations/{cid}", message=notice)


@router.post("/{conversation_id}/shares")
async def share_conversation(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    user_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    cid = _cid(conversation_id)
    await service.get_conversation(session, viewer.actor, cid)  # another person's: 404
    try:
        person = _form_id(user_id, "unknown_user", "Choose a person to share the conversation with.")
        await sharing.share_conversation(session, viewer.actor, cid, person)
        name = (await sharing.people_of(session, viewer.actor, [person]))[person].display_name
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _after_share_change(request, session, viewer, cid, error=exc.message, notice="")
    return await _after_share_change(
        request, session, viewer, cid, error=None, notice=f"Shared read-only with {name}."
    )


@router.post("/{conversation_id}/shares/{user_id}/remove")
async def unshare_conversation(
    request: Request, session: DbSession, viewer: SignedIn, conversation_id: str, user_id: str
) -> Response:
    cid = _cid(conversation_id)
    await service.get_conversation(session, viewer.actor, cid)
    try:
        person = _form_id(user_id, "share_not_found", "The conversation is not shared with this person.")
        await sharing.unshare_conversation(session, viewer.actor, cid, person)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _after_share_change(request, session, viewer, cid, error=exc.message, notice="")
    return await _after_share_change(request, session, viewer, cid, error=None, notice="No longer shared.")


# ---- branch into a new thread, export ----


@router.post("/{conversation_id}/fork")
async def fork_conversation(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    message_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A new conversation with the branch down to ``message_id`` (empty: the end of the current
    branch); then that conversation is opened."""
    cid = _cid(conversation_id)
    conversation, access = await service.readable_conversation(session, viewer.actor, cid)
    back = f"/conversations/{cid}" if access == sharing.OWNER else f"/conversations/shared/{cid}"
    try:
        if message_id.strip():
            message = _form_id(message_id, "message_not_found", "No such message in this conversation.")
        else:
            views = await service.messages(session, viewer.actor, conversation.id)
            if not views:
                raise InvalidInput("empty_conversation", "There is no message to branch from yet.")
            message = views[-1].message.id
        copy = await history.fork_conversation(session, viewer.actor, cid, message)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return redirect(request, back, message=exc.message, kind="error")
    return redirect(request, f"/conversations/{copy.id}", message="Branched into a new conversation.")


@router.get("/{conversation_id}/export.md")
async def export_markdown(
    request: Request, session: DbSession, viewer: SignedIn, conversation_id: str
) -> Response:
    return _download(
        await history.export_conversation(session, viewer.actor, _cid(conversation_id), fmt="md")
    )


@router.get("/{conversation_id}/export.json")
async def export_json(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    tree: Annotated[str, Query(max_length=5)] = "",
) -> Response:
    whole = tree in ("1", "true", "on")
    return _download(
        await history.export_conversation(
            session, viewer.actor, _cid(conversation_id), fmt="json", whole_tree=whole
        )
    )
