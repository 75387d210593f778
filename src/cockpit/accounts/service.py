"""Accounts (organisations): creation with their first owner, and the organisation profile."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.schemas import MAX_CONVERSATION_RETENTION_DAYS, MAX_RETENTION_DAYS, MIN_RETENTION_DAYS
from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.auth.images import check_image
from cockpit.auth.passwords import check_policy, hash_password_async
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.groups.service import create_default_group
from cockpit.kit.errors import Conflict, InvalidInput, NotFound
from cockpit.kit.time import utcnow
from cockpit.kit.validation import normalize_email, require_text
from cockpit.tenancy.models import Account, AccountLogo
from cockpit.tenancy.service import add_account
from cockpit.users import service as users
from cockpit.users.models import User, UserRole, UserStatus
from cockpit.users.seats import SeatProduct

MAX_CUSTOM_INSTRUCTIONS = 20_000  # characters


# Scheduled cost reports (exports.reports): how often, and the file made.
REPORT_CADENCES = ("off", "weekly", "monthly")
REPORT_FORMATS = ("pdf", "xlsx", "csv")


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            "invalid_timezone",
            f"'{value}' is not a known time zone (use an IANA name such as Europe/Paris).",
            details=[{"field": "timezone", "message": "unknown time zone"}],
        ) from exc
    return value


# How the console may write an account's dates (console.formatting has the formats).
LOCALES = ("en-GB", "en-US", "de-DE", "fr-FR", "iso")


def check_locale(value: str) -> str:
    if value not in LOCALES:
        choices = ", ".join(LOCALES)
        raise InvalidInput(
            "invalid_locale",
            f"The date format (locale) must be one of {choices}.",
            details=[{"field": "locale", "message": f"one of {choices}"}],
        )
    return value


def _invalid_retention() -> InvalidInput:
    message = f"a whole number of days from {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS}"
    return InvalidInput(
        "invalid_retention",
        f"The retention period (content_retention_days) must be {message}.",
        details=[{"field": "content_retention_days", "message": message}],
    )


def check_retention_days(value: int) -> int:
    # bool is an int in Python: True must not become a retention of one day.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_retention()
    if not MIN_RETENTION_DAYS <= value <= MAX_RETENTION_DAYS:
        raise _invalid_retention()
    return value


def parse_retention_days(text: str) -> int:
    """The retention period typed in a form: digits only, within the allowed range."""
    text = text.strip()
    if not text.isdigit() or len(text) > 6:
        raise _invalid_retention()
    return check_retention_days(int(text))


def check_conversation_retention_days(value: int) -> int:
    """Days without activity before a conversation is deleted: 0 (never) to the maximum."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_CONVERSATION_RETENTION_DAYS
    ):
        message = f"a whole number of days from 0 (keep them) to {MAX_CONVERSATION_RETENTION_DAYS}"
        raise InvalidInput(
            "invalid_conversation_retention",
            f"The conversation retention (conversation_retention_days) must be {message}.",
            details=[{"field": "conversation_retention_days", "message": message}],
        )
    return value


def parse_conversation_retention_days(text: str) -> int:
    """The conversation retention typed in a form (empty: 0, keep them)."""
    text = text.strip() or "0"
    if not text.isdigit() or len(text) > 6:
        return check_conversation_retention_days(-1)
    return check_conversation_retention_days(int(text))


def timezone_choices() -> list[str]:
    return sorted(available_timezones())


async def create_account(
    session: AsyncSession,
    *,
    name: str,
    owner_email: str,
    owner_password: str,
    owner_name: str = "",
    timezone: str = "UTC",
    label: str = "cli",
) -> tuple[Account, User]:
    """Create an organisation and its first owner. Used by the CLI and the demo seed."""
    name = require_text(name, field="name", label="The organisation name", max_length=200)
    email = normalize_email(owner_email, field="owner_email")
    check_policy(owner_password, field="owner_password")
    check_timezone(timezone)
    if await users.email_taken(session, email):
        raise Conflict("email_taken", f"A user with the e-mail {email} already exists.")
    password_hash = await hash_password_async(owner_password)
    account = await add_account(session, name=name, timezone=timezone)
    default_group = await create_default_group(session, account.id)
    owner = await users.add_user(
        session, account_id=account.id, email=email, name=owner_name.strip()[:200], role=UserRole.owner,
        group_id=default_group.id, password_hash=password_hash, seats=[SeatProduct.console],
    )  # fmt: skip
    actor = Actor.system(account.id, label=label)
    await audit.record(
        session,
        actor,
        "account.created",
        target=Target("account", account.id, name),
        after={"name": name, "timezone": timezone, "owner_email": email},
    )
    await audit.record(
        session,
        actor,
        "user.created",
        target=Target("user", owner.id, email),
        after={"email": email, "role": UserRole.owner, "status": UserStatus.active},
    )
    return account, owner


async def get_account(session: AsyncSession, actor: Actor) -> Account:
    actor.require(Permission.account_read)
    account = await session.get(Account, actor.account_id)
    if account is None:
        raise NotFound("account_not_found", "No such account.")
    return account


