"""Conversations (issue 15): a person's chat workspace — the sidebar of their threads, a new
conversation with an agent or a bare model, and one conversation's current branch with its message
box, branch switches, regenerate, rename, pin, archive and delete.

Answers go through the metering gateway (``gateway.conversing``); the thread is re-rendered as an
htmx partial, or the page is reloaded by a redirect when the browser posts a plain form."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from cockpit.agents import service as agents
from cockpit.agents.models import Agent, AgentStatus
from cockpit.console.web import SignedIn, Viewer, discard_changes, path_id, redirect, render
from cockpit.conversations import files as conversation_files
from cockpit.conversations import search, service, sharing
from cockpit.conversations.models import Conversation, ConversationMessage
from cockpit.conversations.schemas import CONTENT_MAX, TITLE_MAX
from cockpit.credits import settings as credit_settings
from cockpit.gateway import conversing
from cockpit.gateway.events import EventStream
from cockpit.kit.errors import CockpitError, InvalidInput
from cockpit.kit.pagination import PageParams
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession
from cockpit.policies.service import feature_allowed
from cockpit.providers import service as providers

router = APIRouter(prefix="/conversations")

SIDEBAR_SIZE = 100
Text = Annotated[str, Query(max_length=200)]


def _conversation_id(value: str) -> uuid.UUID:
    return path_id(value, "conversation_not_found", "No such conversation.")


def _message_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidInput("unknown_message", "No such message in this conversation.") from exc


def _url(conversation_id: uuid.UUID, q: str = "", archived: bool = False) -> str:
    query = urlencode({k: v for k, v in (("q", q), ("archived", "1" if archived else "")) if v})
    return f"/conversations/{conversation_id}" + (f"?{query}" if query else "")


# ---- what the pages show ----


async def _choices(session: DbSession, viewer: Viewer) -> dict[str, Any]:
    """The agents the person may use (the default one first choice) and the enabled chat models."""
    found = await agents.list_agents(
        session, viewer.actor, status=AgentStatus.active, page=PageParams(page=1, per_page=100)
    )
    usable: list[Agent] = list(found.items)
    models = [
        m
        for m in await providers.list_models(session, viewer.actor)
        if m.enabled and "chat" in (m.capabilities or ["chat"])
    ]
    default = next((a for a in usable if a.is_default and a.project_id is None), None)
    default = default or next((a for a in usable if a.is_default), None)
    if default is not None:
        chosen = f"agent:{default.slug}"
    elif usable:
        chosen = f"agent:{usable[0].slug}"
    elif models:
        chosen = f"model:{models[0].name}"
    else:
        chosen = ""
    return {"agents": usable, "models": models, "chosen": chosen}


def grouped_by_date(
    conversations: list[Conversation], tz: tzinfo, now: datetime
) -> list[tuple[str, list[Any]]]:
    """The sidebar's sections: pinned first, then by the day of the last activity (in the account's
    time zone): today, yesterday, the previous 7 and 30 days, then by month."""
    today = now.astimezone(tz).date()
    sections: dict[str, list[Conversation]] = {}
    for conversation in conversations:
        if conversation.pinned:
            label = "Pinned"
        else:
            day = (
                conversation.updated_at.replace(tzinfo=conversation.updated_at.tzinfo or UTC)
                .astimezone(tz)
                .date()
            )
            age = (today - day).days
            if age <= 0:
                label = "Today"
            elif age == 1:
                label = "Yesterday"
            elif age < 7:
                label = "Previous 7 days"
            elif age < 30:
                label = "Previous 30 days"
            else:
                label = day.strftime("%B %Y")
        sections.setdefault(label, []).append(conversation)
    return list(sections.items())


async def _search(session: DbSession, viewer: Viewer, q: str) -> dict[str, Any]:
    """The sidebar as search results: titles and messages (full text), each hit with its snippet."""
    try:
        found = await search.search_conversations(
            session, viewer.actor, q, page=PageParams(page=1, per_page=50)
        )
    except CockpitError as exc:
        return {"hits": [], "hits_total": 0, "search_error": exc.message}
    return {"hits": found.items, "hits_total": found.total, "search_error": None}


async def _sidebar(session: DbSession, viewer: Viewer, q: str, archived: bool) -> dict[str, Any]:
    if q and not archived:
        return {
            **await _search(session, viewer, q), "searching": True, "q": q, "archived": False,
            "sections": [], "conversations": [], "total": 0, "agent_names": {},
            "list_query": urlencode({"q": q}),
        }  # fmt: skip
    found = await service.list_conversations(
        session, viewer.actor, search=q, archived=archived, page=PageParams(page=1, per_page=SIDEBAR_SIZE)
    )
    return {
        "searching": False,
        "sections": grouped_by_date(list(found.items), ZoneInfo(viewer.timezone), utcnow()),
        "conversations": found.items,
        "total": found.total,
        "agent_names": await service.agent_names_of(session, viewer.actor, found.items),
        "q": q,
        "archived": archived,
        "list_query": urlencode({k: v for k, v in (("q", q), ("archived", "1" if archived else "")) if v}),
    }


async def _credits_refusal(
    session: DbSession, viewer: Viewer, conversation: Conversation, last: ConversationMessage | None
) -> dict[str, Any]:
    """When the last answer was refused for want of credits: how many are left, and whether the
    person may ask for more (a "Request credits" button, its form prefilled)."""
    if last is None or last.error_code != "insufficient_credits":
        return {"credits_left": None, "can_request_credits": False, "request_credits_query": ""}
    figures = await credit_settings.my_credits(session, viewer.actor)
    title = conversation.title or "a conversation"
    reason = f"To go on with the conversation “{title[:80]}”."
    return {
        "credits_left": max(figures.remaining, Decimal(0)) if figures is not None else None,
        "can_request_credits": await feature_allowed(session, viewer.actor, "credit_requests.create"),
        "request_credits_query": urlencode({"new": "1", "reason": reason}),
    }


async def _thread(
    session: DbSession,
    viewer: Viewer,
    conversation: Conversation,
    *,
    error: str | None = None,
    draft: str = "",
) -> dict[str, Any]:
    views = await service.messages(session, viewer.actor, conversation.id)
    last = views[-1].message if views else None
    return {
        "conversation": conversation,
        "views": views,
        "last_id": last.id if last is not None else None,
        "regenerate_id": last.id if last is not None and str(last.role) == "assistant" else None,
        **(await _credits_refusal(session, viewer, conversation, last)),
        "error": error,
        "draft": draft,  # the message typed, kept when it could not be sent
        "content_max": CONTENT_MAX,
    }


async def _workspace(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    *,
    q: str,
    archived: bool,
    conversation: Conversation | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        **await _sidebar(session, viewer, q, archived),
        **await _choices(session, viewer),
    }
    context.update(title_max=TITLE_MAX, conversation=None, page_error=None)
    if conversation is not None:
        names = await service.agent_names_of(session, viewer.actor, [conversation])
        context.update(await _thread(session, viewer, conversation, error=error))
        # Administrators' reviews are shown to the owner (the latest; all of them in Share).
        reviews = await sharing.reviews_of(
            session, viewer.actor, conversation.id, page=PageParams(per_page=1)
        )
        latest = reviews.items[0] if reviews.items else None
        reviewer = (await sharing.people_of(session, viewer.actor, [latest.reviewer_id])) if latest else {}
        context["last_review"] = latest
        context["last_reviewer"] = reviewer.get(latest.reviewer_id) if latest and latest.reviewer_id else None
        context["review_count"] = reviews.total
        context["with_name"] = names.get(str(conversation.agent_id)) if conversation.agent_id else None
    else:
        context["page_error"] = error
    return render(request, "conversations/index.html", context, status_code=status_code)


def _archived(value: str) -> bool:
    return value in ("1", "true", "on")


# ---- the workspace ----


@router.get("")
async def conversations_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    q: Text = "",
    archived: Annotated[str, Query(max_length=5)] = "",
) -> Response:
    return await _workspace(request, session, viewer, q=q.strip(), archived=_archived(archived))


@router.get("/deleted")
async def deleted_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    """The person's deleted conversations that can still be restored (purged 30 days after)."""
    found = await service.list_conversations(
        session, viewer.actor, deleted=True, archived=None, page=PageParams(page=1, per_page=SIDEBAR_SIZE)
    )
    now = utcnow()
    left = {
        c.id: max(0, service.RECOVERABLE_DAYS - (now - c.deleted_at).days)
        for c in found.items
        if c.deleted_at is not None
    }
    return render(
        request, "conversations/deleted.html",
        {"conversations": found.items, "total": found.total, "days_left": left,
         "agent_names": await service.agent_names_of(session, viewer.actor, found.items)},
    )  # fmt: skip


