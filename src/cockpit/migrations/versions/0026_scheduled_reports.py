"""Scheduled cost reports: an account's cadence (off, weekly, monthly) and format.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 23:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "accounts", sa.Column("report_cadence", sa.String(length=10), server_default="off", nullable=False)
    )
    op.add_column(
        "accounts", sa.Column("report_format", sa.String(length=10), server_default="pdf", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("accounts", "report_format")
    op.drop_column("accounts", "report_cadence")
