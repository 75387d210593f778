"""Conversations (issue 15): a person's threads with an agent or a model, and their messages as a
tree (each message points at its parent; siblings are the alternatives of a branch).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("pinned", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("archived", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_leaf_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("conversations", "account_id", "accounts", "CASCADE"),
        _fk("conversations", "user_id", "users", "CASCADE"),
        _fk("conversations", "agent_id", "agents", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index(op.f("ix_conversations_account_id"), "conversations", ["account_id"])
    op.create_index(
        "ix_conversations_account_user_updated", "conversations", ["account_id", "user_id", "updated_at"]
    )
    op.create_table(
        "conversation_messages",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("tool_steps", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("conversation_messages", "account_id", "accounts", "CASCADE"),
        _fk("conversation_messages", "conversation_id", "conversations", "CASCADE"),
        # No cascade along the tree (see the model: SQLite's trigger depth).
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["conversation_messages.id"],
            name=op.f("fk_conversation_messages_parent_id_conversation_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_messages")),
    )
    op.create_index(op.f("ix_conversation_messages_account_id"), "conversation_messages", ["account_id"])
    op.create_index(op.f("ix_conversation_messages_parent_id"), "conversation_messages", ["parent_id"])
    op.create_index(
        "ix_conversation_messages_conversation_created",
        "conversation_messages",
        ["conversation_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_messages_conversation_created", table_name="conversation_messages")
    op.drop_index(op.f("ix_conversation_messages_parent_id"), table_name="conversation_messages")
    op.drop_index(op.f("ix_conversation_messages_account_id"), table_name="conversation_messages")
    op.drop_table("conversation_messages")
    op.drop_index("ix_conversations_account_user_updated", table_name="conversations")
    op.drop_index(op.f("ix_conversations_account_id"), table_name="conversations")
    op.drop_table("conversations")