@router.post("/{conversation_id}/restore")
async def restore_conversation(
    request: Request, session: DbSession, viewer: SignedIn, conversation_id: str
) -> Response:
    cid = _conversation_id(conversation_id)
    await service.restore_conversation(session, viewer.actor, cid)
    return redirect(request, _url(cid), message="Conversation restored.")


@router.post("")
async def start_conversation(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    target: Annotated[str, Form(alias="with", max_length=300)] = "",
    title: Annotated[str, Form(max_length=TITLE_MAX)] = "",
) -> Response:
    kind, _, name = target.partition(":")
    try:
        if kind not in ("agent", "model") or not name:
            raise InvalidInput("agent_or_model", "Choose an agent or a model for the conversation.")
        conversation = await service.start_conversation(
            session,
            viewer.actor,
            agent=name if kind == "agent" else None,
            model=name if kind == "model" else None,
            title=title or None,
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _workspace(
            request, session, viewer, q="", archived=False, error=exc.message, status_code=exc.status
        )
    return redirect(request, f"/conversations/{conversation.id}")


@router.get("/{conversation_id}")
async def conversation_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    q: Text = "",
    archived: Annotated[str, Query(max_length=5)] = "",
) -> Response:
    conversation = await service.get_conversation(session, viewer.actor, _conversation_id(conversation_id))
    return await _workspace(
        request, session, viewer, q=q.strip(), archived=_archived(archived), conversation=conversation
    )


