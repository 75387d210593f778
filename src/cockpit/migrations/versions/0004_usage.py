"""Usage records of gateway calls; per-account content storage settings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 05:36:37.904226
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.String(length=100), nullable=True),
        sa.Column("api_token_id", sa.Uuid(), nullable=True),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=True),
        sa.Column("provider_kind", sa.String(length=20), nullable=True),
        sa.Column("operation", sa.String(length=20), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("error_type", sa.String(length=60), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("ttft_ms", sa.Integer(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_usd", sa.BigInteger(), nullable=False),
        sa.Column("upstream_id", sa.String(length=200), nullable=True),
        sa.Column("request_content", sa.JSON(), nullable=True),
        sa.Column("response_content", sa.Text(), nullable=True),
        sa.Column("content_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_usage_requests_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_requests")),
    )
    with op.batch_alter_table("usage_requests", schema=None) as batch_op:
        batch_op.create_index("ix_usage_requests_account_created", ["account_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_usage_requests_account_project_created",
            ["account_id", "project_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_usage_requests_account_user_created", ["account_id", "user_id", "created_at"], unique=False
        )

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_prefix"), ["prefix"], unique=False)

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("store_request_content", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("content_retention_days", sa.Integer(), server_default="30", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_prefix"))

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("content_retention_days")
        batch_op.drop_column("store_request_content")

    with op.batch_alter_table("usage_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_requests_account_user_created")
        batch_op.drop_index("ix_usage_requests_account_project_created")
        batch_op.drop_index("ix_usage_requests_account_created")

    op.drop_table("usage_requests")
