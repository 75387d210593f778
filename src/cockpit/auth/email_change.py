"""Changing one's own sign-in e-mail, confirmed from the new mailbox (issue 17).

1. ``start_email_change``: the person gives the new address and their current password; the user
   row keeps the pending address, the SHA-256 of a one-time token and its expiry
   (``EMAIL_CHANGE_HOURS``). A link with the token goes to the NEW address, a notice to the old one
   (both from the job queue, after the commit; the link travels encrypted in the job's payload).
2. ``confirm_email_change``: the person, signed in, follows the link; the address becomes their
   sign-in name, their other console sessions are signed out, the old address is told.

The token is never stored in clear, logged or returned by the API: only the e-mail carries it.
Asking again replaces the pending change (the earlier link stops working).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.auth.passwords import verify_password_async
from cockpit.auth.profile import own_user, sign_out_other_sessions
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.jobs import service as jobs
from cockpit.kit.errors import Conflict, InvalidInput, NotPermitted
from cockpit.kit.mail import Email, deliver, mail_configured
from cockpit.kit.secrets import decrypt, encrypt
from cockpit.kit.text import is_storable
from cockpit.kit.time import utcnow
from cockpit.kit.validation import normalize_email
from cockpit.users import service as users
from cockpit.users.models import User

EMAIL_CHANGE_HOURS = 24
# The job that sends this module's messages (registered in cockpit/auth/tasks.py).
SEND_EMAIL = "auth.send_email"
CONFIRM_PATH = "/profile/email/confirm"
MAX_TOKEN = 200


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _invalid(field: str, code: str, message: str) -> InvalidInput:
    return InvalidInput(code, message, details=[{"field": field, "message": message}])


def pending_email(user: User) -> str | None:
    """The address waiting for its confirmation, while its link still works."""
    expires = user.pending_email_expires_at
    if user.pending_email is None or expires is None or expires <= utcnow():
        return None
    return user.pending_email


def check_new_email(value: str) -> str:
    """A valid address, normalised as every user's is (lower-case); NUL, lone surrogates and other
    control characters are refused before the address parser sees them."""
    if not is_storable(value) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _invalid(
            "email", "invalid_email", "The e-mail address contains characters that are not allowed."
        )
    return normalize_email(value, field="email")


def _clear_pending(user: User) -> None:
    user.pending_email = None
    user.pending_email_token_hash = None
    user.pending_email_expires_at = None


async def _queue(
    session: AsyncSession,
    settings: Settings,
    user: User,
    email: Email,
    *,
    purpose: str,
    token_hash: str | None = None,
) -> None:
    """Queue one message for after the commit. The text is encrypted in the job (it may hold a link);
    a confirmation is sent only while its link is still the pending one (``send_queued``)."""
    payload: dict[str, Any] = {
        "user_id": str(user.id),
        "to": email.to,
        "subject": email.subject,
        "text": encrypt(email.text, settings.resolved_secret_key()),
        "token_hash": token_hash,
    }
    key = f"{SEND_EMAIL}:{user.id}:{purpose}:{(token_hash or uuid.uuid4().hex)[:32]}"
    await jobs.enqueue(session, SEND_EMAIL, payload, account_id=user.account_id, dedupe_key=key)


async def send_queued(session: AsyncSession, settings: Settings, payload: dict[str, Any]) -> bool:
    """Send one queued message (the job's handler); a confirmation whose link was used or replaced
    meanwhile is not sent (False). Raises ``MailNotSent`` for the queue to try again later."""
    user_id = uuid.UUID(str(payload["user_id"]))
    token_hash = payload.get("token_hash")
    if token_hash is not None:
        user = await session.get(User, user_id)
        if user is None or user.pending_email_token_hash != token_hash or pending_email(user) is None:
            return False
    text = decrypt(str(payload["text"]), settings.resolved_secret_key())
    await deliver(settings, Email(to=str(payload["to"]), subject=str(payload["subject"]), text=text))
    return True


def _greeting(user: User) -> str:
    return f"Hello {user.name}," if user.name else "Hello,"


async def start_email_change(
    session: AsyncSession, actor: Actor, settings: Settings, *, new_email: str, current_password: str
) -> tuple[User, str]:
    """Ask to change the person's sign-in e-mail; returns the user and the link's raw token (for the
    e-mail only: callers never show or return it). Nothing changes until the link is followed."""
    user = await own_user(session, actor)
    if not await verify_password_async(user.password_hash, current_password[:1000]):
        raise NotPermitted("wrong_current_password", "The current password is not correct.")
    email = check_new_email(new_email)
    if email == user.email:
        raise _invalid("email", "email_unchanged", "This is already your sign-in e-mail.")
    taken_by = await users.user_by_email(session, email)
    if taken_by is not None and taken_by.id != user.id:
        raise Conflict("email_taken", f"{email} is already used by another person on Cockpit.")
    if not mail_configured(settings):
        raise Conflict(
            "mail_not_configured",
            "Cockpit cannot send e-mail (no mail server is configured), so it cannot confirm a new "
            "address. Ask an administrator to set up e-mail first.",
        )
    raw = secrets.token_hex(32)
    token_hash = hash_token(raw)
    expires = utcnow() + timedelta(hours=EMAIL_CHANGE_HOURS)
    user.pending_email, user.pending_email_token_hash, user.pending_email_expires_at = (
        email,
        token_hash,
        expires,
    )
    await audit.record(
        session,
        actor,
        "user.email_change_requested",
        target=users.target(user),
        after={"pending_email": email, "expires_in_hours": EMAIL_CHANGE_HOURS},
    )
    link = f"{settings.base_url}{CONFIRM_PATH}?token={raw}"
    confirm = Email(
        to=email,
        subject="Confirm your new e-mail address for Cockpit",
        text=(
            f"{_greeting(user)}\n\nYou asked to sign in to Cockpit with this address ({email}) "
            f"instead of {user.email}.\n\nOpen this link, signed in to Cockpit, to confirm the change "
            f"(it works once, for {EMAIL_CHANGE_HOURS} hours):\n{link}\n\n"
            "If you did not ask for this, ignore this message: nothing changes.\n"
        ),
    )
    notice = Email(
        to=user.email,
        subject="Your Cockpit sign-in e-mail is about to change",
        text=(
            f"{_greeting(user)}\n\nSomeone signed in as you asked to change your Cockpit sign-in e-mail "
            f"from {user.email} to {email}. The change happens only once it is confirmed from the new "
            "mailbox.\n\nIf this was not you, sign in, cancel the change on your profile and change "
            "your password.\n"
        ),
    )
    await _queue(session, settings, user, confirm, purpose="confirm", token_hash=token_hash)
    await _queue(session, settings, user, notice, purpose="notice")
    return user, raw


async def cancel_email_change(session: AsyncSession, actor: Actor) -> User:
    """Forget the pending change (its link stops working); no pending change is no change."""
    user = await own_user(session, actor)
    if user.pending_email is None:
        return user
    cancelled = user.pending_email
    _clear_pending(user)
    await audit.record(
        session,
        actor,
        "user.email_change_cancelled",
        target=users.target(user),
        before={"pending_email": cancelled},
    )
    return user


def check_token(user: User, token: str) -> str:
    """The pending address ``token`` confirms for ``user``, or a clear refusal (nothing changes)."""
    stored = user.pending_email_token_hash
    well_formed = 0 < len(token) <= MAX_TOKEN and token.isascii() and token.isalnum()
    if (
        not well_formed
        or stored is None
        or user.pending_email is None
        or not hmac.compare_digest(hash_token(token), stored)
    ):
        raise _invalid(
            "token",
            "invalid_email_token",
            "This confirmation link is not valid: it was already used, replaced by a newer one, or it "
            "is for another person (sign in as the person who asked for the change).",
        )
    if pending_email(user) is None:
        raise _invalid(
            "token",
            "expired_email_token",
            "This confirmation link has expired. Ask for a new one on your profile.",
        )
    return user.pending_email


async def confirm_email_change(
    session: AsyncSession, actor: Actor, settings: Settings, *, token: str
) -> tuple[User, int]:
    """Make the confirmed address the person's sign-in e-mail, sign out their other console sessions
    and tell the old address; returns the user and how many sessions were signed out."""
    user = await own_user(session, actor)
    new_email = check_token(user, token)
    taken_by = await users.user_by_email(session, new_email)
    if taken_by is not None and taken_by.id != user.id:
        raise Conflict("email_taken", f"{new_email} is already used by another person on Cockpit.")
    old_email = user.email
    try:
        async with session.begin_nested():  # another person confirming the same address just now
            user.email = new_email
            await session.flush()
    except IntegrityError:
        raise Conflict("email_taken", f"{new_email} is already used by another person on Cockpit.") from None
    _clear_pending(user)
    signed_out = await sign_out_other_sessions(session, actor, user)
    await audit.record(
        session,
        actor,
        "user.email_changed",
        target=users.target(user),
        before={"email": old_email},
        after={"email": new_email, "other_sessions_signed_out": signed_out},
    )
    if mail_configured(settings):
        notice = Email(
            to=old_email,
            subject="Your Cockpit sign-in e-mail was changed",
            text=(
                f"{_greeting(user)}\n\nYour Cockpit sign-in e-mail is now {new_email} (it was "
                f"{old_email}). Your other sessions were signed out.\n\nIf this was not you, contact "
                "your organisation's administrators at once.\n"
            ),
        )
        await _queue(session, settings, user, notice, purpose="changed")
    return user, signed_out
