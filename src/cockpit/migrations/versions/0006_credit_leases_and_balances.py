"""Credit leases (credits a gateway process reserved for a member's calls) and running balances.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 09:09:25.447745
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_balances",
        sa.Column("cycle_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["credit_cycles.id"],
            name=op.f("fk_credit_balances_cycle_id_credit_cycles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cycle_id", "scope", "scope_id", name=op.f("pk_credit_balances")),
    )
    op.create_table(
        "credit_leases",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("cycle_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_credit_leases_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["credit_cycles.id"],
            name=op.f("fk_credit_leases_cycle_id_credit_cycles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_leases")),
    )
    with op.batch_alter_table("credit_leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credit_leases_account_id"), ["account_id"], unique=False)
        batch_op.create_index("ix_credit_leases_expires_at", ["expires_at"], unique=False)

    with op.batch_alter_table("usage_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credit_lease_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_requests", schema=None) as batch_op:
        batch_op.drop_column("credit_lease_id")

    with op.batch_alter_table("credit_leases", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_leases_expires_at")
        batch_op.drop_index(batch_op.f("ix_credit_leases_account_id"))

    op.drop_table("credit_leases")
    op.drop_table("credit_balances")
