"""Support tickets, their comments and internal notes, and their attachments.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=20)


def upgrade() -> None:
    op.create_table(
        "support_tickets",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("requester_id", sa.Uuid(), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "category",
            _enum("ticketcategory", "access", "credits", "billing", "bug", "other"),
            nullable=False,
        ),
        sa.Column("priority", _enum("ticketpriority", "low", "normal", "high", "urgent"), nullable=False),
        sa.Column(
            "status", _enum("ticketstatus", "new", "open", "waiting", "resolved", "closed"), nullable=False
        ),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("merged_into_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("support_tickets", "account_id", "accounts", "CASCADE"),
        _fk("support_tickets", "requester_id", "users", "SET NULL"),
        _fk("support_tickets", "assignee_id", "users", "SET NULL"),
        _fk("support_tickets", "merged_into_id", "support_tickets", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_tickets")),
        sa.UniqueConstraint("account_id", "number", name=op.f("uq_support_tickets_account_id_number")),
    )
    op.create_index(
        "ix_support_tickets_account_status_created", "support_tickets", ["account_id", "status", "created_at"]
    )
    op.create_index(
        "ix_support_tickets_account_requester_created",
        "support_tickets",
        ["account_id", "requester_id", "created_at"],
    )
    op.create_table(
        "ticket_comments",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("ticket_comments", "ticket_id", "support_tickets", "CASCADE"),
        _fk("ticket_comments", "account_id", "accounts", "CASCADE"),
        _fk("ticket_comments", "author_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_comments")),
    )
    op.create_index("ix_ticket_comments_ticket_created", "ticket_comments", ["ticket_id", "created_at"])
    op.create_index(op.f("ix_ticket_comments_account_id"), "ticket_comments", ["account_id"])
    op.create_table(
        "ticket_attachments",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("uploader_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=64), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("ticket_attachments", "ticket_id", "support_tickets", "CASCADE"),
        _fk("ticket_attachments", "account_id", "accounts", "CASCADE"),
        _fk("ticket_attachments", "uploader_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_attachments")),
    )
    op.create_index("ix_ticket_attachments_ticket_created", "ticket_attachments", ["ticket_id", "created_at"])
    op.create_index(op.f("ix_ticket_attachments_account_id"), "ticket_attachments", ["account_id"])


def downgrade() -> None:
    op.drop_table("ticket_attachments")
    op.drop_table("ticket_comments")
    op.drop_table("support_tickets")
