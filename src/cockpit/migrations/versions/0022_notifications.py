"""Notifications: templates, in-app notifications, e-mails, mutes and budget thresholds.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "notification_templates",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("in_app", "email", name="channel", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("subject", sa.String(length=1000), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("addresses", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("notification_templates", "account_id", "accounts", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_templates")),
        sa.UniqueConstraint(
            "account_id", "event", "channel", name=op.f("uq_notification_templates_account_id_event_channel")
        ),
    )
    op.create_table(
        "notifications",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=500), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("notifications", "account_id", "accounts", "CASCADE"),
        _fk("notifications", "user_id", "users", "CASCADE"),
        _fk("notifications", "event_id", "platform_events", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("event_id", "user_id", name=op.f("uq_notifications_event_id_user_id")),
    )
    op.create_index(
        "ix_notifications_user_read_created", "notifications", ["user_id", "read_at", "created_at"]
    )
    op.create_table(
        "notification_mutes",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("notification_mutes", "account_id", "accounts", "CASCADE"),
        _fk("notification_mutes", "user_id", "users", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_mutes")),
        sa.UniqueConstraint(
            "account_id", "user_id", "event", name=op.f("uq_notification_mutes_account_id_user_id_event")
        ),
    )


def downgrade() -> None:
    op.drop_table("notification_mutes")
    op.drop_index("ix_notifications_user_read_created", table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("notification_templates")
