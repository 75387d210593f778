"""Short-lived assertions that let Cockpit call its own MCP server on behalf of the person running an
agent: a shared agent answers "how many credits do I have left?" for whoever asks, never for the
agent's author. An assertion names the account and the person, expires after a few minutes, and is
signed with a key derived from the secret key; it is never stored and opens only the read-only MCP
server (``api.mcp``), not the REST API nor the gateway."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor, ActorKind, TokenScope
from cockpit.users.models import User, UserStatus

PREFIX = "cpk_obo."
TTL_SECONDS = 300


def _key(secret_key: str) -> bytes:
    return hashlib.sha256(b"cockpit-on-behalf:" + secret_key.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(account_id: uuid.UUID, user_id: uuid.UUID, secret_key: str, *, ttl: int = TTL_SECONDS) -> str:
    claims = json.dumps({"a": str(account_id), "u": str(user_id), "e": int(time.time()) + ttl}).encode()
    body = _b64(claims)
    signature = _b64(hmac.new(_key(secret_key), body.encode(), hashlib.sha256).digest())
    return f"{PREFIX}{body}.{signature}"


async def authenticate(session: AsyncSession, raw: str, secret_key: str) -> Actor | None:
    """The person an assertion stands for, if it is genuine, unexpired and they are still active."""
    if not raw.startswith(PREFIX) or len(raw) > 1000:
        return None
    body, _, signature = raw[len(PREFIX) :].partition(".")
    expected = _b64(hmac.new(_key(secret_key), body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature, expected):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        account_id, user_id = uuid.UUID(claims["a"]), uuid.UUID(claims["u"])
        expires = int(claims["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires < time.time():
        return None
    user = await session.scalar(select(User).where(User.id == user_id, User.account_id == account_id))
    if user is None or user.status is not UserStatus.active:
        return None
    return Actor.for_user(user, kind=ActorKind.token, scopes=frozenset({TokenScope.gateway}))
