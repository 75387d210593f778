"""Rollups of the recorded calls for the analytics views (docs/analytics-rollups.md); on PostgreSQL
each call remembers the transaction that wrote it (``recorded_xid``), the rollups' watermark.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMS = (
    "requests", "errors", "successes", "cost_usd", "credits", "input_tokens", "output_tokens",
    "cached_tokens", "latency_ms", "ttft_ms", "ttft_calls",
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "usage_rollups",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("dim", sa.String(length=20), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=220), nullable=False),
        sa.Column("key2", sa.String(length=220), nullable=False),
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in SUMS],
        sa.Column("people", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_usage_rollups_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "dim", "level", "block", "key", "key2", name=op.f("pk_usage_rollups")
        ),
    )
    op.create_table(
        "usage_rollup_state",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_usage_rollup_state")),
    )
    op.create_table(
        "usage_rollup_accounts",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_usage_rollup_accounts_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_usage_rollup_accounts")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # The transaction that wrote each call: the rollup job takes the calls of the transactions
        # older than its snapshot's xmin, so no call can commit behind the watermark. Existing rows
        # get this migration's transaction.
        op.execute(
            "ALTER TABLE usage_requests ADD COLUMN recorded_xid xid8 NOT NULL DEFAULT pg_current_xact_id()"
        )
        op.execute("CREATE INDEX ix_usage_requests_recorded_xid ON usage_requests (recorded_xid)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_usage_requests_recorded_xid")
        op.execute("ALTER TABLE usage_requests DROP COLUMN recorded_xid")
    op.drop_table("usage_rollup_accounts")
    op.drop_table("usage_rollup_state")
    op.drop_table("usage_rollups")
