"""Sharing conversations, administrator review and conversation retention.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("conversation_review_enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "accounts", sa.Column("conversation_retention_days", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_table(
        "conversation_shares",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("shared_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("conversation_shares", "account_id", "accounts", "CASCADE"),
        _fk("conversation_shares", "conversation_id", "conversations", "CASCADE"),
        _fk("conversation_shares", "user_id", "users", "CASCADE"),
        _fk("conversation_shares", "shared_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_shares")),
    )
    op.create_index(op.f("ix_conversation_shares_account_id"), "conversation_shares", ["account_id"])
    op.create_index(
        "ix_conversation_shares_conversation_id_user_id",
        "conversation_shares",
        ["conversation_id", "user_id"],
        unique=True,
    )
    op.create_index(
        "ix_conversation_shares_user_id_created_at", "conversation_shares", ["user_id", "created_at"]
    )
    op.create_table(
        "conversation_reviews",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("reviewer_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("conversation_reviews", "account_id", "accounts", "CASCADE"),
        _fk("conversation_reviews", "conversation_id", "conversations", "CASCADE"),
        _fk("conversation_reviews", "reviewer_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_reviews")),
    )
    op.create_index(op.f("ix_conversation_reviews_account_id"), "conversation_reviews", ["account_id"])
    op.create_index(
        "ix_conversation_reviews_conversation_id_created_at",
        "conversation_reviews",
        ["conversation_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_reviews_conversation_id_created_at", table_name="conversation_reviews")
    op.drop_index(op.f("ix_conversation_reviews_account_id"), table_name="conversation_reviews")
    op.drop_table("conversation_reviews")
    op.drop_index("ix_conversation_shares_user_id_created_at", table_name="conversation_shares")
    op.drop_index("ix_conversation_shares_conversation_id_user_id", table_name="conversation_shares")
    op.drop_index(op.f("ix_conversation_shares_account_id"), table_name="conversation_shares")
    op.drop_table("conversation_shares")
    # Plain DROP COLUMNs (see 0014: a batch copy of ``accounts`` on SQLite would cascade).
    op.drop_column("accounts", "conversation_retention_days")
    op.drop_column("accounts", "conversation_review_enabled")