# ---- the thread: send, regenerate, switch branches ----


def _thread_changed(response: Response) -> Response:
    """The thread as re-rendered, with an event that makes the files panel re-read itself."""
    response.headers["HX-Trigger"] = "cockpit:thread"
    return response


async def _after_thread_change(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    conversation_id: uuid.UUID,
    *,
    error: str | None = None,
    draft: str = "",
) -> Response:
    """htmx: the thread re-rendered (200, so that htmx swaps an error banner in too); a plain form:
    back to the conversation, with the error as a banner."""
    if request.headers.get("hx-request"):
        conversation = await service.get_conversation(session, viewer.actor, conversation_id)
        context = await _thread(session, viewer, conversation, error=error, draft=draft)
        return _thread_changed(render(request, "conversations/_thread.html", context))
    if error:
        return redirect(request, _url(conversation_id), message=error, kind="error")
    return redirect(request, _url(conversation_id))


async def _unsent_files(session: DbSession, viewer: Viewer, conversation_id: uuid.UUID) -> list[uuid.UUID]:
    """The files uploaded in the panel since the last message: they go with the next one."""
    uploaded = await conversation_files.list_files(session, viewer.actor, conversation_id)
    return [f.id for f in uploaded if f.message_id is None]


async def _exchange(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    conversation_id: uuid.UUID,
    *,
    content: str | None = None,
    edit_of: uuid.UUID | None = None,
    regenerate_of: uuid.UUID | None = None,
) -> Response:
    await service.get_conversation(session, viewer.actor, conversation_id)  # 404 before anything else
    try:
        # send() commits the question before the model call (the gateway uses its own sessions).
        exchange = await conversing.send(
            request, session, viewer.actor, conversation_id, content=content, edit_of=edit_of,
            regenerate_of=regenerate_of,
            file_ids=await _unsent_files(session, viewer, conversation_id) if content is not None else (),
        )  # fmt: skip
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _after_thread_change(
            request, session, viewer, conversation_id, error=exc.message, draft=content or ""
        )
    if exchange.failure is not None:
        await session.commit()  # the question and the failed answer are kept
        return await _after_thread_change(
            request, session, viewer, conversation_id, error=exchange.failure.message
        )
    return await _after_thread_change(request, session, viewer, conversation_id)


