"""Answering in a conversation: the person's message is kept, the branch up to it goes to the
conversation's agent (``agent:<slug>``: its instructions and tools) or model through the gateway —
policies, credits and metering as for any call, attributed to the person — and the answer is kept
as the next message, with its tokens, exact cost and credits. A refused or failed call is kept as an
answer with status ``error`` (nothing was charged for it) and its reason is raised to the caller."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from cockpit.agents import service as agents
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.conversations import approvals
from cockpit.conversations import files as conversation_files
from cockpit.conversations import service as conversations
from cockpit.conversations.models import ConversationMessage, MessageStatus, Role
from cockpit.conversations.schemas import message_out
from cockpit.gateway.agent_run import AGENT_PREFIX
from cockpit.gateway.directory import Caller
from cockpit.gateway.errors import GatewayError
from cockpit.gateway.internal import Pause, cockpit_error, complete_for, stream_for
from cockpit.gateway.service import Gateway
from cockpit.gateway.titling import suggest_title
from cockpit.gateway.wizard import caller_of
from cockpit.kit.errors import CockpitError, InvalidInput


@dataclass
class Exchange:
    asked: ConversationMessage | None  # None when an answer was regenerated
    answer: ConversationMessage
    failure: CockpitError | None = None  # the call was refused or failed (the answer says so)


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


async def _model_of(session: AsyncSession, actor: Actor, conversation: Any, gateway: Gateway) -> str:
    """``agent:<slug>`` or the model's name. The agent's slug comes from the gateway's catalogue of
    the account (in memory) when it is there: no round trip before the first token."""
    if conversation.agent_id is not None:
        catalog = gateway.directory.cached_catalog(actor.account_id)
        agents_known = catalog.agents.values() if catalog is not None else ()
        known = next((a for a in agents_known if a.id == conversation.agent_id), None)
        if known is not None:
            return AGENT_PREFIX + known.slug
        agent = await agents.get_agent(session, actor, conversation.agent_id)
        return AGENT_PREFIX + agent.slug
    return str(conversation.model)


@dataclass
class Turn:
    """A question ready to be answered: the person's message kept, the branch up to it."""

    conversation_id: uuid.UUID
    asked: ConversationMessage | None
    question: uuid.UUID
    model: str
    caller: Caller
    history: list[dict[str, Any]]
    # The model whose answer titles the conversation: set for the first exchange of an untitled one.
    title_model: str = ""


async def _turn(
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    *,
    content: str | None,
    parent_id: uuid.UUID | None,
    edit_of: uuid.UUID | None,
    regenerate_of: uuid.UUID | None,
    gateway: Gateway,
    file_ids: Sequence[uuid.UUID] = (),
    settings: Settings | None = None,
    commit: bool = True,
) -> Turn:
    """The question kept (``commit``) and what its answer needs. Without ``commit`` a plain new
    message is not written yet either: the caller starts the model call, then commits — the question
    is written while the model starts (the time to first token does not wait for it)."""
    conversation = await conversations.get_conversation(session, actor, conversation_id)
    if not commit and regenerate_of is None and not file_ids and content is not None:
        return await _turn_deferred(
            session, actor, conversation, content=content, parent_id=parent_id, edit_of=edit_of,
            gateway=gateway, settings=settings,
        )  # fmt: skip
    asked: ConversationMessage | None = None
    if regenerate_of is not None:
        views = await conversations.messages(session, actor, conversation.id, leaf_id=regenerate_of)
        target = views[-1].message if views else None
        if target is None or target.id != regenerate_of or target.role is not Role.assistant:
            raise InvalidInput("unknown_answer", "regenerate_of must be an answer of this conversation.")
        assert target.parent_id is not None
        question = target.parent_id
    else:
        if content is None:
            raise InvalidInput("content_required", "Send the message's content.")
        asked = await conversations.add_user_message(
            session, actor, conversation.id, content=content, parent_id=parent_id, edit_of=edit_of
        )
        question = asked.id
        if file_ids:  # the files uploaded for it go with the message (as context for the model)
            await conversation_files.attach(session, actor, conversation.id, list(file_ids), asked.id)
    history = await conversations.history(
        session, actor, conversation.id, leaf_id=question, settings=settings
    )
    model = await _model_of(session, actor, conversation, gateway)
    caller = await caller_of(session, actor)
    first = asked is not None and asked.parent_id is None and not conversation.title
    if commit:  # the question is kept; the gateway uses its own sessions (one SQLite writer)
        await session.commit()
    return Turn(conversation.id, asked, question, model, caller, history, conversation.model if first else "")


