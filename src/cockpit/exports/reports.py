"""Scheduled cost reports (issue 16): an account that asked for them (ACCOUNT → Organisation, or
``report_cadence`` in ``PATCH /api/v1/account``) gets the cost tracking of the last complete week
(Monday to Sunday) or month, in its time zone, made as an export by the job queue and announced
to its administrators (``report.ready``: in-app, e-mail, webhooks).

``reports.schedule`` runs every hour and queues ``reports.make`` for each account whose period
has ended; the job's key is the account and the period, so a report is made once however many
workers or hours see it due. An account that turns reports on gets the last complete period's at
the next hour."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cockpit.analytics.filters import Filters
from cockpit.authz.actor import Actor
from cockpit.exports.models import Export, ExportFormat, ExportView
from cockpit.exports.service import request_export
from cockpit.jobs import service as jobs
from cockpit.jobs.registry import JobContext, PermanentJobError, registry
from cockpit.tenancy.models import Account

SCHEDULE = "reports.schedule"
MAKE_REPORT = "reports.make"


def last_period(cadence: str, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The last complete week (from Monday) or month before ``now`` in the account's zone, as UTC."""
    local = now.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if cadence == "weekly":
        end = midnight - timedelta(days=local.weekday())
        start = end - timedelta(days=7)
    elif cadence == "monthly":
        end = midnight.replace(day=1)
        start = (end - timedelta(days=1)).replace(day=1)
    else:
        return None
    # Rebuilt in the zone, so that a period across a change of clocks starts and ends at midnight.
    start = datetime(start.year, start.month, start.day, tzinfo=zone)
    end = datetime(end.year, end.month, end.day, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


async def schedule(ctx: JobContext) -> None:
    async with ctx.sessionmaker() as session, session.begin():
        rows = await session.execute(
            select(Account.id, Account.report_cadence, Account.report_format, Account.timezone).where(
                Account.report_cadence != "off"
            )
        )
        for account_id, cadence, fmt, timezone in rows.all():
            period = last_period(cadence, ctx.now(), _zone(timezone))
            if period is None:
                continue
            start, end = period
            await jobs.enqueue(
                session, MAKE_REPORT,
                {"account_id": str(account_id), "cadence": cadence, "format": fmt,
                 "from": start.isoformat(), "to": end.isoformat()},
                account_id=account_id, dedupe_key=f"report:{account_id}:{cadence}:{start.date().isoformat()}",
            )  # fmt: skip


async def make(ctx: JobContext) -> None:
    """The account's report of the period: an export of the cost tracking view, asked for by the
    system (the whole account), marked as scheduled so that its administrators hear of it."""
    try:
        account_id = uuid.UUID(str(ctx.payload["account_id"]))
        filters = Filters(
            start=datetime.fromisoformat(str(ctx.payload["from"])),
            end=datetime.fromisoformat(str(ctx.payload["to"])),
        )
        fmt = ExportFormat(str(ctx.payload.get("format") or "pdf"))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"the report's job cannot be read: {exc}") from None
    async with ctx.sessionmaker() as session, session.begin():
        if await session.get(Account, account_id) is None:
            return  # the account was deleted meanwhile
        export: Export = await request_export(
            session, Actor.system(account_id, label="scheduled report"), format=fmt, view=ExportView.cost,
            filters=filters,
        )  # fmt: skip
        export.filters = {**export.filters, "scheduled": str(ctx.payload.get("cadence") or "")}


registry.register(SCHEDULE, schedule, max_attempts=3)
registry.every(SCHEDULE, lambda _settings: timedelta(hours=1))
registry.register(MAKE_REPORT, make, max_attempts=3)
