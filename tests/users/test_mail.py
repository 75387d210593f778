"""Invitation e-mails through a real SMTP server (aiosmtpd on 127.0.0.1), sent by a job-queue worker
after the request's commit, retried while the server cannot be reached."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.app import create_app
from cockpit.invitations.service import SEND_EMAIL
from cockpit.jobs.models import Job
from cockpit.jobs.worker import Worker
from cockpit.kit.time import utcnow
from tests.builders import bearer, make_account, make_token
from tests.conftest import make_settings

API = "/api/v1"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())


@dataclass
class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    messages: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def free_port() -> int:
    """A port nothing listens on (the kernel picked it and it was released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(inbox, port)
    finally:
        controller.stop()


class MailClient(AsyncClient):
    """A client of an app whose outgoing mail goes to 127.0.0.1:``port`` without STARTTLS, and a job
    worker of that app (the e-mails are queued jobs)."""

    worker: Worker

    async def send_queued(self) -> int:
        """Run the queued jobs that are due; how many e-mail sendings were tried (the announcements
        of the invitations, ``events.fan_out`` jobs, run too and are not counted)."""
        before = await self._email_attempts()
        await self.worker.run_until_idle()
        return await self._email_attempts() - before

    async def _email_attempts(self) -> int:
        async with self.worker.sessionmaker() as session:
            total = await session.scalar(
                select(func.coalesce(func.sum(Job.attempts), 0)).where(Job.kind == SEND_EMAIL)
            )
        return int(total or 0)


@asynccontextmanager
async def mail_client(database_url: str, data_dir: Path, port: int) -> AsyncIterator[MailClient]:
    settings = make_settings(
        database_url, data_dir, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False
    )
    application = create_app(settings)
    try:
        transport = ASGITransport(app=application, client=("203.0.113.7", 50003))
        async with MailClient(transport=transport, base_url="http://testserver") as http:
            http.worker = Worker(application.state.sessionmaker, settings, schedules=False)
            yield http
    finally:
        await application.state.engine.dispose()


async def queued_emails(db: AsyncSession) -> list[Job]:
    await db.commit()
    rows = await db.scalars(
        select(Job)
        .where(Job.kind == SEND_EMAIL)
        .order_by(Job.created_at)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def owner_headers(db: AsyncSession, name: str = "Acme Robotics") -> dict[str, str]:
    _, owner = await make_account(db, name=name, email=f"owner-{uuid.uuid4().hex[:8]}@example.com")
    return bearer(await make_token(db, owner))


async def test_an_invitation_sends_one_message_with_the_link(
    db: AsyncSession, database_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    headers = await owner_headers(db)
    async with mail_client(database_url, tmp_path, smtp.port) as client:
        response = await client.post(
            f"{API}/invitations", json={"email": "Nina@Example.com", "name": "Nina"}, headers=headers
        )
        assert response.status_code == 201
        assert smtp.inbox.messages == []  # queued, not sent from the request
        [job] = await queued_emails(db)
        assert response.json()["accept_url"] not in str(job.payload)  # the link is kept encrypted
        assert await client.send_queued() == 1

    accept_url = response.json()["accept_url"]
    [mail] = smtp.inbox.messages
    assert mail.rcpt_tos == ["nina@example.com"]
    assert mail.mail_from == "cockpit@localhost"
    assert mail.message["To"] == "nina@example.com"
    assert "Acme Robotics" in mail.message["Subject"]
    assert accept_url in mail.body
    assert "Hello Nina," in mail.body


async def test_resend_sends_another_message_with_the_new_link(
    db: AsyncSession, database_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    headers = await owner_headers(db)
    async with mail_client(database_url, tmp_path, smtp.port) as client:
        created = await client.post(f"{API}/invitations", json={"email": "nina@example.com"}, headers=headers)
        await client.send_queued()
        resent = await client.post(f"{API}/invitations/{created.json()['id']}/resend", headers=headers)
        await client.send_queued()

    assert resent.status_code == 200
    first, second = smtp.inbox.messages
    assert first.rcpt_tos == second.rcpt_tos == ["nina@example.com"]
    assert created.json()["accept_url"] in first.body
    assert resent.json()["accept_url"] in second.body
    assert created.json()["accept_url"] not in second.body


async def test_a_failing_request_sends_nothing(
    db: AsyncSession, database_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    headers = await owner_headers(db)
    async with mail_client(database_url, tmp_path, smtp.port) as client:
        created = await client.post(f"{API}/invitations", json={"email": "nina@example.com"}, headers=headers)
        assert created.status_code == 201
        await client.send_queued()
        assert len(smtp.inbox.messages) == 1

        duplicate = await client.post(
            f"{API}/invitations", json={"email": "nina@example.com"}, headers=headers
        )
        another = await client.post(
            f"{API}/invitations", json={"email": "omar@example.com", "seats": ["copilot"]}, headers=headers
        )
        assert (await client.patch(f"{API}/seats", json={"compute": 0}, headers=headers)).status_code == 200
        over_limit = await client.post(
            f"{API}/invitations", json={"email": "pia@example.com", "seats": ["compute"]}, headers=headers
        )
        await client.send_queued()

    assert duplicate.status_code == 409
    assert another.status_code == 201  # a success in between sends its message
    assert over_limit.status_code == 409
    assert [m.rcpt_tos for m in smtp.inbox.messages] == [["nina@example.com"], ["omar@example.com"]]


async def test_an_unreachable_mail_server_does_not_fail_the_invitation_and_the_email_is_retried(
    db: AsyncSession, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    headers = await owner_headers(db)
    port = free_port()
    with caplog.at_level(logging.WARNING, logger="cockpit.mail"):
        async with mail_client(database_url, tmp_path, port) as client:
            response = await client.post(
                f"{API}/invitations", json={"email": "nina@example.com"}, headers=headers
            )
            listed = await client.get(f"{API}/invitations", params={"status": "pending"}, headers=headers)
            assert await client.send_queued() == 1
            [job] = await queued_emails(db)
            assert (job.status, job.attempts) == ("failed", 1)
            assert "mail server did not take the message" in (job.last_error or "")
            assert await client.send_queued() == 0  # not before its backoff

            # The mail server comes back; the retry, once due, delivers the message.
            inbox = Inbox()
            controller = Controller(inbox, hostname="127.0.0.1", port=port)
            controller.start()
            try:
                later = Worker(
                    client.worker.sessionmaker, client.worker.settings, schedules=False,
                    clock=lambda: utcnow() + timedelta(hours=2),
                )  # fmt: skip
                assert await later.run_until_idle() == 1
            finally:
                controller.stop()

    assert response.status_code == 201
    assert response.json()["accept_url"].startswith("http://testserver/invite/")
    assert [i["email"] for i in listed.json()["items"]] == ["nina@example.com"]
    assert any("could not send e-mail to nina@example.com" in r.getMessage() for r in caplog.records)
    [mail] = inbox.messages
    assert response.json()["accept_url"] in mail.body
    [job] = await queued_emails(db)
    assert (job.status, job.attempts) == ("done", 2)


async def test_a_link_resent_revoked_or_used_before_its_email_went_out_is_not_sent(
    db: AsyncSession, database_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    headers = await owner_headers(db)
    async with mail_client(database_url, tmp_path, smtp.port) as client:
        nina = await client.post(f"{API}/invitations", json={"email": "nina@example.com"}, headers=headers)
        resent = await client.post(f"{API}/invitations/{nina.json()['id']}/resend", headers=headers)
        omar = await client.post(f"{API}/invitations", json={"email": "omar@example.com"}, headers=headers)
        await client.delete(f"{API}/invitations/{omar.json()['id']}", headers=headers)
        pia = await client.post(f"{API}/invitations", json={"email": "pia@example.com"}, headers=headers)
        accepted = await client.post(
            f"{API}/invitations/accept",
            json={
                "token": pia.json()["accept_url"].rsplit("/", 1)[1],
                "name": "Pia",
                "password": "a-brand-new-passphrase-42",
            },
        )
        assert accepted.status_code == 201, accepted.text
        assert await client.send_queued() == 4

    # Only the link that still works went out: Nina's second one.
    [mail] = smtp.inbox.messages
    assert mail.rcpt_tos == ["nina@example.com"]
    assert resent.json()["accept_url"] in mail.body
    assert nina.json()["accept_url"] not in mail.body
    assert [job.status for job in await queued_emails(db)] == ["done"] * 4
