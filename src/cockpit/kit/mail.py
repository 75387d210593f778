"""Outgoing e-mail over SMTP (COCKPIT_SMTP_*). Sent after the request's transaction commits."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from cockpit.config import Settings

log = logging.getLogger("cockpit.mail")


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str | None = None


def mail_configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def _send_blocking(settings: Settings, email: Email) -> None:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = email.to
    message["Subject"] = email.subject
    message.set_content(email.text)
    if email.html:
        message.add_alternative(email.html, subtype="html")
    assert settings.smtp_host
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(message)


class MailNotSent(Exception):
    """The message could not be handed to the mail server (the reason names no credential)."""


async def deliver(settings: Settings, email: Email) -> None:
    """Hand one message to the SMTP server; raises ``MailNotSent`` when that failed (logged, never
    with credentials), so that a background job can try again later."""
    if not mail_configured(settings):
        raise MailNotSent("no mail server is configured (COCKPIT_SMTP_HOST)")
    try:
        await asyncio.to_thread(_send_blocking, settings, email)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("could not send e-mail to %s: %s", email.to, type(exc).__name__)
        raise MailNotSent(f"the mail server did not take the message ({type(exc).__name__})") from None


async def send_email(settings: Settings, email: Email) -> bool:
    """Send one message; failures are logged and reported as False."""
    try:
        await deliver(settings, email)
    except MailNotSent:
        return False
    return True
