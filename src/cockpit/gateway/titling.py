"""A title for a new conversation, suggested from its first exchange by a small model call.

The call is the person's like any other (policies, credits, metering: it shows in the request log as
theirs); it uses ``COCKPIT_CONVERSATION_TITLE_MODEL`` when set (a small, cheap model), else the
conversation's own model (an agent's model, without its instructions or tools). A title is a nicety:
a refused or failed call leaves the conversation untitled and never fails the answer."""

from __future__ import annotations

import logging
import re
from typing import Any

from cockpit.gateway.directory import Caller
from cockpit.gateway.errors import GatewayError
from cockpit.gateway.internal import complete_for
from cockpit.gateway.service import Gateway

log = logging.getLogger(__name__)

PROMPT = (
    "Write a short title (at most six words) for the conversation below. Answer with the title "
    "only: no quotes, no final punctuation."
)
TITLE_LENGTH = 60
# What of the exchange the model reads (a title needs the gist, not the whole).
EXCERPT = 2_000
_SPACES = re.compile(r"\s+")
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"  # straight, curly and angle quotes


def clean_title(text: str) -> str:
    """The model's answer as a title: its first line, without quotes, markup or a final stop."""
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    line = line.strip()
    if line[:6].lower() == "title:":
        line = line[6:]
    line = _SPACES.sub(" ", line).strip().strip("#*_` ").strip(_QUOTES)
    line = line.split(". ", 1)[0].rstrip(".!:;,").strip()  # one sentence at most
    if len(line) > TITLE_LENGTH:
        line = line[: TITLE_LENGTH - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return line


async def suggest_title(gateway: Gateway, caller: Caller, model: str, question: str, answer: str) -> str:
    """A title for the exchange, or "" when no title could be had."""
    chosen = gateway.settings.conversation_title_model or model
    if not chosen or not question.strip():
        return ""
    body: dict[str, Any] = {
        "model": chosen,
        "messages": [
            {"role": "system", "content": PROMPT},
            {"role": "user", "content": f"Question:\n{question[:EXCERPT]}\n\nAnswer:\n{answer[:EXCERPT]}"},
        ],
        "max_tokens": 24,
    }
    try:
        reply = await complete_for(gateway, caller, body)
    except GatewayError as exc:
        log.info("no title suggested for a conversation: %s", exc.code)
        return ""
    except Exception:  # a title must never fail the answer it follows
        log.exception("no title suggested for a conversation")
        return ""
    choices = reply.get("choices") or [{}]
    content = (choices[0].get("message") or {}).get("content")
    return clean_title(content) if isinstance(content, str) else ""
