"""Credits: account credit settings, cycles, group budgets, member allocations, the ledger, requests.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 06:41:21.447664
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_cycles",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("cadence", sa.String(length=10), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(length=20), nullable=False),
        sa.Column("credits_per_cycle", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_credit_cycles_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_cycles")),
        sa.UniqueConstraint("account_id", "seq", name=op.f("uq_credit_cycles_account_id_seq")),
    )
    with op.batch_alter_table("credit_cycles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credit_cycles_account_id"), ["account_id"], unique=False)

    op.create_table(
        "credit_ledger",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("cycle_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "allocation_set",
                "extra_granted",
                "signup_grant",
                "request_approved",
                "usage_debit",
                "hold",
                "release",
                "cycle_reset",
                name="entrykind",
                native_enum=False,
                length=30,
            ),
            nullable=False,
        ),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("actor_label", sa.String(length=254), nullable=True),
        sa.Column("usage_request_id", sa.Uuid(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("usd", sa.BigInteger(), nullable=True),
        sa.Column("credit_request_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_credit_ledger_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["credit_cycles.id"],
            name=op.f("fk_credit_ledger_cycle_id_credit_cycles"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_ledger")),
    )
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.create_index(
            "ix_credit_ledger_account_cycle_created", ["account_id", "cycle_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_credit_ledger_account_group_created", ["account_id", "group_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_credit_ledger_account_user_created", ["account_id", "user_id", "created_at"], unique=False
        )

    op.create_table(
        "group_budgets",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("monthly", sa.BigInteger(), nullable=False),
        sa.Column("extra", sa.BigInteger(), nullable=False),
        sa.Column("extra_cycle_id", sa.Uuid(), nullable=True),
        sa.Column("auto_approve_limit", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_group_budgets_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["extra_cycle_id"],
            ["credit_cycles.id"],
            name=op.f("fk_group_budgets_extra_cycle_id_credit_cycles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_group_budgets_group_id_groups"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_group_budgets")),
    )
    with op.batch_alter_table("group_budgets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_budgets_account_id"), ["account_id"], unique=False)

    op.create_table(
        "credit_requests",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("cycle_id", sa.Uuid(), nullable=True),
        sa.Column("amount_requested", sa.BigInteger(), nullable=False),
        sa.Column("amount_approved", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "denied",
                "auto_approved",
                name="requeststatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_credit_requests_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["credit_cycles.id"],
            name=op.f("fk_credit_requests_cycle_id_credit_cycles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.id"],
            name=op.f("fk_credit_requests_decided_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_credit_requests_group_id_groups"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_credit_requests_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_requests")),
    )
    with op.batch_alter_table("credit_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_credit_requests_account_status_created", ["account_id", "status", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_credit_requests_user_id"), ["user_id"], unique=False)

    op.create_table(
        "member_allocations",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("monthly", sa.BigInteger(), nullable=False),
        sa.Column("extra", sa.BigInteger(), nullable=False),
        sa.Column("extra_cycle_id", sa.Uuid(), nullable=True),
        sa.Column("signup_shortfall", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_member_allocations_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["extra_cycle_id"],
            ["credit_cycles.id"],
            name=op.f("fk_member_allocations_extra_cycle_id_credit_cycles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_member_allocations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_member_allocations")),
    )
    with op.batch_alter_table("member_allocations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_allocations_account_id"), ["account_id"], unique=False)

    with op.batch_alter_table("usage_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credits", sa.BigInteger(), server_default="0", nullable=False))

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credit_factor", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("credits_per_cycle", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("cycle_cadence", sa.String(length=10), server_default="month", nullable=False)
        )
        batch_op.add_column(sa.Column("signup_credits", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("usage_requests", schema=None) as batch_op:
        batch_op.drop_column("credits")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("signup_credits")
        batch_op.drop_column("cycle_cadence")
        batch_op.drop_column("credits_per_cycle")
        batch_op.drop_column("credit_factor")

    with op.batch_alter_table("member_allocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_allocations_account_id"))

    op.drop_table("member_allocations")
    with op.batch_alter_table("credit_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credit_requests_user_id"))
        batch_op.drop_index("ix_credit_requests_account_status_created")

    op.drop_table("credit_requests")
    with op.batch_alter_table("group_budgets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_budgets_account_id"))

    op.drop_table("group_budgets")
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_ledger_account_user_created")
        batch_op.drop_index("ix_credit_ledger_account_group_created")
        batch_op.drop_index("ix_credit_ledger_account_cycle_created")

    op.drop_table("credit_ledger")
    with op.batch_alter_table("credit_cycles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credit_cycles_account_id"))

    op.drop_table("credit_cycles")
