"""Console sign-in: password check with a failed-login throttle, and server-side sessions."""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.auth import repository
from cockpit.auth.models import LoginFailure, LoginSession
from cockpit.auth.passwords import verify_password_async
from cockpit.authz.actor import Actor, ActorKind
from cockpit.config import Settings
from cockpit.kit.db import read_only
from cockpit.kit.errors import CockpitError, NotAuthenticated, TooManyRequests
from cockpit.kit.time import utcnow
from cockpit.tenancy.lock import lock_account_chain
from cockpit.users import service as users
from cockpit.users.models import User, UserStatus

INVALID_CREDENTIALS = "Incorrect e-mail or password."
# Sessions' last-seen time is written at most this often, not on every page view.
TOUCH_INTERVAL = timedelta(seconds=60)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class SignInResult:
    """Failed sign-ins are *returned*, not raised: the failure record must be committed."""

    user: User | None = None
    login_session: LoginSession | None = None
    secret: str | None = None
    error: CockpitError | None = None


async def _throttle(session: AsyncSession, settings: Settings, email: str, ip: str) -> TooManyRequests | None:
    now = utcnow()
    since = now - timedelta(hours=1)
    email_failures, last_failure = await repository.failures_since(session, email=email, since=since)
    ip_failures, _ = await repository.failures_since(session, ip=ip, since=since)
    if (
        email_failures >= settings.login_max_failures_per_hour
        or ip_failures >= settings.login_ip_max_failures_per_hour
    ):
        return TooManyRequests(
            "login_throttled",
            "Too many failed sign-in attempts. Sign-in is blocked for up to an hour; try again later.",
            retry_after=3600,
        )
    if email_failures >= settings.login_delay_after and last_failure is not None:
        delay = min(2 ** (email_failures - settings.login_delay_after), settings.login_max_delay_seconds)
        wait = (last_failure + timedelta(seconds=delay) - now).total_seconds()
        if wait > 0:
            seconds = math.ceil(wait)
            return TooManyRequests(
                "login_throttled",
                f"Too many failed sign-in attempts. "
                f"Wait {seconds} second{'s' * (seconds != 1)} and try again.",
                retry_after=seconds,
            )
    return None


async def _record_failure(
    session: AsyncSession,
    settings: Settings,
    email: str,
    ip: str,
    user_agent: str | None,
    user: User | None,
    *,
    reason: str | None = None,
) -> None:
    session.add(LoginFailure(email=email, ip=ip, account_id=user.account_id if user else None))
    await session.flush()
    if user is None:
        return  # no account to write to; the IP and e-mail throttles still count it
    failures, _ = await repository.failures_since(session, email=email, since=utcnow() - timedelta(hours=1))
    actor = Actor(
        kind=ActorKind.anonymous,
        account_id=user.account_id,
        label=f"anonymous ({ip})",
        ip=ip,
        user_agent=user_agent,
    )
    target = Target("user", user.id, user.email)
    after: dict[str, object] = {"failures_last_hour": failures}
    if reason is not None:
        after["reason"] = reason
    await audit.record(session, actor, "auth.login_failed", target=target, after=after)
    if failures == settings.login_delay_after:
        await audit.record(
            session,
            actor,
            "auth.login_throttled",
            target=target,
            after={"failures_last_hour": failures, "throttle": "growing delays"},
        )
    elif failures == settings.login_max_failures_per_hour:
        await audit.record(
            session,
            actor,
            "auth.login_throttled",
            target=target,
            after={"failures_last_hour": failures, "throttle": "blocked for the hour"},
        )


