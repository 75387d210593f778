"""Answers paused for the person's approval: an agent's run that reached a tool marked "ask before
running" is kept with status ``awaiting_approval`` and what resumes it (``pending``). The person's
decision claims the pause once — two clicks, two tabs or two workers cannot run the tool twice —
and the run's continuation is added to the same answer."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import repository
from cockpit.conversations.models import ConversationMessage, MessageStatus, Role
from cockpit.conversations.schemas import ERROR_MAX
from cockpit.conversations.service import access_conversation
from cockpit.kit.errors import Conflict, NotFound
from cockpit.kit.text import storable, storable_json
from cockpit.kit.time import utcnow


async def claim_pending(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> tuple[ConversationMessage, dict[str, Any]]:
    """The caller's paused answer and what resumes it, claimed: the answer is marked ``stopped``
    (what it is if the run never comes back) until the run's continuation is kept. Conflict when it
    is not waiting (any more) for a decision."""
    conversation = await access_conversation(session, actor, conversation_id)
    message = await repository.get_message(session, conversation.id, message_id)
    if message is None or message.role is not Role.assistant:
        raise NotFound("message_not_found", "No such answer in this conversation.")
    pending = message.pending
    if message.status is not MessageStatus.awaiting_approval or not isinstance(pending, dict):
        raise Conflict("nothing_to_approve", "This answer is not waiting for your approval.")
    claimed = await session.execute(
        update(ConversationMessage)
        .where(
            ConversationMessage.id == message.id,
            ConversationMessage.conversation_id == conversation.id,
            ConversationMessage.status == MessageStatus.awaiting_approval,
        )
        .values(status=MessageStatus.stopped, pending=None)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise Conflict("nothing_to_approve", "This answer was decided already.")
    await session.refresh(message)
    return message, pending


async def continue_answer(
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    *,
    content: str,
    status: MessageStatus,
    error: str | None = None,
    error_code: str | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: Decimal = Decimal(0),
    credits: Decimal = Decimal(0),
    tool_steps: list[dict[str, Any]] | None = None,
    pending: dict[str, Any] | None = None,
) -> ConversationMessage:
    """The resumed run's text, tool steps, tokens and cost added to the paused answer; its status is
    the run's (paused again when it reached another such tool)."""
    conversation = await access_conversation(session, actor, conversation_id)
    message = await repository.get_message(session, conversation.id, message_id)
    if message is None:
        raise NotFound("message_not_found", "No such answer in this conversation.")
    message.content = message.content + storable(content)
    message.status = status
    message.error = storable(error)[:ERROR_MAX] if error is not None else None
    message.error_code = storable(error_code)[:64] if error_code else None
    message.input_tokens += max(0, input_tokens)
    message.output_tokens += max(0, output_tokens)
    message.cost_usd += cost_usd
    message.credits += credits
    message.tool_steps = [*(message.tool_steps or []), *storable_json(list(tool_steps or []))]
    message.pending = storable_json(pending) if pending is not None else None
    conversation.updated_at = utcnow()
    await session.flush()
    return message