async def _turn_deferred(
    session: AsyncSession,
    actor: Actor,
    conversation: Any,
    *,
    content: str,
    parent_id: uuid.UUID | None,
    edit_of: uuid.UUID | None,
    gateway: Gateway,
    settings: Settings | None,
) -> Turn:
    """A new message checked and added to the session but not written: the branch up to its parent
    is read without flushing it, and the question is appended to the model's messages."""
    asked = await conversations.add_user_message(
        session, actor, conversation.id, content=content, parent_id=parent_id, edit_of=edit_of, flush=False
    )
    with session.no_autoflush:
        history = (
            await conversations.history(
                session, actor, conversation.id, leaf_id=asked.parent_id, settings=settings
            )
            if asked.parent_id is not None
            else []
        )
        caller = await caller_of(session, actor)
    history.append({"role": "user", "content": content})
    model = await _model_of(session, actor, conversation, gateway)
    first = asked.parent_id is None and not conversation.title
    return Turn(conversation.id, asked, asked.id, model, caller, history, conversation.model if first else "")


async def _title(gateway: Gateway, turn: Turn, answer: str) -> str:
    """A title suggested from the first exchange ("" when it is not the first, or none came)."""
    if not turn.title_model or turn.asked is None:
        return ""
    return await suggest_title(gateway, turn.caller, turn.title_model, turn.asked.content, answer)


async def send(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    *,
    content: str | None = None,
    parent_id: uuid.UUID | None = None,
    edit_of: uuid.UUID | None = None,
    regenerate_of: uuid.UUID | None = None,
    file_ids: Sequence[uuid.UUID] = (),
) -> Exchange:
    """A message and its answer (``regenerate_of`` an answer: a new answer beside it, to the same
    message)."""
    turn = await _turn(
        session, actor, conversation_id, content=content, parent_id=parent_id, edit_of=edit_of,
        regenerate_of=regenerate_of, gateway=request.app.state.gateway, file_ids=file_ids,
        settings=request.app.state.settings,
    )  # fmt: skip
    gateway: Gateway = request.app.state.gateway
    try:
        body = {"model": turn.model, "messages": turn.history}
        answer = await complete_for(gateway, turn.caller, body, pause=Pause())
    except GatewayError as exc:
        failure = cockpit_error(exc)
        kept = await conversations.add_assistant_message(
            session, actor, turn.conversation_id, parent_id=turn.question, content="",
            status=MessageStatus.error, error=exc.message, error_code=exc.code, model=turn.model,
        )  # fmt: skip
        return Exchange(turn.asked, kept, failure)
    text = str(answer["choices"][0]["message"].get("content") or "")
    fields = _outcome(answer)
    # Before the answer is written: no write of this session is pending while the gateway calls.
    title = await _title(gateway, turn, text) if fields["status"] is MessageStatus.complete else ""
    kept = await conversations.add_assistant_message(
        session, actor, turn.conversation_id, parent_id=turn.question, content=text, model=turn.model,
        **fields,
    )  # fmt: skip
    if title:
        await conversations.suggest_title(session, actor, turn.conversation_id, title=title)
    return Exchange(turn.asked, kept)


async def _chained(
    head: asyncio.Future[tuple[str, Any]], rest: AsyncIterator[tuple[str, Any]]
) -> AsyncIterator[tuple[str, Any]]:
    """The stream's first item (already asked for), then the rest."""
    try:
        yield await head
    except StopAsyncIteration:
        return
    async for item in rest:
        yield item


def _spent(pause: Pause) -> dict[str, Any]:
    """What a stopped run's calls were recorded with so far: tokens, cost, credits, tool steps."""
    run = pause.run
    if run is None:
        return {}
    return {
        "input_tokens": run.usage[0], "output_tokens": run.usage[1], "cost_usd": run.cost_usd,
        "credits": run.credits, "tool_steps": list(run.steps),
    }  # fmt: skip


def _outcome(completion: dict[str, Any]) -> dict[str, Any]:
    """An answer's fields from its run's completion: tokens, the cost and credits its calls were
    recorded with, tool steps, and whether it paused for the person's approval of a tool call."""
    usage = completion.get("usage") or {}
    extra = completion.get("cockpit") or {}
    paused = completion["choices"][0].get("finish_reason") == "approval_required"
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cost_usd": _decimal(extra.get("cost_usd")),
        "credits": _decimal(extra.get("credits")),
        "tool_steps": list(extra.get("steps") or []),
        "status": MessageStatus.awaiting_approval if paused else MessageStatus.complete,
        "pending": extra.get("pending") if paused else None,
    }