@router.post("/{conversation_id}/messages")
async def send_message(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    content: Annotated[str, Form(max_length=CONTENT_MAX)] = "",
    edit_of: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A message (``edit_of``: a new version of an earlier message of the person, on a new branch
    beside the old one) and its answer."""
    cid = _conversation_id(conversation_id)
    if not content.strip():
        await service.get_conversation(session, viewer.actor, cid)
        return await _after_thread_change(request, session, viewer, cid, error="Type a message to send.")
    try:
        edited = _message_id(edit_of) if edit_of else None
    except CockpitError as exc:
        await service.get_conversation(session, viewer.actor, cid)
        return await _after_thread_change(request, session, viewer, cid, error=exc.message)
    return await _exchange(request, session, viewer, cid, content=content, edit_of=edited)


@router.post("/{conversation_id}/stream")
async def stream_message(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    content: Annotated[str, Form(max_length=CONTENT_MAX)] = "",
    edit_of: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """The answer as server-sent events (the page's script shows it as it is written; closing the
    request stops it and keeps what had arrived). The events are those of the REST API."""
    cid = _conversation_id(conversation_id)
    if not content.strip():
        raise InvalidInput("content_required", "Type a message to send.")
    edited = _message_id(edit_of) if edit_of else None
    _asked, events = await conversing.send_streamed(
        request, session, viewer.actor, cid, content=content, edit_of=edited,
        file_ids=await _unsent_files(session, viewer, cid),
    )  # fmt: skip
    await session.commit()
    return EventStream(events)


@router.get("/{conversation_id}/thread")
async def thread_partial(
    request: Request, session: DbSession, viewer: SignedIn, conversation_id: str
) -> Response:
    """The current branch alone (the page's script re-reads it when a streamed answer is kept)."""
    conversation = await service.get_conversation(session, viewer.actor, _conversation_id(conversation_id))
    return _thread_changed(
        render(request, "conversations/_thread.html", await _thread(session, viewer, conversation))
    )


@router.post("/{conversation_id}/regenerate")
async def regenerate_answer(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    message_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    cid = _conversation_id(conversation_id)
    try:
        answer_id = _message_id(message_id)
    except CockpitError as exc:
        await service.get_conversation(session, viewer.actor, cid)
        return await _after_thread_change(request, session, viewer, cid, error=exc.message)
    return await _exchange(request, session, viewer, cid, regenerate_of=answer_id)


@router.post("/{conversation_id}/branch")
async def switch_branch(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    message_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Reopen the conversation on the branch through this sibling (the "previous / 2 of 3 / next" control)."""
    cid = _conversation_id(conversation_id)
    try:
        await service.select_branch(session, viewer.actor, cid, _message_id(message_id))
    except CockpitError as exc:
        await discard_changes(session, viewer)
        await service.get_conversation(session, viewer.actor, cid)  # another person's: 404
        return await _after_thread_change(request, session, viewer, cid, error=exc.message)
    return await _after_thread_change(request, session, viewer, cid)


@router.post("/{conversation_id}/approve")
async def decide_approval(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    message_id: Annotated[str, Form(max_length=40)] = "",
    decision: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Run (or decline) the tool calls an answer paused at; the run goes on in the same answer."""
    cid = _conversation_id(conversation_id)
    try:
        if decision not in ("approve", "decline"):
            raise InvalidInput("invalid_decision", "Choose to run the tool or not.")
        exchange = await conversing.decide(
            request, session, viewer.actor, cid, _message_id(message_id), approve=decision == "approve"
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        await service.get_conversation(session, viewer.actor, cid)  # another person's: 404
        return await _after_thread_change(request, session, viewer, cid, error=exc.message)
    if exchange.failure is not None:
        await session.commit()  # the answer keeps what went wrong
        return await _after_thread_change(request, session, viewer, cid, error=exchange.failure.message)
    return await _after_thread_change(request, session, viewer, cid)


# ---- the conversation's actions ----


@router.post("/{conversation_id}/rename")
async def rename_conversation(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    title: Annotated[str, Form(max_length=TITLE_MAX)] = "",
) -> Response:
    cid = _conversation_id(conversation_id)
    try:
        await service.rename_conversation(session, viewer.actor, cid, title=title)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        conversation = await service.get_conversation(session, viewer.actor, cid)
        return await _workspace(
            request, session, viewer, q="", archived=False, conversation=conversation,
            error=exc.message, status_code=exc.status,
        )  # fmt: skip
    return redirect(request, _url(cid), message="Conversation renamed.")


@router.post("/{conversation_id}/pin")
async def pin_conversation(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    pinned: Annotated[str, Form(max_length=5)] = "1",
) -> Response:
    cid = _conversation_id(conversation_id)
    pin = _archived(pinned)
    await service.pin_conversation(session, viewer.actor, cid, pinned=pin)
    return redirect(request, _url(cid), message="Conversation pinned." if pin else "Conversation unpinned.")


@router.post("/{conversation_id}/archive")
async def archive_conversation(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    conversation_id: str,
    archived: Annotated[str, Form(max_length=5)] = "1",
) -> Response:
    cid = _conversation_id(conversation_id)
    archive = _archived(archived)
    await service.archive_conversation(session, viewer.actor, cid, archived=archive)
    message = "Conversation archived." if archive else "Conversation moved back from the archive."
    return redirect(request, _url(cid, archived=archive), message=message)


@router.post("/{conversation_id}/delete")
async def delete_conversation(
    request: Request, session: DbSession, viewer: SignedIn, conversation_id: str
) -> Response:
    cid = _conversation_id(conversation_id)
    await service.delete_conversation(session, viewer.actor, cid)
    return redirect(
        request,
        "/conversations",
        message="Conversation deleted: you can restore it from Deleted for 30 days.",
    )
