"""The account's own limits before a plan set them, given back when the subscription ends.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 02:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite does both in place; a batch copy would drop the table).
    op.add_column("billing_accounts", sa.Column("limits_before", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("billing_accounts", "limits_before")