async def decide(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    *,
    approve: bool,
) -> Exchange:
    """The person's decision on the tool calls an answer paused at: approved, they run (metered and
    charged like any tool call); declined, the agent is told so. Either way the run goes on and its
    continuation is added to the same answer. A decision is taken once (Conflict after)."""
    paused, pending = await approvals.claim_pending(session, actor, conversation_id, message_id)
    assert paused.parent_id is not None
    conversation = await conversations.get_conversation(session, actor, conversation_id)
    history = await conversations.history(
        session, actor, conversation_id, leaf_id=paused.parent_id, settings=request.app.state.settings
    )
    model = await _model_of(session, actor, conversation, request.app.state.gateway)
    caller = await caller_of(session, actor)
    await session.commit()  # claimed: no one else runs these calls
    calls = [c for c in pending.get("calls") or [] if isinstance(c, dict)]
    pause = Pause(resume=pending, decisions={str(c.get("id")): approve for c in calls})
    gateway: Gateway = request.app.state.gateway
    try:
        answer = await complete_for(gateway, caller, {"model": model, "messages": history}, pause=pause)
    except GatewayError as exc:
        kept = await approvals.continue_answer(
            session, actor, conversation_id, paused.id, content="", status=MessageStatus.error,
            error=exc.message, error_code=exc.code,
        )  # fmt: skip
        return Exchange(None, kept, cockpit_error(exc))
    text = str(answer["choices"][0]["message"].get("content") or "")
    kept = await approvals.continue_answer(
        session, actor, conversation_id, paused.id, content=text, **_outcome(answer)
    )
    return Exchange(None, kept)


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, default=str, separators=(",", ":")).encode() + b"\n\n"


async def send_streamed(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    *,
    content: str | None = None,
    parent_id: uuid.UUID | None = None,
    edit_of: uuid.UUID | None = None,
    regenerate_of: uuid.UUID | None = None,
    file_ids: Sequence[uuid.UUID] = (),
) -> tuple[ConversationMessage | None, AsyncIterator[bytes]]:
    """The message kept now, and its answer as server-sent events (JSON ``data`` lines):
    ``{"type": "delta", "content"}`` as the model writes, ``{"type": "tool_step", "step"}`` as a tool
    call ends, then ``{"type": "message", "message"}`` (the answer as kept, as in the JSON reply) and
    ``{"type": "error", "error": {"code", "message"}}`` when the call was refused or failed; then
    ``[DONE]``. A caller that goes away stops the answer: what had arrived is kept (status
    ``stopped``)."""
    gateway: Gateway = request.app.state.gateway
    turn = await _turn(
        session, actor, conversation_id, content=content, parent_id=parent_id, edit_of=edit_of,
        regenerate_of=regenerate_of, gateway=gateway, file_ids=file_ids,
        settings=request.app.state.settings, commit=False,
    )  # fmt: skip
    sessionmaker = request.app.state.sessionmaker
    pause = Pause()
    body = {"model": turn.model, "messages": turn.history, "stream": True}
    answer = stream_for(gateway, turn.caller, body, pause=pause)
    # The model call starts now; the question is written meanwhile (it is kept before the answer is).
    head = asyncio.ensure_future(anext(answer))
    try:
        await session.commit()
    except BaseException:
        head.cancel()
        with contextlib.suppress(BaseException):
            await head
        with contextlib.suppress(BaseException):
            await answer.aclose()
        raise

    async def keep(**fields: Any) -> dict[str, Any]:
        async with sessionmaker() as fresh:
            kept = await conversations.add_assistant_message(
                fresh, actor, turn.conversation_id, parent_id=turn.question, model=turn.model, **fields
            )
            views = await conversations.messages(fresh, actor, turn.conversation_id, leaf_id=kept.id)
            out = message_out(next(v for v in views if v.message.id == kept.id)).model_dump(mode="json")
            await fresh.commit()
        return out

    async def events() -> AsyncIterator[bytes]:
        parts: list[str] = []
        final: dict[str, Any] | None = None
        failure: GatewayError | None = None
        ended = False
        try:
            try:
                async for kind, value in _chained(head, answer):
                    if kind == "delta":
                        parts.append(value)
                        yield _event({"type": "delta", "content": value})
                    elif kind == "step":
                        yield _event({"type": "tool_step", "step": value})
                    else:
                        final = value
            except GatewayError as exc:
                failure = exc
            ended = True
        finally:
            if not ended:  # the caller went away: what had arrived is kept, with what it cost
                with contextlib.suppress(BaseException):
                    if not head.done():  # gone before the first token: the call is stopped
                        head.cancel()
                        await asyncio.wait([head])
                with contextlib.suppress(Exception):
                    await answer.aclose()  # the stopped call is recorded (and settled) now
                    await keep(content="".join(parts), status=MessageStatus.stopped, **_spent(pause))
        if failure is not None:
            message = await keep(
                content="".join(parts), status=MessageStatus.error, error=failure.message,
                error_code=failure.code,
            )  # fmt: skip
            yield _event({"type": "message", "message": message})
            yield _event({"type": "error", "error": {"code": failure.code, "message": failure.message}})
        else:
            assert final is not None
            message = await keep(content="".join(parts), **_outcome(final))
            yield _event({"type": "message", "message": message})
            title = await _title(gateway, turn, message["content"]) if message["status"] == "complete" else ""
            if title:
                async with sessionmaker() as fresh:
                    titled = await conversations.suggest_title(
                        fresh, actor, turn.conversation_id, title=title
                    )
                    await fresh.commit()
                yield _event({"type": "title", "title": titled.title})
        yield b"data: [DONE]\n\n"

    return turn.asked, events()
