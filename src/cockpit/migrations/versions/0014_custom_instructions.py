"""The organisation's custom instructions, prepended to every agent's instructions (issue 14).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("custom_instructions", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    # A plain DROP COLUMN: a batch copy of ``accounts`` on SQLite would drop the table, and with it
    # (foreign keys on) every row that cascades from an account.
    op.drop_column("accounts", "custom_instructions")
