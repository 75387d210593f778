"""The audit chain's head moves from the account row to a table of its own (``audit_chain_heads``).

Appends to an account's chain lock its head row. When that was the account row, PostgreSQL
deadlocked concurrent writers: inserting a row that references an account takes a KEY SHARE lock
on the account row, and two transactions that had both done so then both asked FOR UPDATE on it.
Nothing references the new table. Every account gets its row here, with the head it had.

The old columns are dropped with ``ALTER TABLE ... DROP COLUMN`` on SQLite too (SQLite 3.35 or
newer, which Cockpit needs anyway for ``RETURNING``), not by recreating ``accounts``: with foreign
keys on, dropping the old ``accounts`` table would cascade to every row of the account.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 09:41:12.093512
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_chain_heads",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_audit_chain_heads_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_audit_chain_heads")),
    )
    op.execute(
        "INSERT INTO audit_chain_heads (account_id, seq, head) SELECT id, audit_seq, audit_head FROM accounts"
    )
    op.drop_column("accounts", "audit_head")
    op.drop_column("accounts", "audit_seq")


def downgrade() -> None:
    op.add_column("accounts", sa.Column("audit_seq", sa.Integer(), nullable=False, server_default="0"))
    op.add_column(
        "accounts", sa.Column("audit_head", sa.String(length=64), nullable=False, server_default="")
    )
    op.execute(
        "UPDATE accounts SET"
        " audit_seq = COALESCE((SELECT seq FROM audit_chain_heads h WHERE h.account_id = accounts.id), 0),"
        " audit_head = COALESCE((SELECT head FROM audit_chain_heads h WHERE h.account_id = accounts.id), '')"
    )
    op.drop_table("audit_chain_heads")