async def sign_in(
    session: AsyncSession, settings: Settings, *, email: str, password: str, ip: str, user_agent: str | None
) -> SignInResult:
    """Check an e-mail and password; start a session, or return why not.

    Every refused attempt answers alike: unknown e-mail, wrong password, and the right password of a
    deactivated user are all 401 ``invalid_credentials`` (a different answer for the last one would
    tell a guesser that the password is right), and all three are recorded as failed sign-ins.

    Under a burst (many attempts at once for one e-mail) no lock or connection is held while the
    password is checked: the throttle and the user are read in a short read-only transaction, the
    argon2 check runs off the event loop, and only then is the account locked (its audit chain head,
    which the failure or the login is appended to). Under that lock the throttle is checked again
    against the failures committed by the attempts ahead in the queue, so a burst gets no more
    answers than attempts one after the other would: the rest are refused (429) whatever their
    password. An e-mail without an account takes no lock (nothing to serialise on; its failures are
    recorded and throttle it all the same, a burst's worth at a time).
    """
    email = email.strip().lower()[:254]
    async with read_only(session):
        throttled = await _throttle(session, settings, email, ip)
        user = await users.user_by_email(session, email) if email and throttled is None else None
    if throttled is not None:
        return SignInResult(error=throttled)
    correct = await verify_password_async(user.password_hash if user else None, password)
    if user is not None:
        await lock_account_chain(session, user.account_id)
        throttled = await _throttle(session, settings, email, ip)
        if throttled is not None:
            return SignInResult(error=throttled)
        await session.refresh(user, ["status"])  # as of now: a deactivation takes the same lock
    if not correct or user is None or user.status is not UserStatus.active:
        reason = "user_deactivated" if correct and user is not None else None
        await _record_failure(session, settings, email, ip, user_agent, user, reason=reason)
        return SignInResult(error=NotAuthenticated("invalid_credentials", INVALID_CREDENTIALS))
    login_session, secret = await start_session(session, settings, user, ip=ip, user_agent=user_agent)
    return SignInResult(user=user, login_session=login_session, secret=secret)


async def start_session(
    session: AsyncSession, settings: Settings, user: User, *, ip: str | None, user_agent: str | None
) -> tuple[LoginSession, str]:
    """A fresh session id at every sign-in (never reuse one from before authentication)."""
    await lock_account_chain(session, user.account_id)  # before the writes (see tenancy.lock)
    now = utcnow()
    secret = secrets.token_urlsafe(32)
    login_session = LoginSession(
        account_id=user.account_id,
        user_id=user.id,
        secret_hash=hash_secret(secret),
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_absolute_hours),
        ip=ip,
        user_agent=(user_agent or "")[:400] or None,
        user=user,
    )
    session.add(login_session)
    user.last_login_at = now
    await session.flush()
    actor = Actor.for_user(user, session_id=login_session.id, ip=ip, user_agent=user_agent)
    await audit.record(session, actor, "auth.login", target=Target("user", user.id, user.email))
    return login_session, secret


async def resolve_session(session: AsyncSession, settings: Settings, secret: str) -> LoginSession | None:
    """The live session for a cookie, or None if unknown, revoked, idle too long or expired."""
    login_session = await repository.session_by_hash(session, hash_secret(secret))
    if login_session is None or login_session.revoked_at is not None:
        return None
    now = utcnow()
    idle = timedelta(minutes=settings.session_idle_minutes)
    if now >= login_session.expires_at or now - login_session.last_seen_at >= idle:
        return None
    if login_session.user.status is not UserStatus.active:
        return None
    if now - login_session.last_seen_at >= TOUCH_INTERVAL:
        login_session.last_seen_at = now
    return login_session


async def sign_out(session: AsyncSession, actor: Actor, login_session: LoginSession) -> None:
    login_session.revoked_at = utcnow()
    await audit.record(session, actor, "auth.logout", target=Target("user", actor.user_id, actor.label))


async def revoke_secret(session: AsyncSession, secret: str) -> None:
    login_session = await repository.session_by_hash(session, hash_secret(secret[:100]))
    if login_session is not None and login_session.revoked_at is None:
        login_session.revoked_at = utcnow()


async def end_sessions(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Every live console session of the user ends (a deactivation: ``membership.deactivate_user``)."""
    await repository.revoke_sessions_of(session, user_id)
