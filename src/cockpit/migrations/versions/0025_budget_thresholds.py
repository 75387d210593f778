"""Accounts get their budget thresholds: the percentages of a cycle's credits at which the account,
each group and each member are notified (``accounts.budget_thresholds``, default 50, 80 and 100).

Added and dropped with plain ``ALTER TABLE`` on SQLite too, never by recreating ``accounts`` (see 0010).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("budget_thresholds", sa.JSON(), server_default=sa.text("'[50, 80, 100]'"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("accounts", "budget_thresholds")
