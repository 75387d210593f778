"""Profiles' pictures and e-mail changes: avatars, the organisation's logo, a pending sign-in e-mail.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (nullable, no constraint: SQLite does both in place). A batch copy of
    # ``users`` or ``accounts`` on SQLite would drop the table, and with it (foreign keys on) every
    # row that cascades from it (see 0014).
    op.add_column("users", sa.Column("avatar_updated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("pending_email", sa.String(length=254), nullable=True))
    op.add_column("users", sa.Column("pending_email_token_hash", sa.String(length=64), nullable=True))
    op.add_column("users", sa.Column("pending_email_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("accounts", sa.Column("logo_updated_at", sa.DateTime(timezone=True), nullable=True))
    # The pictures' bytes live apart from the rows every page loads (users, accounts).
    op.create_table(
        "user_avatars",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("account_id", sa.Uuid(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("media_type", sa.String(length=20), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_user_avatars_account_id", "user_avatars", ["account_id"])
    op.create_table(
        "account_logos",
        sa.Column(
            "account_id", sa.Uuid(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("media_type", sa.String(length=20), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("account_logos")
    op.drop_index("ix_user_avatars_account_id", table_name="user_avatars")
    op.drop_table("user_avatars")
    op.drop_column("accounts", "logo_updated_at")
    for column in (
        "pending_email_expires_at",
        "pending_email_token_hash",
        "pending_email",
        "avatar_updated_at",
    ):
        op.drop_column("users", column)
