"""Who may send a request body, and how large, decided before a byte of it is read.

Used by ``kit.guard.InputGuard`` in front of the console and the REST API:

- REST API (``/api/…``): a bearer token that is known, active and not expired gets the API
  allowance; without one, a route that needs a token answers 401 at once (its body is never read).
  The token is checked through a lookup that the caller provides (the gateway directory's in-memory
  cache: no database round-trip for a token seen recently).
- Console: a live session cookie gets the form allowance (the CSV upload route its own); anything
  else — the sign-in form, accepting an invitation, or a form posted without a session, which its
  route refuses anyway — gets the small anonymous allowance.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Scope

from cockpit.auth import repository
from cockpit.auth.service import hash_secret
from cockpit.config import Settings
from cockpit.kit.guard import Allowance, refusal_for_invalid_token, refusal_for_missing_token
from cockpit.kit.time import utcnow
from cockpit.users.models import UserStatus

SESSION_COOKIE = "cockpit_session"
# REST routes that take a body without a token (the token is in the body: an invitation's).
PUBLIC_API_PATHS = frozenset({"/api/v1/invitations/accept", "/api/v1/billing/webhook"})
# Console routes with their own allowance (file uploads).
UPLOAD_PATHS = frozenset({"/users/import"})
# Conversations' file uploads (console and REST API): /conversations/{id}/files. The conversations
# service checks each file against COCKPIT_FILES_MAX_BYTES; this only lets such a body in.
_CONVERSATION_FILES = re.compile(r"^(/api/v1)?/conversations/[0-9a-fA-F-]{32,36}/files$")


def _uploads(path: str) -> bool:
    return path in UPLOAD_PATHS or _CONVERSATION_FILES.match(path) is not None


# Whether a bearer token is valid (known, active, not expired): the gateway directory's lookup.
TokenCheck = Callable[[str], Awaitable[bool]]


def _cookie(headers: dict[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip('"')
    return None


async def session_is_live(session: AsyncSession, settings: Settings, secret: str) -> bool:
    """Whether a console session cookie stands for a live session (nothing is written)."""
    login_session = await repository.session_by_hash(session, hash_secret(secret))
    if login_session is None or login_session.revoked_at is not None:
        return False
    now = utcnow()
    if now >= login_session.expires_at:
        return False
    if now - login_session.last_seen_at >= timedelta(minutes=settings.session_idle_minutes):
        return False
    return login_session.user.status is UserStatus.active


@dataclass
class BodyAllowances:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    token_is_valid: TokenCheck

    async def __call__(self, scope: Scope, headers: dict[str, str]) -> Allowance:
        settings, path = self.settings, scope["path"]
        anonymous = Allowance(settings.max_body_bytes_anonymous)
        if path.startswith("/api/"):
            if path in PUBLIC_API_PATHS:
                return anonymous
            scheme, _, raw = headers.get("authorization", "").partition(" ")
            raw = raw.strip()
            if scheme.lower() != "bearer" or not raw:
                return Allowance(0, refusal_for_missing_token())
            if len(raw) > 200 or not await self.token_is_valid(raw):
                return Allowance(0, refusal_for_invalid_token())
            return Allowance(
                settings.max_body_bytes_upload if _uploads(path) else settings.max_body_bytes_api
            )
        secret = _cookie(headers, SESSION_COOKIE)
        if not secret or len(secret) > 100:
            return anonymous
        async with self.sessionmaker() as session:
            live = await session_is_live(session, settings, secret)
        if not live:
            return anonymous
        return Allowance(settings.max_body_bytes_upload if _uploads(path) else settings.max_body_bytes_api)
