"""Invite many people from a CSV file: per-row outcome, batches, progress.

Columns (header row required, case-insensitive): ``email`` (required), ``name``, ``role``
(owner, admin, member; default member), ``group`` (a group name; default Default) and ``seats``
(``copilot``, ``console``, ``compute`` separated by ``;`` or ``|``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.groups import service as groups_service
from cockpit.groups.models import Group
from cockpit.invitations import service as invitations
from cockpit.kit.db import run_after_commit
from cockpit.kit.errors import CockpitError, Conflict, InvalidInput
from cockpit.kit.validation import normalize_email
from cockpit.users.models import UserRole
from cockpit.users.seats import SeatLedger

BATCH_SIZE = 500
MAX_ROWS = 200_000
COLUMNS = ("email", "name", "role", "group", "seats")
# Rows for people who already have an account or an invitation are skipped, not errors.
SKIPPED_CODES = ("email_taken", "already_invited")


@dataclass(frozen=True)
class RowOutcome:
    line: int
    email: str
    outcome: str  # created, skipped, rejected
    reason: str = ""


@dataclass
class ImportReport:
    total: int = 0
    rows: list[RowOutcome] = field(default_factory=list)
    created: int = 0
    skipped: int = 0
    rejected: int = 0

    def add(self, outcome: RowOutcome) -> None:
        self.rows.append(outcome)
        if outcome.outcome == "created":
            self.created += 1
        elif outcome.outcome == "skipped":
            self.skipped += 1
        else:
            self.rejected += 1

    @property
    def problems(self) -> list[RowOutcome]:
        return [row for row in self.rows if row.outcome != "created"]


def parse_csv(text: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for every data row; a clear error when the file itself is unusable."""
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise InvalidInput("csv_empty", "The CSV file is empty.")
    if "\x00" in text:  # a spreadsheet's binary file, or UTF-16 saved by mistake: nothing to store
        raise InvalidInput(
            "csv_invalid",
            "The file contains NUL characters: it is not a CSV text file. Save it as 'CSV UTF-8'.",
        )
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (csv.Error, StopIteration) as exc:
        raise InvalidInput("csv_invalid", "The file is not a readable CSV.") from exc
    if "email" not in header:
        raise InvalidInput(
            "csv_header",
            "The CSV needs a header row with an 'email' column (optional: name, role, group, seats).",
        )
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            rows.append(
                (reader.line_num, {k: (values[i] if i < len(values) else "") for i, k in enumerate(header)})
            )
            if len(rows) > MAX_ROWS:
                raise InvalidInput("csv_too_large", f"At most {MAX_ROWS:,} rows can be imported at once.")
    except csv.Error as exc:
        raise InvalidInput("csv_invalid", f"Line {reader.line_num}: {exc}") from exc
    return rows


def batches(rows: list[tuple[int, dict[str, str]]]) -> Iterator[list[tuple[int, dict[str, str]]]]:
    for start in range(0, len(rows), BATCH_SIZE):
        yield rows[start : start + BATCH_SIZE]


async def import_batch(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    rows: list[tuple[int, dict[str, str]]],
    ledger: SeatLedger,
    groups: dict[str, Group | None],
) -> list[RowOutcome]:
    actor.require(Permission.users_write)
    outcomes = []
    seen: set[str] = set()
    await ledger.refresh(session, actor.account_id)
    if "" not in groups:
        groups[""] = await groups_service.default_group(session, actor.account_id)
    # New rows are written together at the batch's commit (one multi-row INSERT, not one per row);
    # duplicates inside the batch are caught with ``seen`` since the database cannot see them yet.
    with session.no_autoflush:
        for line, row in rows:
            outcomes.append(await _import_row(session, actor, settings, line, row, ledger, groups, seen))
    return outcomes


async def _import_row(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    line: int,
    row: dict[str, str],
    ledger: SeatLedger,
    groups: dict[str, Group | None],
    seen: set[str],
) -> RowOutcome:
    email = row.get("email", "").strip()
    try:
        normalized = normalize_email(email)
        if normalized in seen:
            raise Conflict("already_invited", f"{normalized} appears earlier in this file.")
        role_text = row.get("role", "").strip().lower() or "member"
        try:
            role = UserRole(role_text)
        except ValueError as exc:
            raise InvalidInput(
                "invalid_role", f"unknown role '{role_text}' (owner, admin or member)"
            ) from exc
        group_name = row.get("group", "").strip()
        key = group_name.lower()
        if key not in groups:
            groups[key] = await groups_service.group_named(session, actor.account_id, group_name)
        group = groups[key]
        if group is None:
            raise InvalidInput("unknown_group", f"unknown group '{group_name}'")
        seats = [s for s in re.split(r"[;|,\s]+", row.get("seats", "")) if s]
        # Every check happens before anything is written, so a refused row leaves nothing behind.
        await invitations.invite(
            session,
            actor,
            settings,
            email=normalized,
            name=row.get("name", ""),
            role=role,
            group=group,
            seats=seats,
            ledger=ledger,
        )
    except CockpitError as exc:
        outcome = "skipped" if exc.code in SKIPPED_CODES else "rejected"
        return RowOutcome(line, email, outcome, exc.message)
    seen.add(normalized)
    return RowOutcome(line, email, "created")


Progress = Callable[[int, ImportReport], Awaitable[None]]
# Called inside a transaction that is about to commit: after each batch (rows done so far) and at the
# end, so that a record of progress commits together with the invitations it counts.
Checkpoint = Callable[[AsyncSession, int, ImportReport], Awaitable[None]]


async def run_import(
    factory: async_sessionmaker[AsyncSession],
    actor: Actor,
    settings: Settings,
    rows: list[tuple[int, dict[str, str]]],
    *,
    filename: str = "",
    progress: Progress | None = None,
    start: int = 0,
    report: ImportReport | None = None,
    checkpoint: Checkpoint | None = None,
    finish: Checkpoint | None = None,
) -> ImportReport:
    """Import in batches, each in its own transaction (e-mails go out after each commit).

    A resumed import passes the rows already done (``start``) and the report so far; ``checkpoint``
    and ``finish`` write the progress in the batch's (and the closing audit entry's) transaction.
    """
    report = report if report is not None else ImportReport(total=len(rows))
    groups: dict[str, Group | None] = {}
    async with factory() as session:
        ledger = await SeatLedger.load(session, actor.account_id, invitations.reserved_seats)
        await session.commit()
    done = start
    for batch in batches(rows[start:]):
        async with factory() as session:
            for outcome in await import_batch(session, actor, settings, batch, ledger, groups):
                report.add(outcome)
            done += len(batch)
            if checkpoint is not None:
                await checkpoint(session, done, report)
            await session.commit()
            await run_after_commit(session)
        if progress is not None:
            await progress(done, report)
    async with factory() as session:
        await audit.record(
            session,
            actor,
            "users.imported",
            target=Target("import", None, filename or "CSV"),
            after={
                "rows": report.total,
                "created": report.created,
                "skipped": report.skipped,
                "rejected": report.rejected,
            },
        )
        if finish is not None:
            await finish(session, done, report)
        await session.commit()
    return report


def report_csv(rows: list[RowOutcome] | list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "email", "outcome", "reason"])
    for row in rows:
        values = row if isinstance(row, dict) else row.__dict__
        writer.writerow([values["line"], values["email"], values["outcome"], values["reason"]])
    return buffer.getvalue()