async def update_profile(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str | None = None,
    timezone: str | None = None,
    locale: str | None = None,
    store_request_content: bool | None = None,
    content_retention_days: int | None = None,
    custom_instructions: str | None = None,
    conversation_review_enabled: bool | None = None,
    conversation_retention_days: int | None = None,
    report_cadence: str | None = None,
    report_format: str | None = None,
) -> Account:
    """Change the organisation profile and its gateway content settings; absent fields stay.

    Everything is checked before anything changes, and one audit entry records what changed.
    """
    actor.require(Permission.account_write)
    account = await get_account(session, actor)
    new_name = (
        require_text(name, field="name", label="The organisation name", max_length=200)
        if name is not None
        else None
    )
    new_timezone = check_timezone(timezone) if timezone is not None else None
    new_locale = check_locale(locale) if locale is not None else None
    new_retention = (
        check_retention_days(content_retention_days) if content_retention_days is not None else None
    )
    new_instructions = (
        require_text(
            custom_instructions, field="custom_instructions", label="The custom instructions",
            max_length=MAX_CUSTOM_INSTRUCTIONS, min_length=0,
        )
        if custom_instructions is not None
        else None
    )  # fmt: skip
    new_conversation_retention = (
        check_conversation_retention_days(conversation_retention_days)
        if conversation_retention_days is not None
        else None
    )
    if report_cadence is not None and report_cadence not in REPORT_CADENCES:
        raise InvalidInput(
            "invalid_input", "The report schedule must be off, weekly or monthly.",
            details=[{"field": "report_cadence", "message": "off, weekly or monthly"}],
        )  # fmt: skip
    if report_format is not None and report_format not in REPORT_FORMATS:
        raise InvalidInput(
            "invalid_input", "The report format must be pdf, xlsx or csv.",
            details=[{"field": "report_format", "message": "pdf, xlsx or csv"}],
        )  # fmt: skip
    before = _profile_state(account)
    if report_cadence is not None:
        account.report_cadence = report_cadence
    if report_format is not None:
        account.report_format = report_format
    if new_name is not None:
        account.name = new_name
    if new_timezone is not None:
        account.timezone = new_timezone
    if new_locale is not None:
        account.locale = new_locale
    if store_request_content is not None:
        account.store_request_content = bool(store_request_content)
    if new_retention is not None:
        account.content_retention_days = new_retention
    if new_instructions is not None:
        account.custom_instructions = new_instructions
    if conversation_review_enabled is not None:
        account.conversation_review_enabled = bool(conversation_review_enabled)
    if new_conversation_retention is not None:
        account.conversation_retention_days = new_conversation_retention
    after = _profile_state(account)
    await audit.record_changes(
        session, actor, "account.updated", target=Target("account", account.id, account.name), before=before,
        after=after,
    )  # fmt: skip
    return account


def _profile_state(account: Account) -> dict[str, object]:
    return {
        "name": account.name,
        "timezone": account.timezone,
        "locale": account.locale,
        "store_request_content": account.store_request_content,
        "content_retention_days": account.content_retention_days,
        "custom_instructions": account.custom_instructions,
        "conversation_review_enabled": account.conversation_review_enabled,
        "conversation_retention_days": account.conversation_retention_days,
        "report_cadence": account.report_cadence,
        "report_format": account.report_format,
    }


# ---- the organisation's logo (issue 17): shown at the top of every member's sidebar ----


async def set_logo(session: AsyncSession, actor: Actor, data: bytes) -> Account:
    """Make ``data`` (a PNG, JPEG or WebP image of at most 1 MB) the organisation's logo."""
    actor.require(Permission.account_write)
    account = await get_account(session, actor)
    image = check_image(data)
    now = utcnow()
    logo = await session.get(AccountLogo, account.id)
    replaced = logo is not None
    if logo is None:
        logo = AccountLogo(account_id=account.id)
        session.add(logo)
    image.store(logo, now)
    account.logo_updated_at = now
    await audit.record(
        session,
        actor,
        "account.logo_changed",
        target=Target("account", account.id, account.name),
        after=image.audited("logo", replaced=replaced),
    )
    return account


async def remove_logo(session: AsyncSession, actor: Actor) -> Account:
    """Remove the organisation's logo (the initial shows again); no logo is no change."""
    actor.require(Permission.account_write)
    account = await get_account(session, actor)
    logo = await session.get(AccountLogo, account.id)
    if logo is None and account.logo_updated_at is None:
        return account
    if logo is not None:
        await session.delete(logo)
    account.logo_updated_at = None
    await audit.record(
        session,
        actor,
        "account.logo_changed",
        target=Target("account", account.id, account.name),
        after={"logo": "removed"},
    )
    return account


async def logo_of(session: AsyncSession, actor: Actor) -> AccountLogo:
    """The caller's organisation's logo (every member sees it); none is NotFound."""
    actor.require(Permission.account_read)
    logo = await session.get(AccountLogo, actor.account_id)
    if logo is None:
        raise NotFound("logo_not_found", "The organisation has no logo.")
    return logo
