"""The demo organisation for tests, seeded once per backend in each test process and copied in.

Seeding it (``cockpit.demo.seed_demo``: ~3,000 gateway calls with their debits, cycles, requests,
rules and audit entries) takes seconds; a dozen tests on each backend need it. The first test that
asks seeds it for real, in its own (empty) database, and its rows are kept aside as a template: a
copy of the SQLite file, or a schema of their own in the PostgreSQL database. Every later test
gets the same rows back with one ``INSERT ... SELECT`` per table, in one transaction, into the
tables its previous test left empty. The copy is the seeded organisation itself: the same ids, the
same audit chain, the same gateway token (whose raw value is kept with the template).

Ids that come back must not meet what this process remembers of the last copy: every gateway
directory of this process forgets everything after a copy (as after any change it cannot place).
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cockpit.demo import DemoLogin
from cockpit.gateway.invalidation import changed
from cockpit.models import metadata

SCHEMA = "demo_template"  # PostgreSQL: the template's tables, beside the real ones


@dataclass(frozen=True)
class Template:
    login: DemoLogin
    sqlite_file: Path | None  # SQLite: a copy of the database file; PostgreSQL: the SCHEMA


def _tables() -> list[str]:
    return [table.name for table in metadata.sorted_tables]  # parents before children


def _sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


async def keep(url: str, login: DemoLogin, directory: Path) -> Template:
    """Keep the rows of the (just seeded, committed) database at ``url`` as the template."""
    if url.startswith("postgresql"):
        copies = "; ".join(f'CREATE TABLE {SCHEMA}."{t}" AS TABLE public."{t}"' for t in _tables())
        await _pg_script(
            url, f"BEGIN; DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}; {copies}; COMMIT"
        )
        return Template(login, None)
    target = directory / "demo-template.db"
    with (
        contextlib.closing(sqlite3.connect(_sqlite_path(url), timeout=30)) as source,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)
    return Template(login, target)


async def restore(url: str, template: Template) -> DemoLogin:
    """Copy the template's rows into the (empty) database at ``url``; returns the demo's login."""
    copies = "; ".join(f'INSERT INTO main."{t}" SELECT * FROM demo."{t}"' for t in _tables())
    if template.sqlite_file is None:
        copies = "; ".join(f'INSERT INTO public."{t}" SELECT * FROM {SCHEMA}."{t}"' for t in _tables())
        await _pg_script(url, f"BEGIN; {copies}; COMMIT")
    else:
        with contextlib.closing(sqlite3.connect(_sqlite_path(url), timeout=30, isolation_level=None)) as conn:
            conn.execute("ATTACH DATABASE ? AS demo", (str(template.sqlite_file),))
            try:
                conn.executescript(f"BEGIN IMMEDIATE; {copies}; COMMIT")
            finally:
                conn.execute("DETACH DATABASE demo")
    changed(None)
    return template.login


async def _pg_script(url: str, script: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(script)  # no arguments: the simple protocol runs every statement
    finally:
        await conn.close()
