"""Credits added to a cycle (top-ups bought through Stripe or added by hand by an owner).

A cycle's spendable credits are the account's credits per cycle plus what was added to it; the
column keeps that sum with the cycle so that enforcement reads it with the cycle it already has.
Existing top-ups (account-level ``extra_granted`` entries) are carried over.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite does both in place): a batch copy of credit_cycles would drop the
    # table, and the ledger's ON DELETE SET NULL would forget every entry's cycle.
    op.add_column(
        "credit_cycles", sa.Column("added_credits", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.execute(
        "UPDATE credit_cycles SET added_credits = COALESCE(("
        " SELECT SUM(e.amount) FROM credit_ledger e"
        " WHERE e.cycle_id = credit_cycles.id AND e.kind = 'extra_granted'"
        " AND e.user_id IS NULL AND e.group_id IS NULL), 0)"
    )


def downgrade() -> None:
    op.drop_column("credit_cycles", "added_credits")
