"""Notification e-mails go through a real SMTP server (aiosmtpd), one job per address, and none
without a mail server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.config import Settings
from cockpit.jobs.models import JobStatus
from cockpit.users.models import UserRole
from tests.builders import make_account, make_user
from tests.conftest import make_settings
from tests.notifications.conftest import email_jobs, emit_event, notifications_of, run_jobs
from tests.users.test_mail import SmtpServer, free_port, smtp

__all__ = ["smtp"]  # the fixture

REQUEST = {"person_name": "Mia Member", "person_email": "mia@example.com", "amount": "500", "reason": "demo"}


async def test_each_recipient_gets_one_email(
    app: Any, db: AsyncSession, database_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    account, owner = await make_account(db, name="Acme")
    admin = await make_user(db, account, role=UserRole.admin)
    emails = sorted([owner.email, admin.email])
    await emit_event(db, account.id, "credit_request.created", REQUEST)
    settings = make_settings(
        database_url, tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False
    )
    await run_jobs(app, settings)

    assert sorted(m.rcpt_tos[0] for m in smtp.inbox.messages) == emails
    mail = smtp.inbox.messages[0]
    assert mail.message["Subject"] == "Mia Member asks for 500 credits"
    assert "“demo”" in mail.body
    assert {j.status for j in await email_jobs(db)} == {JobStatus.done.value}


async def test_an_unreachable_server_is_retried(
    app: Any, db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    account, _ = await make_account(db)
    await emit_event(db, account.id, "credit_request.created", REQUEST)
    settings = make_settings(
        database_url,
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_starttls=False,
        jobs_retry_seconds=3600,
    )
    await run_jobs(app, settings)
    [job] = await email_jobs(db)
    assert job.status == JobStatus.failed.value
    assert job.attempts == 1


async def test_without_a_mail_server_only_the_in_app_notification_remains(
    app: Any, settings: Settings, db: AsyncSession
) -> None:
    assert not settings.smtp_host
    account, owner = await make_account(db)
    owner_id = owner.id
    await emit_event(db, account.id, "credit_request.created", REQUEST)
    await run_jobs(app, settings)
    assert len(await notifications_of(db, owner_id)) == 1
    [job] = await email_jobs(db)
    assert job.status == JobStatus.done.value  # nothing sent, nothing to retry
