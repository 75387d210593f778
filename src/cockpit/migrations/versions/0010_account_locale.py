"""Accounts get a locale: the format of the dates the console shows (``accounts.locale``).

Added and dropped with plain ``ALTER TABLE`` on SQLite too, never by recreating ``accounts`` (batch
mode): with foreign keys on, dropping the old ``accounts`` table would cascade to every row of every
account (see 0008).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 09:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "accounts", sa.Column("locale", sa.String(length=16), server_default="en-GB", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("accounts", "locale")
