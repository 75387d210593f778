"""Run the Alembic migrations shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cockpit.kit.db import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations. Synchronous: call it outside a running event loop."""
    command.upgrade(alembic_config(database_url), revision)


def current_head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


async def _revision_of(database_url: str) -> str | None:
    """The database's migration revision, or None for a database without Cockpit's schema."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except DBAPIError:  # no alembic_version table: nothing applied yet
        return None
    finally:
        await engine.dispose()


def upgrade_and_describe(database_url: str) -> str:
    """Apply migrations and say what was done, for people ("created the database and applied 7
    migrations", "applied 1 migration (0007 → 0008)", "the database is up to date"). Synchronous."""
    import asyncio

    before = asyncio.run(_revision_of(database_url))
    upgrade(database_url)
    after = asyncio.run(_revision_of(database_url))
    script = ScriptDirectory.from_config(alembic_config(database_url))
    applied = [r for r in script.iterate_revisions(after, before) if r.revision != before]
    if before is None:
        return f"created the database and applied {_migrations(len(applied))}"
    if not applied:
        return "the database is up to date"
    return f"applied {_migrations(len(applied))} ({before} → {after})"


def _migrations(n: int) -> str:
    return f"{n} migration{'' if n == 1 else 's'}"
